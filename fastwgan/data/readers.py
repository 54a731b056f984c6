"""The file readers behind `fastwgan.data.load`: MNIST IDX files, CIFAR-10 python batches and folders, folders of
PNG/JPEG images (with their class sub-folders), .npz / .npy arrays and label files, and the channel conversion and
resizing `load` applies after reading.

Each reader returns uint8 numpy arrays (images (N, C, H, W), labels as stored); `fastwgan.data.loading` picks the
reader for a source, checks the labels and makes the tensors. Bad input raises `DataError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import pickle
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.images import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "IDX_IMAGES",
    "IDX_LABELS",
    "CIFAR_BATCH",
    "CIFAR10_NAMES",
    "read_idx",
    "idx_label_file",
    "read_cifar_batch",
    "is_cifar_dir",
    "cifar_files",
    "image_files",
    "folder_files",
    "folder_classes",
    "folder_format",
    "decode_image",
    "read_image_folder",
    "to_nchw_uint8",
    "read_array_file",
    "read_npz_extras",
    "read_labels_file",
    "set_channels",
    "resize",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
IDX_IMAGES = re.compile(r"idx3[-.]ubyte(\.gz)?$")  # an IDX images file name
IDX_LABELS = re.compile(r"idx1[-.]ubyte(\.gz)?$")  # an IDX labels file name
CIFAR_BATCH = re.compile(r"^(data_batch_\d+|test_batch)$")  # a CIFAR-10 python batch file name
_LABEL_KEYS = ("labels", "y")  # .npz arrays that hold labels, never images
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e


def read_idx(path: Path, ndim: int) -> np.ndarray:
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
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) - header != math.prod(dims):
        raise DataError(
            f"{path}: IDX file is truncated or padded: header says {dims} "
            f"({math.prod(dims)} bytes), found {len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are plain dicts of numpy arrays; refuse anything else (a pickle can run arbitrary code)."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer", "frombuffer"}

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" and name in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """One CIFAR-10 (or CIFAR-100) python batch: uint8 images (N, 3, 32, 32) and its labels list (None if absent)."""
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
    labels = d.get("labels", d.get("fine_labels"))
    return data.reshape(-1, 3, 32, 32), None if labels is None else np.asarray(labels)


def is_cifar_dir(folder: Path) -> bool:
    """Whether ``folder`` holds the CIFAR-10 python batches (``data_batch_*``), not an image folder."""
    return folder.name == "cifar-10-batches-py" or any(folder.glob("data_batch_*"))


def cifar_files(folder: Path) -> list[Path]:
    """data_batch_1..5 in numeric order (the training set); test_batch only if there is no training batch."""
    train = sorted(folder.glob("data_batch_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return train or sorted(folder.glob("test_batch"))


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (any depth), in the one order all readers use: by relative path."""
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def _square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square (no distortion), then resize with Pillow's antialiasing bilinear filter."""
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    return img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)


def folder_files(folder: Path) -> list[Path]:
    """``image_files``, refused in one line when the folder holds none."""
    files = image_files(folder)
    if not files:
        raise DataError(f"{folder}: empty folder: no {'/'.join(IMAGE_SUFFIXES)} images found (searched recursively)")
    return files


def folder_classes(folder: Path, files: list[Path], need: bool) -> tuple[np.ndarray | None, list[str] | None]:
    """ImageFolder labels: the first path component under `folder` is the class; sorted class names are ids 0..K-1.
    Built from `files` itself, so label i belongs to files[i] whatever order the paths sort in."""
    parts = [p.relative_to(folder).parts for p in files]
    flat = next((q[0] for q in parts if len(q) < 2), None)
    if flat is not None:
        if need:
            raise DataError(
                f"{folder}: no class labels: labels need one sub-folder per class (ImageFolder layout), "
                f"but {flat} sits in the folder itself"
            )
        return None, None
    names = sorted({q[0] for q in parts})
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[q[0]] for q in parts], dtype=np.int64), names


def read_image_folder(folder: Path, files: list[Path], image_size: int | None, channels: int | None) -> np.ndarray:
    """The images ``files`` of ``folder`` decoded into one uint8 array (N, C, H, W), in that order."""
    mode, _ = folder_format(folder, files, image_size, channels)
    # Pass 2: decode (this is where truncated files fail), convert, resize.
    return np.stack([decode_image(p, mode, image_size) for p in files])


def folder_format(
    folder: Path, files: list[Path], image_size: int | None, channels: int | None
) -> tuple[str, tuple[int, int, int]]:
    """Pass 1 over an image folder, headers only (nothing is decoded): the Pillow mode every image is converted to
    ("L" when all are grayscale or ``channels`` is 1, else "RGB") and the decoded sample shape (C, H, W). Refuses
    unreadable headers and, without ``image_size``, mixed sizes."""
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
        raise DataError(
            f"{folder}: images have different sizes ({files[0].name} is {sizes[0]}, "
            f"{files[other].name} is {sizes[other]}); pass image_size to resize them"
        )
    w, h = (image_size, image_size) if image_size is not None else sizes[0]
    return ("L" if channels == 1 else "RGB"), (channels, h, w)


