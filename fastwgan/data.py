"""Datasets as uint8 tensors (the 2-D toys live in `fastwgan.toys`, normalisation and writers in
`fastwgan.images`; every public name of both is re-exported here).

Every image source becomes a uint8 tensor of shape (N, C, H, W) with C in {1, 3}. Training works in float32
[-1, 1]; `to_float` / `to_uint8` are the ONE place that maps between the two (x / 127.5 - 1 and back).

Sources for `load`:
    "digits"          the bundled UCI handwritten digits, (1797, 1, 8, 8) (see fastwgan/assets/DIGITS.md)
    "digits-train"    a fixed split of them: 1297 for training and 500 held out ("digits-heldout"), see `digits_split`
    "stacked-digits"  50000 images (3, 8, 8): three digits-train digits in three channels, 1000 modes (`stacked_digits`)
    "toy:NAME"        a 2-D toy ("8gaussians", "25gaussians", "swissroll"): float32 (100000, 2), NOT uint8
    a folder          PNG/JPEG images, recursive, sorted by relative path; or a `cifar-10-batches-py` folder
    *-idx3-ubyte[.gz] MNIST / Fashion-MNIST IDX image file
    data_batch_N      a CIFAR-10 python batch (test_batch too)
    .npz / .npy       arrays (N, H, W), (N, H, W, C) or (N, C, H, W); uint8, integers in 0..255, or float in [0, 1]

Bad input raises FileNotFoundError (missing path) or `DataError` (a ValueError) whose message names the file.
"""
from __future__ import annotations

import gzip
import importlib.resources
import math
import pickle
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .images import DataError, make_grid, save_grid, save_image_folder, save_npz, to_float, to_uint8
from .toys import TOY_NAMES, TOY_SIZE, toy, toy_modes

__all__ = [
    "DataError", "TOY_NAMES", "BUILTIN", "is_named", "load", "load_labels", "load_digits", "digits_split", "stacked_digits", "toy", "toy_modes",
    "to_float", "to_uint8", "make_grid", "save_grid", "save_image_folder", "save_npz",
]

BUILTIN = ("digits", "digits-train", "digits-heldout", "stacked-digits")  # and "toy:NAME": data shipped in the package


