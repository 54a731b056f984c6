"""`load`: any data source (a bundled set, a 2-D toy or a file or folder) as one uint8 tensor, and `read`, the one
dispatch from a source to its reader that `load`, `load_labels` and `class_names` share, so labels come from the same
files in the same order as the images. (The sources and label carriers are listed in `fastwgan.data`'s docstring.)
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..core.images import DataError
from .bundled import BUILTIN, DIGIT_NAMES, digits_m, digits_split, is_named, load_digits, stacked_digits
from .labels import check_labels
from .mnist import MNIST5K, check_resize, load_mnist5k, mnist5k_split, resize_images
from .readers import (
    CIFAR10_NAMES,
    CIFAR_BATCH,
    IDX_IMAGES,
    IDX_LABELS,
    IMAGE_SUFFIXES,
    cifar_files,
    decode_image,
    folder_classes,
    folder_files,
    folder_format,
    idx_label_file,
    is_cifar_dir,
    read_array_file,
    read_cifar_batch,
    read_idx,
    read_image_folder,
    read_labels_file,
    read_npz_extras,
    set_channels,
    to_nchw_uint8,
)
from .toys import TOY_NAMES, TOY_SIZE, toy

__all__ = ["Read", "read", "load"]


class Read(NamedTuple):
    """What `read` found for a source: each part None unless asked for (names: None where the source has none)."""

    images: np.ndarray | None  # uint8 (N, C, H, W), before channels / resizing (unless sized); None unless asked
    labels: torch.Tensor | None  # int64 (N,), checked; None unless asked
    names: list[str] | None  # class names, when the source has them
    sized: bool = False  # images already image_size x image_size (image folders are sized as they are decoded)


def read(
    source,
    what: str,
    *,
    images: bool,
    labels: bool,
    labels_path=None,
    image_size: int | None = None,
    channels: int | None = None,
    resize: str = "bilinear",
) -> Read:
    """One dispatch for images, labels and class names, so labels come from the same files in the same order.
    Reads only what is asked: `class_names` asks for neither images nor labels. ``image_size`` / ``resize`` are
    applied here to image folders only (each image as it is decoded: sizes may differ; ``Read.sized``)."""
    y, names = None, None
    if is_named(source):
        if labels_path is not None:
            raise DataError(f"labels_path: {source!r} is built-in data that carries its own labels")
        if source.startswith("toy:"):  # `load` returns toy points itself; only labels get here
            if labels:
                raise DataError(f"{source}: toy data has no labels")
            return Read(None, None, None)
        if source == "stacked-digits":
            if labels:
                raise DataError(
                    "stacked-digits: labels are not supported (each image holds 3 digits); "
                    "stacked_digits() returns its 1000 mode ids"
                )
            return Read(stacked_digits()[0].numpy() if images else None, None, None)
        if source in MNIST5K:
            x, y = load_mnist5k(True) if source == "mnist-5k" else mnist5k_split(source[len("mnist-5k-") :])
        elif source.startswith("digits-m"):
            x, y = digits_m("all" if source == "digits-m" else source[len("digits-m-") :])
        else:
            x, y = load_digits(return_labels=True) if source == "digits" else digits_split(source[len("digits-") :])
        x, y, names = x.numpy(), y.numpy(), list(DIGIT_NAMES)
        return _finish(x if images else None, y if labels else None, names, source)

    path = _as_path(source, what)
    if labels_path is not None and not Path(labels_path).is_file():  # before any image is decoded
        raise FileNotFoundError(f"labels_path: no such file: {labels_path}")
    x, own = None, labels and labels_path is None  # own: the source's labels (not an explicit file's)
    if path.is_dir():
        if labels_path is not None:
            raise DataError(
                f"labels_path: {path} is a folder, whose labels come from its class sub-folders or "
                "CIFAR batches; labels_path is for IDX and array files"
            )
        if is_cifar_dir(path):
            files = cifar_files(path)
            if not files:
                raise DataError(f"{path}: CIFAR-10 folder has no data_batch_N or test_batch file")
            batches = [(f, *read_cifar_batch(f)) for f in files] if images or labels else []
            x = np.concatenate([b[1] for b in batches]) if images else None
            y = np.concatenate([_cifar_labels(*b) for b in batches]) if labels else None
            return _finish(x, y, list(CIFAR10_NAMES), str(path))
        files = folder_files(path)
        y, names = folder_classes(path, files, need=labels)
        if not images:
            x = None
        elif image_size is None or resize == "bilinear":
            x = read_image_folder(path, files, image_size, channels)
        else:  # decoded at their own sizes, each sized on its own (Pillow's bilinear is decode_image's)
            mode, _ = folder_format(path, files, image_size, channels)
            x = np.stack([resize_images(decode_image(p, mode, None)[None], image_size, resize)[0] for p in files])
        return _finish(x, y if labels else None, names, str(path), sized=images and image_size is not None)

    name, suffix = path.name, path.suffix.lower()
    if IDX_IMAGES.search(name):
        x = read_idx(path, 3)[:, None] if images else None
        if own:
            label_file = idx_label_file(path)
            return _finish(x, read_idx(label_file, 1), None, f"{path} (labels: {label_file.name})")
    elif IDX_LABELS.search(name) and not images:
        if labels_path is not None:
            raise DataError(f"labels_path: {path} is itself an IDX labels file")
        return _finish(None, read_idx(path, 1) if labels else None, None, str(path))
    elif CIFAR_BATCH.match(name):
        if labels_path is not None:
            raise DataError(f"labels_path: {path} carries its own labels (a CIFAR batch)")
        if images or labels:
            x, y = read_cifar_batch(path)
            y = _cifar_labels(path, x, y) if labels else None
        return _finish(x if images else None, y, list(CIFAR10_NAMES), str(path))
    elif suffix in (".npz", ".npy"):
        x = to_nchw_uint8(read_array_file(path), path) if images else None
        if suffix == ".npz" and (labels or not images):  # plain `load` never looks beyond the images array
            y, names = read_npz_extras(path, need_labels=own)
        elif own:
            raise DataError(
                f"{path}: no labels: a .npy file holds one array; save an .npz with a 'labels' array "
                "or pass labels_path="
            )
    elif labels and not images and labels_path is None:
        raise DataError(f"{path}: this source has no labels")
    elif suffix in IMAGE_SUFFIXES:
        raise DataError(f"{path}: is a single image file; expected a folder of images")
    elif IDX_LABELS.search(name):
        raise DataError(f"{path}: is an IDX labels file; load the images file (*-idx3-ubyte[.gz]) with labels=True")
    else:
        raise DataError(
            f"{path}: unrecognised data file: expected a folder of images, *-idx3-ubyte[.gz], "
            "a CIFAR-10 data_batch_N, .npz or .npy"
        )
    if labels and labels_path is not None:
        lp = Path(labels_path)
        y, names = read_labels_file(lp)
        return _finish(x, y, names, f"{path} (labels: {lp})")
    return _finish(x, y if labels else None, names, str(path))


def _cifar_labels(path: Path, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """One batch's labels, checked against its own images so a bad batch is named before concatenation."""
    if y is None:
        raise DataError(f"{path}: CIFAR batch has no 'labels' list")
    return check_labels(y, len(x), what=str(path)).numpy()


