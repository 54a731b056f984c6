"""GP kernels (interpolation, in-kernel eps, penalty forward and backward) against their plain-PyTorch twins."""

import pytest
import torch
import triton
import triton.language as tl
from hypothesis import given
from hypothesis import strategies as st

from fastwgan import ops
from fastwgan.kernels import gp as kgp
from fastwgan.kernels.common import round_to
from fastwgan.ops import twins

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not ops.INTERPRET, reason="Triton on CPU needs TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=pytest.mark.gpu),
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]

# Tolerance rule: kernel and twin evaluate the same fp32 expression and round once to the output dtype (the kernel
# rounds bf16 to nearest even by hand, see kernels/common.round_to). Before that rounding they may differ by fp32
# reassociation: summation order in the norm (~1e-6 relative for these sizes), FMA contraction on GPU. So: one
# ulp of the output dtype (rtol = 2^-mantissa bits), plus fp32 noise.
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.bfloat16: dict(rtol=2.0**-7, atol=1e-5),
    torch.float16: dict(rtol=2.0**-10, atol=1e-5),
}

# Shape buckets: batch 1, primes, and per-sample sizes from a single element to more than one 1024-wide tile.
BATCHES = st.sampled_from([1, 2, 3, 5, 17])
FEATURES = st.sampled_from([(), (1,), (2,), (7,), (3, 5), (1, 4, 4), (3, 7, 5), (3, 32, 11)])
SEEDS = st.integers(0, 2**31 - 1)


def _make(shape, seed, dtype, device, strided=False, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, 2, generator=g) * scale  # (..., 2): [..., 0] is a non-contiguous view
    x = x[..., 0] if strided else x[..., 0].contiguous()
    return x.to(device=device, dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(b=BATCHES, feat=FEATURES, seed=SEEDS, strided=st.booleans())
def test_interpolate_matches_twin(device, dtype, b, feat, seed, strided):
    real = _make((b, *feat), seed, dtype, device, strided)
    fake = _make((b, *feat), seed + 1, dtype, device, strided)
    eps = torch.rand(b, generator=torch.Generator().manual_seed(seed)).to(device)
    got = ops.gp_interpolate(real, fake, eps, impl="triton")
    want = twins.gp_interpolate(real, fake, eps)
    assert got.dtype == dtype and got.shape == real.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, **TOL[dtype], msg=f"x_hat {dtype} {tuple(real.shape)}")
    # eps = 1 and eps = 0 pick real and fake exactly
    ends = torch.tensor([1.0, 0.0] * b, device=device)[:b]
    exact = ops.gp_interpolate(real, fake, ends, impl="triton")
    assert torch.equal(exact[0], real[0]) and (b < 2 or torch.equal(exact[1], fake[1]))


@pytest.mark.parametrize("device", DEVICES)
@given(b=BATCHES, feat=FEATURES, seed=st.integers(-(2**62), 2**62), dtype=st.sampled_from(DTYPES))
def test_interpolate_rand_eps_is_the_twins_bit_for_bit(device, b, feat, seed, dtype):
    real = _make((b, *feat), 3, dtype, device)
    fake = _make((b, *feat), 4, dtype, device)
    seed_t = torch.tensor(seed, device=device)
    x_hat, eps = ops.gp_interpolate_rand(real, fake, seed_t, impl="triton")
    want_eps = twins.gp_eps_from_seed(seed, b, device)
    assert eps.dtype == torch.float32 and torch.equal(eps, want_eps), f"eps for seed {seed}"
    assert bool(((eps >= 0) & (eps < 1)).all())
    torch.testing.assert_close(x_hat, twins.gp_interpolate(real, fake, eps), **TOL[dtype])
    # an int seed and a tensor seed draw the same eps
    assert torch.equal(ops.gp_interpolate_rand(real, fake, seed, impl="triton")[1], eps)


def test_eps_from_seed_is_uniform_and_fresh_per_seed():
    # Not a statistical proof, a guard against a broken hash: moments of U[0, 1) and no repeats across seeds.
    e = twins.gp_eps_from_seed(7, 1 << 16)
    assert abs(e.mean().item() - 0.5) < 0.01 and abs(e.var().item() - 1 / 12) < 0.005
    hist = torch.histc(e, bins=16, min=0, max=1) / e.numel()
    assert (hist - 1 / 16).abs().max().item() < 0.01
    firsts = torch.stack([twins.gp_eps_from_seed(s, 4) for s in range(256)])  # (256, 4)
    assert torch.unique(firsts).numel() == firsts.numel()
    assert (twins.MASK32, twins.MUL1, twins.MUL2, twins.GOLDEN) == (kgp.MASK32, kgp.MUL1, kgp.MUL2, kgp.GOLDEN)


