"""Every metric against a known case: identical sets, analytic Frechet distances, one-mode generators, uniform
histograms, brute-force AUROC, and the feature-extractor loader with a small scripted network."""

import math

import numpy as np
import pytest
import torch

from fastwgan import data
from fastwgan.eval import metrics
from fastwgan.eval.features import FeatureExtractor, load_feature_extractor


def _gauss(n, mu, std, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mu), generator=g, dtype=torch.float64) * torch.tensor(std) + torch.tensor(mu)


# ---------------------------------------------------------------------------------------------------- Frechet
def test_identical_sets_give_fid_zero():
    f = _gauss(500, [0.0] * 7, [1.0] * 7, seed=0)
    assert abs(metrics.fid(f, f)) < 1e-8


def test_frechet_distance_of_shifted_diagonal_gaussians_is_analytic():
    # N(mu1, diag(s1^2)) vs N(mu2, diag(s2^2)): ||mu1 - mu2||^2 + sum (s1 - s2)^2
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([3.0, 1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.5, 2.0, 3.0])
    want = float(((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum())
    got = metrics.frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert got == pytest.approx(want, rel=1e-10)


def test_frechet_distance_matches_eigenvalue_formula_for_non_commuting_covariances():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, 5, generator=g, dtype=torch.float64), torch.randn(5, 5, generator=g, dtype=torch.float64)
    s1, s2 = a @ a.T + 0.1 * torch.eye(5), b @ b.T + 0.1 * torch.eye(5)
    mu1, mu2 = torch.randn(5, generator=g, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    # tr sqrt(s1 s2) = sum sqrt(eig(s1 s2)) (real, non-negative: s1 s2 is similar to a PSD matrix)
    eig = np.linalg.eigvals(s1.numpy() @ s2.numpy()).real
    want = float((mu1**2).sum() + s1.trace() + s2.trace()) - 2 * np.sqrt(np.clip(eig, 0, None)).sum()
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)


def test_fid_of_shifted_gaussian_samples_approaches_the_analytic_value():
    x = _gauss(20000, [0.0, 0.0], [1.0, 1.0], seed=1)
    y = _gauss(20000, [2.0, 0.0], [1.0, 1.0], seed=2)
    assert metrics.fid(x, y) == pytest.approx(4.0, abs=0.1)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        metrics.frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.fid(torch.zeros(1, 3), torch.zeros(5, 3))


# ---------------------------------------------------------------------------------------------------- KID
def test_kid_is_about_zero_for_identical_distributions_and_positive_for_shifted():
    x = _gauss(400, [0.0] * 4, [1.0] * 4, seed=4)
    y = _gauss(400, [0.0] * 4, [1.0] * 4, seed=5)
    z = _gauss(400, [1.0] * 4, [1.0] * 4, seed=6)
    shifted = metrics.kid(x, z, n_subsets=10, subset_size=200)["kid"]
    assert shifted > 5  # ~8.5 for this kernel and shift
    # unbiased: a set against itself is ~0 (the estimator pairs distinct points only), and two independent
    # samples of one distribution are within the subset spread of 0
    assert abs(metrics.kid(x, x, n_subsets=10, subset_size=400)["kid"]) < 0.01 * shifted
    other = metrics.kid(x, y, n_subsets=10, subset_size=200)
    assert abs(other["kid"]) < 3 * other["kid_std"] + 0.01 * shifted


# ---------------------------------------------------------------------------------------------------- SWD
def test_sliced_wasserstein_is_zero_for_identical_sets_and_order_free():
    x = data.load("digits")[:300]
    assert metrics.sliced_wasserstein(x, x) == 0.0
    assert metrics.sliced_wasserstein(x, x.flip(0)) == pytest.approx(0.0, abs=1e-12)


def test_sliced_wasserstein_of_a_shift_is_the_shift_times_mean_projection():
    # y = x + c e_1: each projection shifts by c theta_1, so SW2^2 = c^2 mean(theta_1^2) ~ c^2 / D
    x = _gauss(1000, [0.0] * 4, [1.0] * 4, seed=7)
    y = x + torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, y, n_projections=4000) == pytest.approx(2.0 / math.sqrt(4), rel=0.05)
    with pytest.raises(ValueError, match="sizes differ"):
        metrics.sliced_wasserstein(x, x[:, :3])


