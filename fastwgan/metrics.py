"""Evaluation metrics. (More in the evaluation issue: FID/KID, sliced Wasserstein, stacked-digit modes.)"""
from __future__ import annotations

import torch


def toy_mode_coverage(samples: torch.Tensor, name: str, n_std: float = 3.0, min_count: int = 1) -> dict:
    """Mode coverage of 2-D samples on a gaussian-mixture toy ("8gaussians", "25gaussians").

    A sample is high quality when it lies within ``n_std`` standard deviations (per coordinate, Euclidean
    distance to the nearest centre) of a mode; a mode is covered when at least ``min_count`` high-quality
    samples are nearest to it.

    Args:
        samples: (N, 2) points.
        name: the toy's name (its centres and std come from ``fastwgan.data.toy_modes``).
        n_std: the quality radius in standard deviations.
        min_count: high-quality samples a mode needs to count as covered.
    Returns:
        {"modes": K, "modes_covered": int, "high_quality": fraction in [0, 1], "counts": per-mode counts}.
    """
    from .data import toy_modes

    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ValueError(f"toy_mode_coverage: expected (N, 2) points, got shape {tuple(samples.shape)}")
    centres, std = toy_modes(name)
    d = torch.cdist(samples.float().cpu(), centres)  # (N, K)
    dist, nearest = d.min(dim=1)
    good = dist <= n_std * std
    counts = torch.bincount(nearest[good], minlength=centres.shape[0])
    return {"modes": centres.shape[0], "modes_covered": int((counts >= min_count).sum()),
            "high_quality": float(good.float().mean()) if len(samples) else 0.0, "counts": counts.tolist()}