def is_named(source) -> bool:
    """Whether ``source`` names built-in data ("digits", "digits-heldout", "toy:8gaussians", ...) rather than a
    path; ``load`` takes both."""
    return isinstance(source, str) and (source in BUILTIN or source.startswith("toy:"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_IDX_IMAGES = re.compile(r"idx3[-.]ubyte(\.gz)?$")
_IDX_LABELS = re.compile(r"idx1[-.]ubyte(\.gz)?$")
_CIFAR_BATCH = re.compile(r"^(data_batch_\d+|test_batch)$")


# ----------------------------------------------------------------------------------------------------------------
# Bundled digits.
# ----------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    with (importlib.resources.files("fastwgan") / "assets" / "digits.npz").open("rb") as f, np.load(f) as z:
        return z["images"], z["labels"]


def load_digits(return_labels: bool = False):
    """The bundled UCI digits: uint8 (1797, 1, 8, 8); with return_labels also int64 labels (1797,) in 0..9."""
    images, labels = _digits_arrays()
    x = torch.from_numpy(images.copy())
    return (x, torch.from_numpy(labels.astype(np.int64))) if return_labels else x


DIGITS_HELDOUT = 500  # digits held out from "digits-train" (fixed permutation, seed 0)
STACKED_SIZE = 50_000


def digits_split(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed split of the bundled digits: part "train" (1297) or "heldout" (500). Returns (images, labels)."""
    if part not in ("train", "heldout"):
        raise DataError(f"digits_split: part must be 'train' or 'heldout', got {part!r}")
    x, y = load_digits(return_labels=True)
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
    idx = perm[DIGITS_HELDOUT:] if part == "train" else perm[:DIGITS_HELDOUT]
    return x[idx], y[idx]


def stacked_digits(n: int = STACKED_SIZE, seed: int = 0, part: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked digits (the mode-collapse benchmark of Metz et al. 2017 / VEEGAN / PacGAN, on the 8x8 digits): each
    image puts three independently drawn digits of the `part` split in its three channels, so there are 1000 modes.

    Returns:
        uint8 images (n, 3, 8, 8) and int64 modes (n,) = 100 * label_R + 10 * label_G + label_B.
    """
    x, y = digits_split(part)
    idx = torch.from_numpy(np.random.default_rng(seed).integers(0, len(x), size=(n, 3)))
    return x[idx][:, :, 0].contiguous(), (y[idx] * torch.tensor([100, 10, 1])).sum(1)


# ----------------------------------------------------------------------------------------------------------------
# Readers. Each returns uint8 numpy arrays; `load` converts channels, resizes and makes the tensor.
# ----------------------------------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (3: images, 1: labels)."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    if raw[3] != ndim:
        raise DataError(f"{path}: IDX file has {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) - header != math.prod(dims):
        raise DataError(f"{path}: IDX file is truncated or padded: header says {dims} "
                        f"({math.prod(dims)} bytes), found {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are plain dicts of numpy arrays; refuse anything else (a pickle can run arbitrary code)."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer", "frombuffer"}

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" and name in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({e})") from e
    if not isinstance(d, dict):
        raise DataError(f"{path}: CIFAR batch should hold a dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    data = np.asarray(d.get("data"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: CIFAR 'data' should be uint8 (N, 3072), got {data.dtype} {data.shape}")
    labels = np.asarray(d.get("labels", d.get("fine_labels", np.zeros(0))), dtype=np.int64)
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_files(folder: Path) -> list[Path]:
    """data_batch_1..5 in numeric order (the training set); test_batch only if there is no training batch."""
    train = sorted(folder.glob("data_batch_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return train or sorted(folder.glob("test_batch"))


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.relative_to(folder).as_posix())


def _square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square (no distortion), then resize with Pillow's antialiasing bilinear filter."""
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    return img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)


def _read_image_folder(folder: Path, image_size: int | None, channels: int | None) -> np.ndarray:
    files = _image_files(folder)
    if not files:
        raise DataError(f"{folder}: empty folder: no {'/'.join(IMAGE_SUFFIXES)} images found (searched recursively)")
    # Pass 1: headers only (lazy open), to choose the mode and check sizes before decoding anything.
    modes, sizes = [], []
    for p in files:
        try:
            with Image.open(p) as img:
                modes.append(img.mode)
                sizes.append(img.size)
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as e:
            raise DataError(f"{p}: corrupt or unreadable image ({e})") from e
    if channels is None:
        channels = 1 if all(m in _GRAY_MODES for m in modes) else 3
    if image_size is None and len(set(sizes)) > 1:
        other = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise DataError(f"{folder}: images have different sizes ({files[0].name} is {sizes[0]}, "
                        f"{files[other].name} is {sizes[other]}); pass image_size to resize them")
    mode = "L" if channels == 1 else "RGB"
    # Pass 2: decode (this is where truncated files fail), convert, resize.
    out = []
    for p in files:
        try:
            with Image.open(p) as img:
                img.load()
                img = img.convert(mode)
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as e:
            raise DataError(f"{p}: corrupt or truncated image ({e})") from e
        if image_size is not None:
            img = _square(img, image_size)
        a = np.asarray(img, dtype=np.uint8)
        out.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))  # (C, H, W)
    return np.stack(out)


def _to_nchw_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    """Accepted array layouts and dtypes -> uint8 (N, C, H, W)."""
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4:
        if a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):
            a = a.transpose(0, 3, 1, 2)
        elif a.shape[1] not in (1, 3):
            raise DataError(f"{path}: array shape {a.shape}: channels must be 1 or 3 in (N, C, H, W) or (N, H, W, C)")
    else:
        raise DataError(f"{path}: array shape {a.shape}: expected (N, H, W), (N, H, W, C) or (N, C, H, W)")
    if a.shape[0] == 0 or 0 in a.shape:
        raise DataError(f"{path}: array shape {a.shape} is empty")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.min(a)), float(np.max(a))
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
            raise DataError(f"{path}: float array values must lie in [0, 1], found [{lo}, {hi}]")
        return np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        lo, hi = int(np.min(a)), int(np.max(a))
        if a.dtype != np.bool_ and (lo < 0 or hi > 255):
            raise DataError(f"{path}: integer array values must lie in 0..255, found {lo}..{hi}")
        return a.astype(np.uint8) * (255 if a.dtype == np.bool_ else 1)
    raise DataError(f"{path}: unsupported array dtype {a.dtype}: expected uint8 or float in [0, 1]")


def _read_array_file(path: Path, keys=("images", "x", "arr_0")) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            names = list(z.keys())
            key = next((k for k in keys if k in names), names[0] if len(names) == 1 else None)
            if key is None:
                raise DataError(f"{path}: cannot tell which array holds the data: keys {names}, "
                                f"expected one of {list(keys)} or a single array")
            return z[key]
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable {path.suffix} array file ({e})") from e


