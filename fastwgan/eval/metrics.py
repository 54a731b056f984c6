"""Evaluation metrics: pure functions of samples or features (no models, no files).

    frechet_distance / fid      Frechet distance between Gaussians fitted to features (FID in Inception space,
                                "classifier FID" in the digit classifier's space; see fastwgan.eval.features)
    kid                         kernel inception distance: unbiased MMD^2 with the cubic polynomial kernel
    sliced_wasserstein          sliced Wasserstein-2 distance on raw pixels (or any flattened samples)
    toy_mode_coverage           modes covered and high-quality fraction on the 2-D gaussian-mixture toys
    mode_coverage               modes covered and KL(histogram || uniform) for discrete modes (stacked digits)
    w_estimate                  the critic's Wasserstein estimate on held-out real data (Arjovsky et al. 2017)
    auroc                       area under the ROC curve of a score (anomaly detection)

All statistics are computed in float64 on the CPU: FID subtracts traces of similar size, so fp32 loses digits.
"""

from __future__ import annotations

import torch

__all__ = [
    "feature_stats",
    "frechet_distance",
    "fid",
    "kid",
    "sliced_wasserstein",
    "toy_mode_coverage",
    "mode_coverage",
    "w_estimate",
    "auroc",
]


# ----------------------------------------------------------------------------------------------------------------
# Feature-space distances.
# ----------------------------------------------------------------------------------------------------------------
def _as_features(f, what: str) -> torch.Tensor:
    f = torch.as_tensor(f).detach().cpu().to(torch.float64)
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"{what}: expected features (N, D) with N >= 2, got shape {tuple(f.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError(f"{what}: features contain NaN or inf")
    return f


def feature_stats(feats) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), float64."""
    f = _as_features(feats, "feature_stats")
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet (Wasserstein-2 squared) distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``||mu1 - mu2||^2 + tr(s1) + tr(s2) - 2 tr((s1 s2)^(1/2))``.

    ``tr((s1 s2)^(1/2))`` is computed as ``tr((A s2 A)^(1/2))`` with ``A = s1^(1/2)``: ``s1 s2`` has the same
    eigenvalues as the symmetric PSD ``A s2 A``, so two symmetric eigendecompositions replace scipy's sqrtm and
    there is no complex round-off. Negative round-off eigenvalues are clamped to 0.

    Args:
        mu1, mu2: (D,) means; sigma1, sigma2: (D, D) covariances.
    Returns:
        the distance as a float (>= 0 up to round-off).
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu2.shape[0] != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: shapes do not match: mu {tuple(mu1.shape)} / {tuple(mu2.shape)}, "
            f"sigma {tuple(s1.shape)} / {tuple(s2.shape)}"
        )
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    a = _sqrt_psd(s1)
    m = a @ s2 @ a
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + s1.trace() + s2.trace() - 2 * tr_covmean)


def fid(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    With Inception-v3 pool features this is FID (Heusel et al. 2017); with any other extractor it is FID "in that
    feature space" and only comparable to numbers computed with the same extractor, sample sizes included (FID is
    biased upwards for small N: compare against a real-vs-real FID at the same N).
    """
    return frechet_distance(*feature_stats(feats_a), *feature_stats(feats_b))


