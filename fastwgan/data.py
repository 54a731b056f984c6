"""Datasets as uint8 tensors (the 2-D toys live in `fastwgan.toys`, normalisation and writers in
`fastwgan.images`; every public name of both is re-exported here).

Every image source becomes a uint8 tensor of shape (N, C, H, W) with C in {1, 3}. Training works in float32
[-1, 1]; `to_float` / `to_uint8` are the ONE place that maps between the two (x / 127.5 - 1 and back).

Sources for `load`:
    "digits"          the bundled UCI handwritten digits, (1797, 1, 8, 8) (see fastwgan/assets/DIGITS.md)
    "digits-train"    a fixed split of them: 1297 for training and 500 held out ("digits-heldout"), see `digits_split`
    "stacked-digits"  50000 images (3, 8, 8): three digits-train digits in three channels, 1000 modes (`stacked_digits`)
    "digits-m"        the 1797 digits blended with seeded colour textures like MNIST-M, (1797, 3, 8, 8) (`digits_m`)
    "digits-m-train"  digits-m in the digits-train split: 1297 (3, 8, 8), image j = digits-train image j textured
    "digits-m-heldout" digits-m in the digits-heldout split: 500 (3, 8, 8), image j = digits-heldout image j textured
    "toy:NAME"        a 2-D toy ("8gaussians", "25gaussians", "swissroll"): float32 (100000, 2), NOT uint8
    a folder          PNG/JPEG images, recursive, sorted by relative path; or a `cifar-10-batches-py` folder
    *-idx3-ubyte[.gz] MNIST / Fashion-MNIST IDX image file
    data_batch_N      a CIFAR-10 python batch (test_batch too)
    .npz / .npy       arrays (N, H, W), (N, H, W, C) or (N, C, H, W); uint8, integers in 0..255, or float in [0, 1]

Labels: `load(source, labels=True)` returns (images, int64 labels (N,)), image i with label i, from the same files
in the same order; `class_names(source)` names the classes; `check_labels` is the one validator (trainers call it
too). What carries labels:
    "digits", "digits-train", "digits-heldout"   the digit 0..9 ("stacked-digits" is refused: 3 digits per image)
    "digits-m", "digits-m-train", "digits-m-heldout"   the digit 0..9, as for the plain digits
    a folder with one sub-folder per class        sorted sub-folder names are classes 0..K-1 (torchvision ImageFolder)
    *-idx3-ubyte[.gz]                             the *-labels-idx1-ubyte[.gz] beside it, or labels_path=
    CIFAR-10 batch or folder                      the batches' "labels"; names airplane .. truck
    .npz                                          a `labels` (or `y`) array; names from a `class_names` array if any
    .npy / IDX with labels_path=                  an IDX labels file, .npy or .npz (`labels`/`y`) holding the labels
Toys, flat image folders and .npy files alone have no labels: asking for them is refused.

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
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .images import DataError, make_grid, save_grid, save_image_folder, save_npz, to_float, to_uint8
from .toys import TOY_NAMES, TOY_SIZE, toy, toy_modes

__all__ = [
    "DataError",
    "TOY_NAMES",
    "BUILTIN",
    "is_named",
    "load",
    "load_labels",
    "class_names",
    "check_labels",
    "load_digits",
    "digits_split",
    "stacked_digits",
    "digits_m",
    "colour_textures",
    "toy",
    "toy_modes",
    "to_float",
    "to_uint8",
    "make_grid",
    "save_grid",
    "save_image_folder",
    "save_npz",
]

BUILTIN = (
    "digits",
    "digits-train",
    "digits-heldout",
    "stacked-digits",  # and "toy:NAME": data shipped in the package
    "digits-m",
    "digits-m-train",
    "digits-m-heldout",
)


def is_named(source) -> bool:
    """Whether ``source`` names built-in data ("digits", "digits-heldout", "toy:8gaussians", ...) rather than a
    path; ``load`` takes both."""
    return isinstance(source, str) and (source in BUILTIN or source.startswith("toy:"))


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_IDX_IMAGES = re.compile(r"idx3[-.]ubyte(\.gz)?$")
_IDX_LABELS = re.compile(r"idx1[-.]ubyte(\.gz)?$")
_CIFAR_BATCH = re.compile(r"^(data_batch_\d+|test_batch)$")
_LABEL_KEYS = ("labels", "y")  # .npz arrays that hold labels, never images
DIGIT_NAMES = tuple(str(i) for i in range(10))
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


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
DIGITS_M_SEED = 0  # the texture seed of "digits-m"


def _split_index(part: str, n: int) -> torch.Tensor:
    """The indices into the n = 1797 bundled digits of split `part` ("train": 1297, "heldout": 500): one fixed
    permutation (numpy seed 0), its first DIGITS_HELDOUT entries held out. Shared by `digits_split` and `digits_m`."""
    perm = torch.from_numpy(np.random.default_rng(0).permutation(n))
    return perm[DIGITS_HELDOUT:] if part == "train" else perm[:DIGITS_HELDOUT]


def digits_split(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed split of the bundled digits: part "train" (1297) or "heldout" (500). Returns (images, labels)."""
    if part not in ("train", "heldout"):
        raise DataError(f"digits_split: part must be 'train' or 'heldout', got {part!r}")
    x, y = load_digits(return_labels=True)
    idx = _split_index(part, len(x))
    return x[idx], y[idx]