def _grad_like(b, feat, seed, dtype, device, strided, zero_row):
    m = max(1, int(torch.tensor(feat).prod().item()) if feat else 1)
    # scale so that norms land around 1, where (n - 1)^2 is most sensitive and the one-sided variant matters
    g = _make((b, *feat), seed, torch.float32, "cpu", strided, scale=1.0 / m**0.5)
    g = g * torch.linspace(0.5, 1.5, b).reshape(b, *[1] * len(feat))
    if zero_row:
        g[0] = 0
    return g.to(device=device, dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    b=BATCHES,
    feat=FEATURES,
    seed=SEEDS,
    one_sided=st.booleans(),
    zero_row=st.booleans(),
    strided=st.booleans(),
    weight=st.sampled_from([0.1, 10.0]),
)
def test_penalty_forward_and_backward_match_twin(device, dtype, b, feat, seed, one_sided, zero_row, strided, weight):
    g = _grad_like(b, feat, seed, dtype, device, strided, zero_row)
    pen, norms = ops.gradient_penalty(g, weight, one_sided, impl="triton", return_norms=True)
    pen_t, norms_t = twins.gradient_penalty(g, weight, one_sided, return_norms=True)
    assert pen.shape == () and pen.dtype == dtype and norms.dtype == torch.float32 and norms.shape == (b,)
    torch.testing.assert_close(norms, norms_t, **TOL[torch.float32], msg="norms")
    torch.testing.assert_close(
        pen, pen_t, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * weight, msg=f"penalty {dtype}"
    )
    # backward op against the twin's closed form, fed the same norms so only elementwise rounding differs
    go = torch.tensor(0.75, device=device, dtype=dtype)
    dg = torch.ops.fastwgan.gp_penalty_backward(go, g, norms, weight, one_sided)
    dg_t = twins.gradient_penalty_backward(go, g, norms, weight, one_sided)
    assert dg.dtype == dtype and dg.shape == g.shape
    scale = dg_t.abs().max().item() + 1e-30
    torch.testing.assert_close(dg, dg_t, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale, msg="dL/dg")
    if zero_row:
        assert torch.equal(dg[0], torch.zeros_like(dg[0])), "zero row must get a zero gradient"


@given(b=BATCHES, feat=FEATURES, seed=SEEDS, one_sided=st.booleans(), zero_row=st.booleans())
def test_twin_backward_formula_is_autograd_of_twin(b, feat, seed, one_sided, zero_row):
    # ties the closed form the kernel implements to plain autograd of the definition (fp32, CPU, no Triton)
    g = _grad_like(b, feat, seed, torch.float32, "cpu", False, zero_row).requires_grad_()
    pen, norms = twins.gradient_penalty(g, 10.0, one_sided, return_norms=True)
    (auto,) = torch.autograd.grad(pen, g)
    formula = twins.gradient_penalty_backward(torch.tensor(1.0), g.detach(), norms.detach(), 10.0, one_sided)
    torch.testing.assert_close(formula, auto, rtol=1e-5, atol=1e-6 * (auto.abs().max().item() + 1e-30))
    assert torch.isfinite(auto).all()


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_and_empty_samples(device):
    g = torch.zeros(0, 3, device=device)
    pen, norms = ops.gradient_penalty(g, 10.0, impl="triton", return_norms=True)
    assert norms.shape == (0,) and torch.isnan(pen) and torch.isnan(twins.gradient_penalty(g, 10.0))
    real = torch.zeros(3, 0, device=device)
    x_hat, eps = ops.gp_interpolate_rand(real, real, 5, impl="triton")
    assert x_hat.shape == (3, 0) and torch.equal(eps, twins.gp_eps_from_seed(5, 3, device))
    with pytest.raises(ValueError, match="eps must have shape"):
        ops.gp_interpolate(
            torch.zeros(3, 2, device=device),
            torch.zeros(3, 2, device=device),
            torch.zeros(2, device=device),
            impl="triton",
        )


@triton.jit
def _round_kernel(X, Y, N, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < N
    tl.store(Y + offs, round_to(tl.load(X + offs, mask=mask), Y.dtype.element_ty), mask=mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # fp16 overflow to inf, wanted
def test_round_to_is_torchs_cast(device, dtype):
    # every kernel stores through round_to: it must equal torch's fp32 -> dtype cast bit for bit, ties,
    # subnormals, overflow and infinities included (the interpreter's own bf16 cast truncates)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, generator=g) * torch.pow(10.0, torch.randint(-42, 38, (3000,), generator=g).float())
    ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-11, 1 + 3 * 2**-11])  # halfway for bf16 / fp16
    x = torch.cat([x, ties, -ties, torch.tensor([float("inf"), -float("inf"), 3.4e38, -0.0, 1e-40])]).to(device)
    y = torch.empty_like(x, dtype=dtype)
    _round_kernel[(1,)](x, y, x.numel(), BLOCK=triton.next_power_of_2(x.numel()))
    assert torch.equal(y, x.to(dtype))