def kid(feats_a, feats_b, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 estimate with the kernel
    ``k(x, y) = (x . y / D + 1)^3``, averaged over random subsets (as in the reference implementation).

    Args:
        feats_a, feats_b: (N_a, D), (N_b, D) features.
        n_subsets: number of random subsets; subset_size: samples per subset (capped at min(N_a, N_b)).
        seed: seeds the subset draw.
    Returns:
        {"kid": mean over subsets, "kid_std": their standard deviation}. Unbiased: ~0 (can be < 0) for equal
        distributions.
    """
    a, b = _as_features(feats_a, "kid"), _as_features(feats_b, "kid")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, a.shape[0], b.shape[0])
    d = a.shape[1]
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(n_subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]
        y = b[torch.randperm(b.shape[0], generator=g)[:m]]
        kxx, kyy, kxy = ((u @ v.T / d + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
        off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        vals.append(float(off - 2 * kxy.mean()))
    t = torch.tensor(vals, dtype=torch.float64)
    return {"kid": float(t.mean()), "kid_std": float(t.std()) if len(vals) > 1 else 0.0}


# ----------------------------------------------------------------------------------------------------------------
# Pixel space.
# ----------------------------------------------------------------------------------------------------------------
def _flat_float(x, what: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu()
    if x.dtype == torch.uint8:
        from ..data import to_float

        x = to_float(x)
    if x.dim() < 2 or x.shape[0] < 1:
        raise ValueError(f"{what}: expected samples (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1).to(torch.float64)


def sliced_wasserstein(x, y, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between two sample sets, on flattened pixels (uint8 images are mapped to
    [-1, 1] first, as in training): ``sqrt(mean_theta W2^2(theta . x, theta . y))`` over random unit directions.

    Each 1-D W2 is exact from sorted projections. Unequal set sizes are matched by drawing min(N_x, N_y) samples of
    the larger set without replacement (seeded), so the value is deterministic in ``seed``.

    Args:
        x, y: (N, ...) samples with equal per-sample size.
        n_projections: random directions; seed: seeds directions and the subsample.
    Returns:
        the distance, in pixel units of [-1, 1] images (0 for identical sets).
    """
    a, b = _flat_float(x, "sliced_wasserstein"), _flat_float(y, "sliced_wasserstein")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sliced_wasserstein: sample sizes differ: {a.shape[1]} vs {b.shape[1]} values")
    g = torch.Generator().manual_seed(seed)
    n = min(a.shape[0], b.shape[0])
    if a.shape[0] > n:
        a = a[torch.randperm(a.shape[0], generator=g)[:n]]
    if b.shape[0] > n:
        b = b[torch.randperm(b.shape[0], generator=g)[:n]]
    theta = torch.randn(a.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (D, P) unit directions
    pa, pb = (a @ theta).sort(0).values, (b @ theta).sort(0).values  # (n, P)
    return float(((pa - pb) ** 2).mean().sqrt())


# ----------------------------------------------------------------------------------------------------------------
# Modes.
# ----------------------------------------------------------------------------------------------------------------
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
    from ..data import toy_modes

    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ValueError(f"toy_mode_coverage: expected (N, 2) points, got shape {tuple(samples.shape)}")
    centres, std = toy_modes(name)
    d = torch.cdist(samples.float().cpu(), centres)  # (N, K)
    dist, nearest = d.min(dim=1)
    good = dist <= n_std * std
    counts = torch.bincount(nearest[good], minlength=centres.shape[0])
    return {
        "modes": centres.shape[0],
        "modes_covered": int((counts >= min_count).sum()),
        "high_quality": float(good.float().mean()) if len(samples) else 0.0,
        "counts": counts.tolist(),
    }


def mode_coverage(modes, n_modes: int, min_count: int = 1) -> dict:
    """Modes covered and the KL divergence of the mode histogram from uniform, KL(p || U) = sum p log(p K).

    The stacked-MNIST protocol (Metz et al. 2017; Srivastava et al. 2017): classify each generated sample into
    one of K modes, count the modes hit at least ``min_count`` times, and compare the histogram with uniform.

    Args:
        modes: (N,) integer mode index per sample, in [0, n_modes).
        n_modes: K; min_count: samples a mode needs to count as covered.
    Returns:
        {"modes": K, "modes_covered": int, "kl_uniform": KL in nats (0 = uniform, log K = one mode)}.
    """
    modes = torch.as_tensor(modes).reshape(-1).long().cpu()
    if modes.numel() == 0:
        raise ValueError("mode_coverage: no samples")
    if modes.min() < 0 or modes.max() >= n_modes:
        raise ValueError(
            f"mode_coverage: mode indices must lie in [0, {n_modes}), got {int(modes.min())}..{int(modes.max())}"
        )
    counts = torch.bincount(modes, minlength=n_modes).to(torch.float64)
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] * n_modes).log()).sum())
    return {"modes": n_modes, "modes_covered": int((counts >= min_count).sum()), "kl_uniform": max(kl, 0.0)}


# ----------------------------------------------------------------------------------------------------------------
# Critic-based.
# ----------------------------------------------------------------------------------------------------------------
def w_estimate(
    trainer, real_heldout, n: int | None = None, seed: int = 0, batch_size: int = 1024, labels=None
) -> float:
    """The critic's Wasserstein estimate ``mean D(real) - mean D(G(z))`` on held-out real data.

    Arjovsky et al. 2017 suggest watching it on data the critic never trained on: when it drifts above the
    training W-estimate the critic is overfitting. (With weight clipping it is K * W for an unknown K; with a
    gradient penalty roughly W itself.)

    Args:
        trainer: a fastwgan trainer (``critic_score`` and ``sample`` are used).
        real_heldout: (N, ...) uint8 images or float samples the critic did not train on.
        n: samples used from each side (default: all of real_heldout); seed: the generator noise seed.
        labels: class-conditional trainers: the held-out samples' labels; the fakes are drawn with the same ones,
            as in training (``mean D(x, y) - mean D(G(z, y), y)``).
    Returns:
        the estimate as a float.
    """
    x = torch.as_tensor(real_heldout)
    n = x.shape[0] if n is None else min(n, x.shape[0])
    if n < 1:
        raise ValueError("w_estimate: no held-out samples")
    y = None if labels is None else torch.as_tensor(labels)[:n]
    real = trainer.critic_score(x[:n], batch_size=batch_size, labels=y).double().mean()
    fake = trainer.critic_score(
        trainer.sample(n, seed=seed, batch_size=batch_size, labels=y), batch_size=batch_size, labels=y
    )
    return float(real - fake.double().mean())


def auroc(scores_pos, scores_neg) -> float:
    """Area under the ROC curve: the probability that a random positive scores higher than a random negative
    (ties count one half; the Mann-Whitney U statistic / (n_pos n_neg)). 0.5 = chance, 1 = perfect ranking."""
    p = torch.as_tensor(scores_pos, dtype=torch.float64).reshape(-1)
    q = torch.as_tensor(scores_neg, dtype=torch.float64).reshape(-1)
    if p.numel() == 0 or q.numel() == 0:
        raise ValueError("auroc: both score sets need at least one value")
    allv = torch.cat([p, q])
    # average ranks with ties: rank(v) = #(< v) + (#(== v) + 1) / 2
    s = allv.sort().values
    lo = torch.searchsorted(s, p, right=False).double()
    hi = torch.searchsorted(s, p, right=True).double()
    rank_sum = (lo + (hi - lo + 1) / 2).sum()
    u = rank_sum - p.numel() * (p.numel() + 1) / 2
    return float(u / (p.numel() * q.numel()))