def colour_textures(n: int, size: int = 8, seed: int = DIGITS_M_SEED) -> torch.Tensor:
    """``n`` procedural colour textures, uint8 (n, 3, size, size), like small crops of natural photos.

    Deterministic: every random number comes from one CPU ``torch.Generator`` seeded with ``seed`` (never torch's
    global RNG), drawn in this order, each as one ``torch.rand`` float64 tensor (uniform in [0, 1)):
        1. base   (n, 3, 1, 1)   the texture's mean colour;
        2. coarse (n, 3, 3, 3)   a smooth colour field: a 3x3 RGB grid;
        3. fine   (n, 3, 5, 5)   a weaker higher-frequency component: a 5x5 RGB grid;
        4. gain   (n, 1, 1, 1)   the texture's contrast.
    Both grids are upsampled bilinearly (align_corners=True) to size x size and centred (u - 0.5), then
        texture = 255 * clamp(base + (0.3 + 0.6 * gain) * (coarse_up - 0.5 + 0.25 * (fine_up - 0.5)), 0, 1),
    rounded to the nearest integer. Each tensor is drawn for all n textures at once, so the result depends on
    (n, size, seed); `digits_m` uses colour_textures(1797, 8, seed).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DataError(f"colour_textures: n must be an int >= 0, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"colour_textures: size must be a positive int, got {size!r}")
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    base = torch.rand(n, 3, 1, 1, generator=g, dtype=torch.float64)
    coarse = torch.rand(n, 3, 3, 3, generator=g, dtype=torch.float64)
    fine = torch.rand(n, 3, 5, 5, generator=g, dtype=torch.float64)
    gain = torch.rand(n, 1, 1, 1, generator=g, dtype=torch.float64)
    if n == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)

    def up(grid: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)

    t = base + (0.3 + 0.6 * gain) * (up(coarse) - 0.5 + 0.25 * (up(fine) - 0.5))
    return (t.clamp(0, 1) * 255).round().to(torch.uint8)


def digits_m(part: str = "all", seed: int = DIGITS_M_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled digits made the way MNIST-M is made from MNIST (Ganin et al. 2016): each digit blended with a
    colour patch as |patch - digit| per channel, the patches being `colour_textures` (offline, seeded).

    Image i of the 1797 is |colour_textures(1797, 8, seed)[i] - load_digits()[i]| (the 1-channel digit broadcast
    over RGB), so it is the same whatever part is asked.

    Args:
        part: "all" (1797, the order of `load_digits`), "train" (1297) or "heldout" (500): the same permutation
            as `digits_split`, so image j of a part is the textured image j of that `digits_split` part.
        seed: the texture seed (default DIGITS_M_SEED, the one "digits-m" uses).
    Returns:
        uint8 images (N, 3, 8, 8) and int64 digit labels (N,).
    """
    if part not in ("all", "train", "heldout"):
        raise DataError(f"digits_m: part must be 'all', 'train' or 'heldout', got {part!r}")
    x, y = load_digits(return_labels=True)
    tex = colour_textures(len(x), x.shape[-1], seed)
    img = (tex.to(torch.int16) - x.to(torch.int16)).abs().to(torch.uint8)
    if part == "all":
        return img, y
    idx = _split_index(part, len(x))
    return img[idx], y[idx]


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


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
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


def _cifar_files(folder: Path) -> list[Path]:
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


def _read_image_folder(folder: Path, files: list[Path], image_size: int | None, channels: int | None) -> np.ndarray:
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


def _to_nchw_uint8(a: np.ndarray, path: Path) -> np.ndarray:
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


def _read_array_file(path: Path, keys=("images", "x", "arr_0")) -> np.ndarray:
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


def _read_npz_extras(path: Path, need_labels: bool) -> tuple[np.ndarray | None, list[str] | None]:
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


