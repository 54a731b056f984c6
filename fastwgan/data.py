"""Datasets as uint8 tensors, the 2-D toys, normalisation, and image writers.

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

__all__ = [
    "DataError", "TOY_NAMES", "load", "load_labels", "load_digits", "digits_split", "stacked_digits", "toy", "toy_modes",
    "to_float", "to_uint8", "make_grid", "save_grid", "save_image_folder", "save_npz",
]

TOY_NAMES = ("8gaussians", "25gaussians", "swissroll")
TOY_SIZE = 100_000  # samples returned by load("toy:NAME"), as in the WGAN-GP authors' 25-gaussians set
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_IDX_IMAGES = re.compile(r"idx3[-.]ubyte(\.gz)?$")
_IDX_LABELS = re.compile(r"idx1[-.]ubyte(\.gz)?$")
_CIFAR_BATCH = re.compile(r"^(data_batch_\d+|test_batch)$")


class DataError(ValueError):
    """Bad data input; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------------------------
# Normalisation: the one documented place.
# ----------------------------------------------------------------------------------------------------------------
def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 -> float32 in [-1, 1] (x / 127.5 - 1). Refuses non-uint8 input (double normalisation)."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
        raise DataError(f"to_float expects a uint8 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    return x.to(torch.float32) / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (inverse of `to_float`; values outside [-1, 1] are clamped, then rounded)."""
    if x.dtype == torch.uint8:
        return x
    return ((x.detach().float() + 1.0) * 127.5).clamp_(0, 255).round_().to(torch.uint8)


# ----------------------------------------------------------------------------------------------------------------
# 2-D toys, as in the WGAN-GP authors' gan_toy.py.
# ----------------------------------------------------------------------------------------------------------------
def _eight_centres() -> np.ndarray:
    s = 1.0 / math.sqrt(2.0)
    unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
    return 2.0 * np.asarray(unit, dtype=np.float64)  # scale 2


def _twenty_five_centres() -> np.ndarray:
    return np.asarray([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)], dtype=np.float64)


def toy_modes(name: str) -> tuple[torch.Tensor, float]:
    """Mode centres (K, 2) float32 and per-coordinate std of a gaussian-mixture toy, after its final scaling.

    Raises DataError for "swissroll" (no discrete modes) and unknown names.
    """
    if name == "25gaussians":
        return torch.from_numpy(_twenty_five_centres() / 2.828).float(), 0.05 / 2.828
    if name == "8gaussians":
        return torch.from_numpy(_eight_centres() / 1.414).float(), 0.02 / 1.414
    if name == "swissroll":
        raise DataError("toy 'swissroll' has no discrete modes")
    raise DataError(f"unknown toy {name!r}: expected one of {TOY_NAMES}")


def toy(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """n samples of a 2-D toy distribution as a float32 (n, 2) tensor, deterministic in `seed`.

    25gaussians: centres 2*(i, j), i, j in -2..2, equally many per centre (shuffled), noise N(0, 0.05^2), / 2.828.
    8gaussians: a uniformly chosen compass point of radius 2, noise N(0, 0.02^2), / 1.414.
    swissroll: sklearn's make_swiss_roll(noise=0.25) x and z coordinates, / 7.5.
    """
    if not isinstance(n, int) or n < 1:
        raise DataError(f"toy: n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    if name == "25gaussians":
        centres = _twenty_five_centres()
        which = rng.permutation(np.arange(n) % len(centres))  # balanced like the authors' 100000/25 loop
        x = (centres[which] + 0.05 * rng.standard_normal((n, 2))) / 2.828
    elif name == "8gaussians":
        centres = _eight_centres()
        x = (centres[rng.integers(0, len(centres), n)] + 0.02 * rng.standard_normal((n, 2))) / 1.414
    elif name == "swissroll":
        t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
        y = 21.0 * rng.random(n)
        roll = np.stack([t * np.cos(t), y, t * np.sin(t)], axis=1) + 0.25 * rng.standard_normal((n, 3))
        x = roll[:, [0, 2]] / 7.5
    else:
        raise DataError(f"unknown toy {name!r}: expected one of {TOY_NAMES}")
    return torch.from_numpy(x.astype(np.float32))


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
            raise DataError(f"unknown data source {s!r}: expected 'digits', 'digits-train', 'digits-heldout', "
                            f"'stacked-digits', 'toy:NAME' {TOY_NAMES} or an "
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


# ----------------------------------------------------------------------------------------------------------------
# Writers (the CLI's sample command).
# ----------------------------------------------------------------------------------------------------------------
def _images_uint8(x: torch.Tensor, what: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{what}: expected images (N, C, H, W) with C in 1, 3, got shape {tuple(x.shape)}")
    return to_uint8(x)


def make_grid(x: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile images (N, C, H, W) (float in [-1, 1] or uint8) into one uint8 (C, H', W') grid, `nrow` per row
    (default ceil(sqrt(N))), separated and bordered by `padding` black pixels."""
    x = _images_uint8(x, "make_grid")
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid


def _save_png(img: torch.Tensor, path: Path) -> None:
    a = img.numpy()
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(path, format="PNG")


def save_grid(x: torch.Tensor, path, nrow: int | None = None, padding: int = 2) -> Path:
    """Write images (N, C, H, W) (float in [-1, 1] or uint8) as one PNG grid (see `make_grid`). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(make_grid(x, nrow, padding), path)
    return path


def save_image_folder(x: torch.Tensor, directory, start_index: int = 0) -> list[Path]:
    """Write one PNG per image, named by zero-padded index (000000.png, ...) from start_index. Returns the paths."""
    x = _images_uint8(x, "save_image_folder")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: is a file; expected a folder to write images into")
    directory.mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(start_index + len(x) - 1)))
    paths = []
    for i, img in enumerate(x):
        p = directory / f"{start_index + i:0{width}d}.png"
        _save_png(img, p)
        paths.append(p)
    return paths


def save_npz(x: torch.Tensor, path) -> Path:
    """Write samples to a compressed .npz. Images (N, C, H, W) are stored as uint8 under `images` (so `load` reads
    them back); anything else (e.g. 2-D toy samples (N, 2)) as float32 under `x`. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim == 4:
        np.savez_compressed(path, images=_images_uint8(x, "save_npz").numpy())
    else:
        np.savez_compressed(path, x=x.float().numpy())
    return path