def decode_image(path: Path, mode: str, image_size: int | None) -> np.ndarray:
    """One image file as (C, H, W) uint8: decoded, converted to ``mode`` ("L" or "RGB"), centre-cropped and resized
    to ``image_size`` when given. The one decoder of image folders, in memory or streamed."""
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert(mode)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as e:
        raise DataError(f"{path}: corrupt or truncated image ({e})") from e
    if image_size is not None:
        img = _square(img, image_size)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # (C, H, W)


def to_nchw_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    """Accepted array layouts and dtypes -> uint8 (N, C, H, W)."""
    if np.issubdtype(a.dtype, np.floating) and a.size:
        finite = np.isfinite(a)
        if not finite.all():  # named by its index in the array as given
            at = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise DataError(f"{path}: image {at[0]} holds {a[at]} (at index {at}); float images must be finite")
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
        if lo >= 0.0 and hi <= 1.0:  # [0, 1]
            return np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
        if lo >= -1.0 and hi <= 1.0:  # [-1, 1]: what fastwgan's samples (Trainer.sample) hold
            return np.rint((a.astype(np.float64) + 1.0) * 127.5).astype(np.uint8)
        raise DataError(
            f"{path}: float array values must lie in [0, 1], or in [-1, 1] as fastwgan's samples do; found [{lo}, {hi}]"
        )
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        lo, hi = int(np.min(a)), int(np.max(a))
        if a.dtype != np.bool_ and (lo < 0 or hi > 255):
            raise DataError(f"{path}: integer array values must lie in 0..255, found {lo}..{hi}")
        return a.astype(np.uint8) * (255 if a.dtype == np.bool_ else 1)
    raise DataError(f"{path}: unsupported array dtype {a.dtype}: expected uint8, or float in [0, 1] or [-1, 1]")


def read_array_file(path: Path, keys=("images", "x", "arr_0")) -> np.ndarray:
    """The array of a .npy file, or the images array of an .npz: the first of ``keys`` present, else its one array
    besides labels and class names."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            names = list(z.keys())
            rest = [k for k in names if k not in (*_LABEL_KEYS, "class_names")]  # an images array beside labels
            key = next((k for k in keys if k in names), rest[0] if len(rest) == 1 else None)
            if key is None:
                raise DataError(
                    f"{path}: cannot tell which array holds the data: keys {names}, "
                    f"expected one of {list(keys)} or a single array"
                )
            return z[key]
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable {path.suffix} array file ({e})") from e


def read_npz_extras(path: Path, need_labels: bool) -> tuple[np.ndarray | None, list[str] | None]:
    """The labels (`labels` or `y`) and `class_names` arrays of an .npz, each None when absent."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = next((k for k in _LABEL_KEYS if k in keys), None)
            y = z[key] if key is not None and need_labels else None
            names = z["class_names"] if "class_names" in keys else None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz array file ({e})") from e
    if need_labels and y is None:
        raise DataError(f"{path}: no labels: expected a 'labels' or 'y' array, found {keys}")
    if y is not None and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # (N, 1) column vectors are common (e.g. from .mat files)
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{path}: 'class_names' should be a 1-D array of strings, got {names.dtype} {names.shape}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return y, names


def idx_label_file(path: Path) -> Path:
    """The IDX labels file beside an IDX images file: train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz],
    same spelling first, then the other compression and separator."""
    same = re.sub(r"idx3([-.]ubyte(\.gz)?)$", r"idx1\1", path.name.replace("images", "labels"))
    cands = [same]
    for cand in (path.name.replace("images", "labels"), path.name):
        base = IDX_IMAGES.sub("", cand)
        cands += [base + suffix for suffix in ("idx1-ubyte", "idx1-ubyte.gz", "idx1.ubyte", "idx1.ubyte.gz")]
    found = next((path.with_name(c) for c in cands if path.with_name(c).is_file()), None)
    if found is None:
        raise DataError(
            f"{path}: no IDX label file beside it: looked for {same} (with or without .gz); "
            "pass labels_path= to name it"
        )
    return found


def read_labels_file(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """An explicit labels_path: an IDX labels file, a .npy array or an .npz with `labels` / `y`."""
    if IDX_LABELS.search(path.name) or IDX_IMAGES.search(path.name):
        return read_idx(path, 1), None  # an images file here fails the 1-dimension check
    if path.suffix.lower() == ".npy":
        return read_array_file(path), None
    if path.suffix.lower() == ".npz":
        return read_npz_extras(path, need_labels=True)
    raise DataError(f"{path}: labels_path must be an IDX labels file (*-idx1-ubyte[.gz]), .npy or .npz")


def set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """uint8 images (N, C, H, W) converted to ``channels`` (1 or 3): gray repeated, or RGB -> L."""
    c = x.shape[1]
    if c == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    # RGB -> L with Pillow's ITU-R 601-2 weights, so folders and arrays convert identically.
    y = x[:, 0] * 0.299 + x[:, 1] * 0.587 + x[:, 2] * 0.114
    return np.rint(y)[:, None].astype(np.uint8)


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 images (N, C, H, W) centre-cropped to a square and resized to size x size, as folders are."""
    if x.shape[2] == x.shape[3] == size:
        return x
    out = np.empty((x.shape[0], x.shape[1], size, size), dtype=np.uint8)
    for i, im in enumerate(x):
        img = Image.fromarray(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))
        a = np.asarray(_square(img, size))
        out[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return out