# ---------------------------------------------------------------------------------------------------- modes
def test_one_mode_generator_scores_one_of_25_modes():
    centres, std = data.toy_modes("25gaussians")
    g = torch.Generator().manual_seed(0)
    one = centres[7] + std * torch.randn(5000, 2, generator=g)
    cov = metrics.toy_mode_coverage(one, "25gaussians")
    assert cov["modes_covered"] == 1 and cov["high_quality"] > 0.95
    real = metrics.toy_mode_coverage(data.toy("25gaussians", 5000, seed=1), "25gaussians")
    assert real["modes_covered"] == 25 and real["high_quality"] > 0.98


def test_uniform_histogram_gives_kl_zero_and_one_mode_gives_log_k():
    uniform = torch.arange(1000).repeat(3)
    assert metrics.mode_coverage(uniform, 1000) == {"modes": 1000, "modes_covered": 1000, "kl_uniform": 0.0}
    one = metrics.mode_coverage(torch.full((50,), 42), 1000)
    assert one["modes_covered"] == 1 and one["kl_uniform"] == pytest.approx(math.log(1000))
    half = metrics.mode_coverage(torch.arange(500), 1000)  # uniform over half the modes: KL = log 2
    assert half["kl_uniform"] == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="lie in"):
        metrics.mode_coverage(torch.tensor([1000]), 1000)


def test_stacked_digits_have_1000_balanced_modes():
    x, modes = data.stacked_digits(20000, seed=0)
    assert x.shape == (20000, 3, 8, 8) and x.dtype == torch.uint8
    cov = metrics.mode_coverage(modes, 1000)
    assert cov["modes_covered"] == 1000 and cov["kl_uniform"] < 0.05


# ---------------------------------------------------------------------------------------------------- AUROC
def test_auroc_matches_brute_force_with_ties():
    g = torch.Generator().manual_seed(8)
    p = torch.randint(0, 5, (37,), generator=g).double()
    q = torch.randint(0, 5, (23,), generator=g).double() - 1
    brute = float(((p[:, None] > q[None]).double() + 0.5 * (p[:, None] == q[None]).double()).mean())
    assert metrics.auroc(p, q) == pytest.approx(brute, abs=1e-12)
    assert metrics.auroc([3.0, 4.0], [1.0, 2.0]) == 1.0 and metrics.auroc([1.0], [2.0]) == 0.0
    assert metrics.auroc([1.0, 1.0], [1.0]) == 0.5


# ---------------------------------------------------------------------------------------------------- extractors
class _Tiny(torch.nn.Module):
    """A stand-in for Inception: uint8 (N, 3, H, W) -> (N, 6) features, with the NVlabs keyword."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        h = self.conv(x.float() / 255.0).mean(dim=(2, 3))
        return h if return_features else h.sum(1, keepdim=True)


def test_feature_extractor_round_trip_through_a_torchscript_file(tmp_path):
    torch.manual_seed(0)
    net = _Tiny()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    ext = load_feature_extractor(path)
    x = data.load("digits")[:50]  # gray: repeated to 3 channels
    f = ext(x, batch_size=16)
    assert f.shape == (50, 6) and f.dtype == torch.float64  # return_features=True was passed
    want = net(x.expand(-1, 3, -1, -1), return_features=True).double()
    torch.testing.assert_close(f, want)
    torch.testing.assert_close(ext(data.to_float(x)), f)  # [-1, 1] floats are mapped back to uint8
    assert abs(metrics.fid(f, f)) < 1e-8


def test_feature_extractor_refuses_pickles_unless_trusted(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(_Tiny(), path)
    with pytest.raises(ValueError, match="TorchScript"):
        load_feature_extractor(path)
    assert load_feature_extractor(path, trusted=True)(data.load("digits")[:4]).shape == (4, 6)
    with pytest.raises(FileNotFoundError):
        load_feature_extractor(tmp_path / "missing.pt")
    assert isinstance(load_feature_extractor(path, trusted=True), FeatureExtractor)
