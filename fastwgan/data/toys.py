"""The 2-D toy datasets of the WGAN-GP paper (8 gaussians, 25 gaussians, swiss roll) and their mode centres.

(`fastwgan.data` re-exports `toy`, `toy_modes`, `TOY_NAMES` and `TOY_SIZE`.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.images import DataError

__all__ = ["TOY_NAMES", "toy", "toy_modes"]

TOY_NAMES = ("8gaussians", "25gaussians", "swissroll")


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


TOY_SIZE = 100_000  # the default n: the WGAN-GP authors' 25-gaussians set has 100000 points


def toy(name: str, n: int = TOY_SIZE, seed: int = 0) -> torch.Tensor:
    """n samples (default 100000, as in the WGAN-GP authors' toy script) of a 2-D toy distribution as a float32
    (n, 2) tensor, deterministic in `seed`.

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
