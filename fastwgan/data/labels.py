"""Class labels: `check_labels`, the one validator (`load`, the trainers and the batch sources all call it),
`load_labels` and `class_names` (a source's labels and class names without decoding its images), and
`without_classes` (a labelled source less some classes, for `--exclude-class`) with `class_list`, the parser of
class-id options.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.images import DataError

__all__ = ["check_labels", "load_labels", "class_names", "class_list", "without_classes"]


def check_labels(labels, n: int | None, num_classes: int | None = None, what: str = "labels") -> torch.Tensor:
    """Validate class labels and return them as int64 (N,) (same device). The one check `load` and the trainers use.

    Args:
        labels: tensor or array-like of integer ids; float values are accepted only when they are exact integers.
        n: the number of images the labels go with (None: do not check the length).
        num_classes: if given, every label must be < num_classes.
        what: the data source, named first in error messages.
    Returns:
        int64 tensor (N,).
    Raises:
        DataError (one line) for a wrong shape or count, non-integer, negative or out-of-range labels.
    """
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise DataError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(labels, torch.Tensor):
        a = np.asarray(labels)
        if a.dtype.kind not in "iuf":
            raise DataError(f"{what}: labels must be integers, got dtype {a.dtype}")
        labels = torch.from_numpy(a.astype(np.float64 if a.dtype.kind == "f" else np.int64))
    elif labels.dtype == torch.bool or labels.is_complex():
        raise DataError(f"{what}: labels must be integers, got dtype {labels.dtype}")
    if labels.ndim != 1:
        length = "" if n is None else f" of length {n}"
        raise DataError(f"{what}: labels must be a 1-D tensor{length}, got shape {tuple(labels.shape)}")
    if n is not None and len(labels) != n:
        raise DataError(f"{what}: {n} images but {len(labels)} labels")
    if labels.is_floating_point():
        bad = ~(torch.isfinite(labels) & (labels == labels.round()))
        if bad.any():
            i = int(bad.nonzero()[0])
            raise DataError(f"{what}: labels must be integers, found {labels[i].item():g} at index {i}")
    labels = labels.to(torch.int64)
    if len(labels) and labels.min() < 0:
        i = int((labels < 0).nonzero()[0])
        raise DataError(f"{what}: labels must be >= 0, found {labels[i].item()} at index {i}")
    if num_classes is not None and len(labels) and labels.max() >= num_classes:
        i = int((labels >= num_classes).nonzero()[0])
        raise DataError(
            f"{what}: label {labels[i].item()} at index {i} is out of range for "
            f"num_classes={num_classes} (labels must lie in 0..{num_classes - 1})"
        )
    return labels


def load_labels(source, *, labels_path=None) -> torch.Tensor:
    """Integer class labels (N,) int64 in the order `load(source)` returns images, without decoding the images
    (so the image count is not checked; `load(source, labels=True)` checks it). Sources as for `load(labels=True)`,
    plus an IDX labels file (*-labels-idx1-ubyte[.gz]) on its own."""
    from .loading import read  # loading imports this module: import it when called

    return read(source, "load_labels", images=False, labels=True, labels_path=labels_path).labels


def class_names(source) -> list[str] | None:
    """The names of the classes 0..K-1 that `load(source, labels=True)` returns, or None where the source names none.

    Digits (and digits-m): "0".."9"; CIFAR-10: airplane .. truck; a folder: its sorted class sub-folder names
    (those holding at least one image; None for a flat folder); .npz: its `class_names` array, if any; IDX, .npy,
    toys, stacked-digits: None.
    """
    from .loading import read

    return read(source, "class_names", images=False, labels=False).names


def class_list(text: str, flag: str) -> list[int]:
    """'3' or '3,5' -> [3] / [3, 5] (the class options of train and score)."""
    try:
        ks = [int(k) for k in str(text).split(",") if k.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 0:
        raise ValueError(f"{flag}: expected class ids such as 3 or 3,5, got {text!r}")
    return ks


def without_classes(source: str, exclude: str, image_size, channels, conditional: bool):
    """--exclude-class: a labelled source without some classes, as (x, labels or None)."""
    from .loading import load  # loading imports this module: import it when called

    ks = class_list(exclude, "--exclude-class")
    if source.startswith("toy:"):
        raise ValueError(f"--exclude-class: {source} has no classes")
    try:
        x, y = load(source, image_size=image_size, channels=channels, labels=True)
    except DataError as e:
        raise ValueError(f"--exclude-class: {source} carries no class labels ({e})") from None
    missing = [k for k in ks if not bool((y == k).any())]
    if missing:
        raise ValueError(
            f"--exclude-class: {source} has no images of class {missing[0]} (its classes: {sorted(set(y.tolist()))})"
        )
    keep = ~torch.isin(y, torch.tensor(ks))
    if not bool(keep.any()):
        raise ValueError(f"--exclude-class {exclude}: nothing of {source} is left to train on")
    return x[keep], (y[keep] if conditional else None)