def _finish(x, y, names, what: str, sized: bool = False) -> Read:
    if y is not None:
        y = check_labels(y, None if x is None else len(x), None if names is None else len(names), what=what)
    return Read(x, y, names, sized)


def _as_path(source, what: str) -> Path:
    path = Path(source)
    if not path.exists():
        s = str(source)
        if isinstance(source, str) and "/" not in s and "\\" not in s and "." not in s:
            raise DataError(
                f"unknown data source {s!r}: expected one of {', '.join(BUILTIN)}, "
                f"'toy:NAME' {TOY_NAMES} or an "
                f"existing path (no file or folder named {s!r} here either)"
            )
        raise FileNotFoundError(f"{what}: no such file or folder: {path}")
    return path


def load(
    source,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    labels: bool = False,
    labels_path=None,
    resize: str = "bilinear",
):
    """Load a dataset as a uint8 (N, C, H, W) tensor (toys: float32 (N, 2), see below), with labels if asked.

    Args:
        source: "digits" (bundled; also "digits-m" etc., see module doc), "toy:NAME" (8gaussians | 25gaussians |
            swissroll; returns float32 (100000, 2) coordinates with seed 0, NOT uint8; use `toy` for other sizes
            and seeds), or a path (see module doc).
        image_size: if given, every image is centre-cropped to a square and resized to image_size x image_size,
            the way ``resize`` says. Image folders with mixed sizes need it.
        channels: 1 (grayscale) or 3 (RGB) to convert; default keeps the source's channels (image folders: RGB
            unless every image is grayscale).
        labels: also return int64 class labels (N,), label i for image i (module doc lists the sources that have
            them; the others are refused).
        labels_path: with labels=True, read the labels from this file instead (an IDX labels file, .npy or .npz
            with `labels` / `y`), for IDX and array sources.
        resize: how image_size is reached (`fastwgan.data.mnist`): "bilinear" (Pillow bilinear with antialiasing,
            the default), "area" (exact area averages) or "box" (MNIST's centre 20x20 box of the 28x28 frame cropped,
            area-resized and stretched to a maximum of 255: the fair way to bring MNIST to the 8x8 digits, whose
            strokes fill their frame at full ink; `digit_box`). Needs image_size unless "bilinear".
    Returns:
        uint8 tensor (N, C, H, W); float32 (N, 2) for toys; with labels=True, (images, labels).
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive int, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    check_resize(resize)
    if resize != "bilinear" and image_size is None:
        raise DataError(f"resize={resize!r} needs image_size= (the size to resize to)")
    if not isinstance(labels, bool):
        raise DataError(f"labels must be True or False, got {labels!r}; a labels file goes in labels_path=")
    if labels_path is not None and not labels:
        raise DataError("labels_path is only used with labels=True; pass labels=True to read labels from it")
    if isinstance(source, str) and source.startswith("toy:") and not labels:
        return toy(source[4:], TOY_SIZE, seed=0)
    r = read(
        source,
        "load",
        images=True,
        labels=labels,
        labels_path=labels_path,
        image_size=image_size,
        channels=channels,
        resize=resize,
    )
    x = r.images
    if channels is not None:
        x = set_channels(x, channels)
    if image_size is not None and not r.sized:
        x = resize_images(x, image_size, resize)
    x = np.ascontiguousarray(x)
    x = torch.from_numpy(x if x.flags.writeable else x.copy())
    return (x, r.labels) if labels else x