def _read_path(path: Path, image_size: int | None, channels: int | None) -> np.ndarray:
    if path.is_dir():
        if path.name == "cifar-10-batches-py" or list(path.glob("data_batch_*")):
            files = _cifar_files(path)
            if not files:
                raise DataError(f"{path}: CIFAR-10 folder has no data_batch_N or test_batch file")
            return np.concatenate([_read_cifar_batch(f)[0] for f in files])
        return _read_image_folder(path, image_size, channels)
    name = path.name
    if _IDX_IMAGES.search(name):
        return _read_idx(path, 3)[:, None]
    if _CIFAR_BATCH.match(name):
        return _read_cifar_batch(path)[0]
    if path.suffix.lower() in (".npz", ".npy"):
        return _to_nchw_uint8(_read_array_file(path), path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{path}: is a single image file; expected a folder of images")
    raise DataError(f"{path}: unrecognised data file: expected a folder of images, *-idx3-ubyte[.gz], "
                    "a CIFAR-10 data_batch_N, .npz or .npy")


def _set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    c = x.shape[1]
    if c == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    # RGB -> L with Pillow's ITU-R 601-2 weights, so folders and arrays convert identically.
    y = x[:, 0] * 0.299 + x[:, 1] * 0.587 + x[:, 2] * 0.114
    return np.rint(y)[:, None].astype(np.uint8)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[2] == x.shape[3] == size:
        return x
    out = np.empty((x.shape[0], x.shape[1], size, size), dtype=np.uint8)
    for i, im in enumerate(x):
        img = Image.fromarray(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))
        a = np.asarray(_square(img, size))
        out[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return out


def _as_path(source, what: str) -> Path:
    path = Path(source)
    if not path.exists():
        s = str(source)
        if isinstance(source, str) and "/" not in s and "\\" not in s and "." not in s:
            raise DataError(f"unknown data source {s!r}: expected one of {', '.join(BUILTIN)}, "
                            f"'toy:NAME' {TOY_NAMES} or an "
                            f"existing path (no file or folder named {s!r} here either)")
        raise FileNotFoundError(f"{what}: no such file or folder: {path}")
    return path


def load(source, *, image_size: int | None = None, channels: int | None = None) -> torch.Tensor:
    """Load a dataset as a uint8 (N, C, H, W) tensor (toys: float32 (N, 2), see below).

    Args:
        source: "digits" (bundled), "toy:NAME" (8gaussians | 25gaussians | swissroll; returns float32 (100000, 2)
            coordinates with seed 0, NOT uint8; use `toy` for other sizes and seeds), or a path (see module doc).
        image_size: if given, every image is centre-cropped to a square and resized to image_size x image_size
            (Pillow bilinear with antialiasing). Image folders with mixed sizes need it.
        channels: 1 (grayscale) or 3 (RGB) to convert; default keeps the source's channels (image folders: RGB
            unless every image is grayscale).
    Returns:
        uint8 tensor (N, C, H, W); float32 (N, 2) for toys.
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive int, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if isinstance(source, str) and source.startswith("toy:"):
        return toy(source[4:], TOY_SIZE, seed=0)
    if isinstance(source, str) and source == "digits":
        x = load_digits().numpy()
    elif isinstance(source, str) and source in ("digits-train", "digits-heldout"):
        x = digits_split(source[7:])[0].numpy()
    elif isinstance(source, str) and source == "stacked-digits":
        x = stacked_digits()[0].numpy()
    else:
        x = _read_path(_as_path(source, "load"), image_size, channels)
    if channels is not None:
        x = _set_channels(x, channels)
    if image_size is not None:
        x = _resize(x, image_size)
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _idx_label_file(path: Path) -> Path:
    for cand in (path.name.replace("images", "labels"), path.name):
        base = _IDX_IMAGES.sub("", cand)
        for suffix in ("idx1-ubyte", "idx1-ubyte.gz", "idx1.ubyte", "idx1.ubyte.gz"):
            p = path.with_name(base + suffix)
            if p.exists():
                return p
    raise DataError(f"{path}: no IDX label file (*-labels-idx1-ubyte[.gz]) next to it")


def load_labels(source) -> torch.Tensor:
    """Integer class labels (N,) int64 in the order `load(source)` returns images.

    Supported: "digits"; an IDX image file (reads the matching *-labels-idx1-ubyte[.gz] beside it) or an IDX label
    file; a CIFAR-10 batch or folder; .npz with a `labels` or `y` array; an image folder whose images sit in one
    sub-folder per class (label = index of the sub-folder name in sorted order).
    """
    if isinstance(source, str) and source == "digits":
        return load_digits(return_labels=True)[1]
    path = _as_path(source, "load_labels")
    if path.is_dir():
        if path.name == "cifar-10-batches-py" or list(path.glob("data_batch_*")):
            return torch.from_numpy(np.concatenate([_read_cifar_batch(f)[1] for f in _cifar_files(path)]))
        files = [p.relative_to(path).parts for p in _image_files(path)]
        if not files:
            raise DataError(f"{path}: empty folder: no images found")
        if any(len(parts) < 2 for parts in files):
            raise DataError(f"{path}: labels need one sub-folder per class; some images sit in the folder itself")
        classes = sorted({parts[0] for parts in files})
        return torch.tensor([classes.index(parts[0]) for parts in files], dtype=torch.int64)
    if _IDX_LABELS.search(path.name):
        return torch.from_numpy(_read_idx(path, 1).astype(np.int64))
    if _IDX_IMAGES.search(path.name):
        return torch.from_numpy(_read_idx(_idx_label_file(path), 1).astype(np.int64))
    if _CIFAR_BATCH.match(path.name):
        return torch.from_numpy(_read_cifar_batch(path)[1])
    if path.suffix.lower() == ".npz":
        return torch.from_numpy(_read_array_file(path, keys=("labels", "y")).astype(np.int64).reshape(-1))
    raise DataError(f"{path}: this source has no labels")