def _idx_label_file(path: Path) -> Path:
    """The IDX labels file beside an IDX images file: train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz],
    same spelling first, then the other compression and separator."""
    same = re.sub(r"idx3([-.]ubyte(\.gz)?)$", r"idx1\1", path.name.replace("images", "labels"))
    cands = [same]
    for cand in (path.name.replace("images", "labels"), path.name):
        base = _IDX_IMAGES.sub("", cand)
        cands += [base + suffix for suffix in ("idx1-ubyte", "idx1-ubyte.gz", "idx1.ubyte", "idx1.ubyte.gz")]
    found = next((path.with_name(c) for c in cands if path.with_name(c).is_file()), None)
    if found is None:
        raise DataError(
            f"{path}: no IDX label file beside it: looked for {same} (with or without .gz); "
            "pass labels_path= to name it"
        )
    return found


def _read_labels_file(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """An explicit labels_path: an IDX labels file, a .npy array or an .npz with `labels` / `y`."""
    if _IDX_LABELS.search(path.name) or _IDX_IMAGES.search(path.name):
        return _read_idx(path, 1), None  # an images file here fails the 1-dimension check
    if path.suffix.lower() == ".npy":
        return _read_array_file(path), None
    if path.suffix.lower() == ".npz":
        return _read_npz_extras(path, need_labels=True)
    raise DataError(f"{path}: labels_path must be an IDX labels file (*-idx1-ubyte[.gz]), .npy or .npz")


class _Read(NamedTuple):
    images: np.ndarray | None  # uint8 (N, C, H, W), before channels / resizing; None unless asked
    labels: torch.Tensor | None  # int64 (N,), checked; None unless asked
    names: list[str] | None  # class names, when the source has them


def _read(
    source,
    what: str,
    *,
    images: bool,
    labels: bool,
    labels_path=None,
    image_size: int | None = None,
    channels: int | None = None,
) -> _Read:
    """One dispatch for images, labels and class names, so labels come from the same files in the same order.
    Reads only what is asked: `class_names` asks for neither images nor labels."""
    y, names = None, None
    if is_named(source):
        if labels_path is not None:
            raise DataError(f"labels_path: {source!r} is built-in data that carries its own labels")
        if source.startswith("toy:"):  # `load` returns toy points itself; only labels get here
            if labels:
                raise DataError(f"{source}: toy data has no labels")
            return _Read(None, None, None)
        if source == "stacked-digits":
            if labels:
                raise DataError(
                    "stacked-digits: labels are not supported (each image holds 3 digits); "
                    "stacked_digits() returns its 1000 mode ids"
                )
            return _Read(stacked_digits()[0].numpy() if images else None, None, None)
        if source.startswith("digits-m"):
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
            files = _cifar_files(path)
            if not files:
                raise DataError(f"{path}: CIFAR-10 folder has no data_batch_N or test_batch file")
            batches = [(f, *_read_cifar_batch(f)) for f in files] if images or labels else []
            x = np.concatenate([b[1] for b in batches]) if images else None
            y = np.concatenate([_cifar_labels(*b) for b in batches]) if labels else None
            return _finish(x, y, list(CIFAR10_NAMES), str(path))
        files = folder_files(path)
        y, names = folder_classes(path, files, need=labels)
        x = _read_image_folder(path, files, image_size, channels) if images else None
        return _finish(x, y if labels else None, names, str(path))

    name, suffix = path.name, path.suffix.lower()
    if _IDX_IMAGES.search(name):
        x = _read_idx(path, 3)[:, None] if images else None
        if own:
            label_file = _idx_label_file(path)
            return _finish(x, _read_idx(label_file, 1), None, f"{path} (labels: {label_file.name})")
    elif _IDX_LABELS.search(name) and not images:
        if labels_path is not None:
            raise DataError(f"labels_path: {path} is itself an IDX labels file")
        return _finish(None, _read_idx(path, 1) if labels else None, None, str(path))
    elif _CIFAR_BATCH.match(name):
        if labels_path is not None:
            raise DataError(f"labels_path: {path} carries its own labels (a CIFAR batch)")
        if images or labels:
            x, y = _read_cifar_batch(path)
            y = _cifar_labels(path, x, y) if labels else None
        return _finish(x if images else None, y, list(CIFAR10_NAMES), str(path))
    elif suffix in (".npz", ".npy"):
        x = _to_nchw_uint8(_read_array_file(path), path) if images else None
        if suffix == ".npz" and (labels or not images):  # plain `load` never looks beyond the images array
            y, names = _read_npz_extras(path, need_labels=own)
        elif own:
            raise DataError(
                f"{path}: no labels: a .npy file holds one array; save an .npz with a 'labels' array "
                "or pass labels_path="
            )
    elif labels and not images and labels_path is None:
        raise DataError(f"{path}: this source has no labels")
    elif suffix in IMAGE_SUFFIXES:
        raise DataError(f"{path}: is a single image file; expected a folder of images")
    elif _IDX_LABELS.search(name):
        raise DataError(f"{path}: is an IDX labels file; load the images file (*-idx3-ubyte[.gz]) with labels=True")
    else:
        raise DataError(
            f"{path}: unrecognised data file: expected a folder of images, *-idx3-ubyte[.gz], "
            "a CIFAR-10 data_batch_N, .npz or .npy"
        )
    if labels and labels_path is not None:
        lp = Path(labels_path)
        y, names = _read_labels_file(lp)
        return _finish(x, y, names, f"{path} (labels: {lp})")
    return _finish(x, y if labels else None, names, str(path))


def _cifar_labels(path: Path, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """One batch's labels, checked against its own images so a bad batch is named before concatenation."""
    if y is None:
        raise DataError(f"{path}: CIFAR batch has no 'labels' list")
    return check_labels(y, len(x), what=str(path)).numpy()


def _finish(x, y, names, what: str) -> _Read:
    if y is not None:
        y = check_labels(y, None if x is None else len(x), None if names is None else len(names), what=what)
    return _Read(x, y, names)


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
            raise DataError(
                f"unknown data source {s!r}: expected one of {', '.join(BUILTIN)}, "
                f"'toy:NAME' {TOY_NAMES} or an "
                f"existing path (no file or folder named {s!r} here either)"
            )
        raise FileNotFoundError(f"{what}: no such file or folder: {path}")
    return path


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


def load(source, *, image_size: int | None = None, channels: int | None = None, labels: bool = False, labels_path=None):
    """Load a dataset as a uint8 (N, C, H, W) tensor (toys: float32 (N, 2), see below), with labels if asked.

    Args:
        source: "digits" (bundled; also "digits-m" etc., see module doc), "toy:NAME" (8gaussians | 25gaussians |
            swissroll; returns float32 (100000, 2) coordinates with seed 0, NOT uint8; use `toy` for other sizes
            and seeds), or a path (see module doc).
        image_size: if given, every image is centre-cropped to a square and resized to image_size x image_size
            (Pillow bilinear with antialiasing). Image folders with mixed sizes need it.
        channels: 1 (grayscale) or 3 (RGB) to convert; default keeps the source's channels (image folders: RGB
            unless every image is grayscale).
        labels: also return int64 class labels (N,), label i for image i (module doc lists the sources that have
            them; the others are refused).
        labels_path: with labels=True, read the labels from this file instead (an IDX labels file, .npy or .npz
            with `labels` / `y`), for IDX and array sources.
    Returns:
        uint8 tensor (N, C, H, W); float32 (N, 2) for toys; with labels=True, (images, labels).
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive int, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if not isinstance(labels, bool):
        raise DataError(f"labels must be True or False, got {labels!r}; a labels file goes in labels_path=")
    if labels_path is not None and not labels:
        raise DataError("labels_path is only used with labels=True; pass labels=True to read labels from it")
    if isinstance(source, str) and source.startswith("toy:") and not labels:
        return toy(source[4:], TOY_SIZE, seed=0)
    r = _read(
        source, "load", images=True, labels=labels, labels_path=labels_path, image_size=image_size, channels=channels
    )
    x = r.images
    if channels is not None:
        x = _set_channels(x, channels)
    if image_size is not None:
        x = _resize(x, image_size)
    x = np.ascontiguousarray(x)
    x = torch.from_numpy(x if x.flags.writeable else x.copy())
    return (x, r.labels) if labels else x


def load_labels(source, *, labels_path=None) -> torch.Tensor:
    """Integer class labels (N,) int64 in the order `load(source)` returns images, without decoding the images
    (so the image count is not checked; `load(source, labels=True)` checks it). Sources as for `load(labels=True)`,
    plus an IDX labels file (*-labels-idx1-ubyte[.gz]) on its own."""
    return _read(source, "load_labels", images=False, labels=True, labels_path=labels_path).labels


def class_names(source) -> list[str] | None:
    """The names of the classes 0..K-1 that `load(source, labels=True)` returns, or None where the source names none.

    Digits (and digits-m): "0".."9"; CIFAR-10: airplane .. truck; a folder: its sorted class sub-folder names
    (those holding at least one image; None for a flat folder); .npz: its `class_names` array, if any; IDX, .npy,
    toys, stacked-digits: None.
    """
    return _read(source, "class_names", images=False, labels=False).names
