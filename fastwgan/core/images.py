"""uint8 image tensors: the one normalisation to and from [-1, 1], PNG grids and writers.

(Split out of fastwgan.data, which re-exports every name here: `fastwgan.data.to_float` etc. keep working.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "DataError",
    "to_float",
    "to_uint8",
    "photometric_images",
    "photometric_draw",
    "make_grid",
    "save_grid",
    "save_image_folder",
    "save_npz",
]


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


def as_float(x: torch.Tensor) -> torch.Tensor:
    """A training batch as the networks take it: uint8 images -> ``to_float``; floats (already in the models'
    range, e.g. toy points) as float32."""
    return to_float(x) if x.dtype == torch.uint8 else x.float()


def check_samples(x, what: str, *, images: bool = False) -> torch.Tensor:
    """Training or scoring input as a tensor, checked once for every trainer: a tensor or numpy array of N >= 1
    samples, uint8 images or floats (fastwgan's images are in [-1, 1]), all finite. ``images``: exactly
    (N, C, H, W). Anything else is a one-line ``DataError`` (a TypeError for a non-array) naming ``what``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a tensor or numpy array, got {type(x).__name__}")
    if images and x.dim() != 4:
        raise DataError(f"{what}: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dim() < 2:
        raise DataError(f"{what}: expected (N, ...) with N >= 1 samples, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: the {'domain' if images else 'set'} is empty (0 samples; N >= 1 needed)")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise DataError(f"{what}: expected uint8 images or floats in [-1, 1], got dtype {x.dtype}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise DataError(f"{what}: contains NaN or inf values")
    return x


#: The photometric augmentation's ranges (``photometric_draw``; ours, set once from how digits-m is made: a blend
#: with a texture can leave a stroke darker than its background, so the polarity flips with even odds; not tuned).
PHOTO_GAIN = (0.3, 1.0)
PHOTO_OFFSET = 0.5


def photometric_draw(n: int, channels: int, generator: torch.Generator | None = None):
    """One photometric change per image and channel for ``photometric_images``: (gain, offset), each (n, channels), the
    gain's sign one draw per image (-1 or +1, even odds; the polarity), its size U[PHOTO_GAIN] and the offset
    U[-PHOTO_OFFSET, PHOTO_OFFSET] per channel, drawn in that order from ``generator`` (three ``rand`` calls)."""
    sign = torch.where(torch.rand(n, 1, generator=generator) < 0.5, -1.0, 1.0)
    lo, hi = PHOTO_GAIN
    gain = sign * (lo + (hi - lo) * torch.rand(n, channels, generator=generator))
    offset = 2 * PHOTO_OFFSET * torch.rand(n, channels, generator=generator) - PHOTO_OFFSET
    return gain, offset


def photometric_images(x: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Images x (B, C, H, W) in [-1, 1] with a per-image, per-channel gain and offset ((B, C) each, e.g. from
    ``photometric_draw``): gain * x + offset, clamped to [-1, 1]. The augmentation that makes a classifier
    read a digit whatever its colours and polarity (``train_classifier(photometric=True)``, the adaptation
    trainers' ``photometric``)."""
    return (gain[:, :, None, None] * x + offset[:, :, None, None]).clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (inverse of `to_float`; values outside [-1, 1] are clamped, then rounded)."""
    if x.dtype == torch.uint8:
        return x
    return ((x.detach().float() + 1.0) * 127.5).clamp_(0, 255).round_().to(torch.uint8)


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
        grid[:, top : top + h, left : left + w] = x[i]
    return grid


def _save_png(img: torch.Tensor, path: Path) -> None:
    a = img.numpy()
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(path, format="PNG")


def view_scale(side: int) -> int:
    """The default enlargement of a grid of ``side``-px images: x4 below 32 px (8x8 digits become 32 px tiles),
    else 1. The run folder's sample grids and ``fastwgan sample --out FILE.png`` both use it."""
    return 4 if side < 32 else 1


def save_grid(x: torch.Tensor, path, nrow: int | None = None, padding: int = 2, scale: int | None = 1) -> Path:
    """Write images (N, C, H, W) (float in [-1, 1] or uint8) as one PNG grid (see `make_grid`), each image
    enlarged ``scale`` times by pixel repetition (None: ``view_scale`` of the images' width). Returns the path."""
    path = Path(path)
    x = torch.as_tensor(x)
    scale = view_scale(x.shape[-1]) if scale is None else scale
    if not isinstance(scale, int) or scale < 1:
        raise DataError(f"save_grid: scale must be a positive integer, got {scale!r}")
    if scale > 1:
        x = x.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(make_grid(x, nrow, padding), path)
    return path


def save_image_folder(x: torch.Tensor, directory, start_index: int = 0, classes: list[str] | None = None) -> list[Path]:
    """Write one PNG per image, named by zero-padded index (000000.png, ...) from start_index. With ``classes`` (one
    name per image) each image goes into the subfolder of its class (torchvision's ImageFolder layout).
    Returns the paths."""
    x = _images_uint8(x, "save_image_folder")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: is a file; expected a folder to write images into")
    if classes is not None and len(classes) != len(x):
        raise DataError(f"save_image_folder: {len(x)} images but {len(classes)} class names")
    directory.mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(start_index + len(x) - 1)))
    paths = []
    for i, img in enumerate(x):
        folder = directory if classes is None else directory / classes[i]
        if classes is not None:
            folder.mkdir(exist_ok=True)
        p = folder / f"{start_index + i:0{width}d}.png"
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
