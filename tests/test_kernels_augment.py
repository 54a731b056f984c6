"""DiffAugment: the fused kernel (forward, adjoint) against its plain-PyTorch twin, the parameters bit for bit,
gradients of first and second order, the properties of each operation, and the op under a fullgraph compile."""

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import grad

from fastwgan import ops
from fastwgan.kernels import augment as kaug
from fastwgan.ops import twins

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not ops.INTERPRET, reason="Triton on CPU needs TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=pytest.mark.gpu),
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
POLICIES = [",".join(c) for r in (1, 2, 3) for c in itertools.combinations(("color", "translation", "cutout"), r)]
ALL = "color,translation,cutout"

# Tolerance rule: kernel and twin compute in fp32 and round once to the output dtype (bf16 by round_to, to nearest
# even). Before that rounding they differ by fp32 reassociation: the kernel evaluates the colour block as one
# fused expression with the per-sample mean of the input and sums in another order than torch's mean (measured
# <= 1e-6 absolute for unit-scale images; FMA contraction on the GPU). So: one ulp of the output dtype
# (rtol = 2^-mantissa bits), plus fp32 noise.
TOL = {
    torch.float32: dict(rtol=1e-5, atol=2e-6),
    torch.bfloat16: dict(rtol=2.0**-7, atol=1e-5),
    torch.float16: dict(rtol=2.0**-10, atol=1e-5),
}

# Shape buckets: odd and prime sizes, C = 1 / 3 / 4, images whose translation range is 0 (H = 3) or whose cutout
# square covers everything (1 x 1).
SHAPES = st.sampled_from([(1, 1, 5, 7), (3, 3, 9, 11), (2, 1, 16, 16), (5, 3, 8, 8), (2, 4, 3, 3), (2, 3, 1, 1)])
SEEDS = st.integers(-(2**62), 2**62)


def _make(shape, seed, dtype, device, strided=False, integer=False):
    g = torch.Generator().manual_seed(seed % 2**63)
    x = torch.randint(-8, 9, (*shape, 2), generator=g).float() if integer else torch.randn(*shape, 2, generator=g)
    x = x[..., 0] if strided else x[..., 0].contiguous()  # [..., 0] of (..., 2): a non-contiguous view
    return x.to(device=device, dtype=dtype)


def _flags(policy):
    return twins.parse_augment_policy(policy)


# ---------------------------------------------------------------------------------------------------------------
# 1. forward against the twin
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("policy", POLICIES)
@given(shape=SHAPES, seed=SEEDS, dtype=st.sampled_from(DTYPES), strided=st.booleans())
def test_forward_matches_twin(device, policy, shape, seed, dtype, strided):
    x = _make(shape, seed, dtype, device, strided)
    got = ops.diff_augment(x, seed, policy, impl="triton")
    want = twins.diff_augment(x, seed, policy)
    assert got.dtype == dtype and got.shape == x.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m: f"{policy} {dtype} {shape}: {m}")
    # an int seed and a 0-d tensor seed, and the policy in another order, are the same augmentation
    again = ops.diff_augment(x, torch.tensor(seed, device=device), ",".join(reversed(policy.split(","))), impl="triton")
    assert torch.equal(again, got)


# ---------------------------------------------------------------------------------------------------------------
# 2. the parameters, bit for bit
# ---------------------------------------------------------------------------------------------------------------
def test_params_follow_the_documented_counter_layout():
    # parameter j of sample b is the gp hash at counter b * SLOTS + j + 1, i.e. gp_eps_from_seed's "row" b * 8 + j
    b, h, w, seed = 6, 16, 9, 12345
    p = twins.augment_params_from_seed(seed, b, h, w)
    u = twins.gp_eps_from_seed(seed, b * kaug.SLOTS).reshape(b, kaug.SLOTS)  # (B, SLOTS) uniforms
    k = (u * 2**24).long()  # the 24 bits
    s = kaug.PARAM_SLOTS
    assert twins.AUGMENT_SLOTS == kaug.SLOTS and max(s.values()) < kaug.SLOTS
    assert torch.equal(p["brightness"], u[:, s["brightness"]] - 0.5)
    assert torch.equal(p["saturation"], u[:, s["saturation"]] * 2)
    assert torch.equal(p["contrast"], u[:, s["contrast"]] + 0.5)
    sh, sw, ch, cw = kaug.sizes(h, w)
    assert (sh, sw, ch, cw) == twins.augment_sizes(h, w) == (2, 1, 8, 5)
    assert torch.equal(p["translate_y"], (k[:, s["translate_y"]] * (2 * sh + 1) >> 24) - sh)
    assert torch.equal(p["translate_x"], (k[:, s["translate_x"]] * (2 * sw + 1) >> 24) - sw)
    assert torch.equal(p["cutout_y"], k[:, s["cutout_y"]] * (h + 1 - ch % 2) >> 24)
    assert torch.equal(p["cutout_x"], k[:, s["cutout_x"]] * (w + 1 - cw % 2) >> 24)


def test_params_ranges_cover_every_value():
    h, w = 16, 7  # shift 2 / 1, cutout 8 (centres 0..16) / 4 (centres 0..7)
    p = twins.augment_params_from_seed(99, 4000, h, w)
    assert set(p["translate_y"].tolist()) == set(range(-2, 3))
    assert set(p["translate_x"].tolist()) == set(range(-1, 2))
    assert set(p["cutout_y"].tolist()) == set(range(0, h + 1))
    assert set(p["cutout_x"].tolist()) == set(range(0, w + 1))
    for name, lo, hi in (("brightness", -0.5, 0.5), ("saturation", 0.0, 2.0), ("contrast", 0.5, 1.5)):
        v = p[name]
        assert lo <= v.min().item() < lo + 0.01 and hi - 0.01 < v.max().item() < hi, name


def _reference_geometry(x, p):
    """Translation then cutout written as loops over pixels, from the parameters alone."""
    b, c, h, w = x.shape
    _, _, ch, cw = twins.augment_sizes(h, w)
    y = torch.zeros_like(x)
    for i in range(b):
        ty, tx = int(p["translate_y"][i]), int(p["translate_x"][i])
        lo_h, lo_w = int(p["cutout_y"][i]) - ch // 2, int(p["cutout_x"][i]) - cw // 2
        for r in range(h):
            for q in range(w):
                inside = 0 <= r - ty < h and 0 <= q - tx < w
                cut = lo_h <= r < lo_h + ch and lo_w <= q < lo_w + cw
                if inside and not cut:
                    y[i, :, r, q] = x[i, :, r - ty, q - tx]
    return y


@pytest.mark.parametrize("device", DEVICES)
@given(shape=SHAPES, seed=SEEDS, dtype=st.sampled_from(DTYPES))
def test_geometry_is_bit_exact(device, shape, seed, dtype):
    # integer-valued input: translation and cutout only move and zero values, so kernel, twin and a loop over
    # pixels built from augment_params_from_seed agree exactly iff the parameters are the same bits
    x = _make(shape, seed, dtype, device, integer=True)
    p = twins.augment_params_from_seed(seed, shape[0], shape[2], shape[3])
    want = _reference_geometry(x.cpu(), p).to(device)
    assert torch.equal(ops.diff_augment(x, seed, "translation,cutout", impl="triton"), want)
    assert torch.equal(twins.diff_augment(x, seed, "translation,cutout"), want)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=SHAPES, seed=SEEDS)
def test_color_of_a_constant_image_is_brightness_exactly(device, shape, seed):
    # per-sample constant images c_b (dyadic, so the kernel's means of the input are exact): saturation and
    # contrast do nothing and the kernel's output is c_b + brightness_b bit for bit, which pins the brightness
    # parameter. The twin takes its means of c_b + brightness_b, which torch's sum does not return exactly: 1e-6.
    b = shape[0]
    c = (torch.arange(b, dtype=torch.float32) * 0.375 - 0.75).to(device)  # (B,)
    x = c.reshape(b, 1, 1, 1).expand(shape).contiguous()
    bri = twins.augment_params_from_seed(seed, b, shape[2], shape[3], device)["brightness"]
    want = (c + bri).reshape(b, 1, 1, 1).expand(shape)
    assert torch.equal(ops.diff_augment(x, seed, "color", impl="triton"), want)
    torch.testing.assert_close(twins.diff_augment(x, seed, "color"), want, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# 3. gradients
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("policy", POLICIES)
@given(shape=SHAPES, seed=SEEDS, dtype=st.sampled_from(DTYPES))
def test_backward_matches_twin_autograd(device, policy, shape, seed, dtype):
    x = _make(shape, seed, dtype, device)
    g = _make(shape, seed + 1, dtype, device)  # upstream gradient
    grads = {}
    for impl in ("triton", "torch"):
        xr = x.clone().requires_grad_()
        (grads[impl],) = torch.autograd.grad(ops.diff_augment(xr, seed, policy, impl=impl), xr, g)
    assert grads["triton"].dtype == dtype
    scale = grads["torch"].abs().max().item() + 1e-30
    torch.testing.assert_close(
        grads["triton"],
        grads["torch"],
        rtol=TOL[dtype]["rtol"],
        atol=TOL[dtype]["atol"] * scale,
        msg=lambda m: f"dL/dx {policy} {dtype}: {m}",
    )


@pytest.mark.parametrize("device", DEVICES)
@given(shape=SHAPES, seed=SEEDS)
def test_adjoint_is_the_adjoint(device, shape, seed):
    # <A x, g> = <x, A^T g> for the kernel's linear forward and its adjoint, and the twin's adjoint formula is
    # autograd of the twin
    x, g = _make(shape, seed, torch.float32, device), _make(shape, seed + 1, torch.float32, device)
    seed_t = torch.tensor(seed, device=device)
    for policy in POLICIES:
        flags = _flags(policy)
        ax = torch.ops.fastwgan.diff_augment(x, seed_t, *flags, True)
        atg = torch.ops.fastwgan.diff_augment_adjoint(g, seed_t, *flags)
        lhs, rhs = (ax.double() * g.double()).sum(), (x.double() * atg.double()).sum()
        scale = (ax.double().abs() * g.double().abs()).sum().item() + 1e-30
        assert abs((lhs - rhs).item()) <= 1e-6 * scale, f"{policy}: <Ax, g> = {lhs.item()} vs <x, A'g> {rhs.item()}"
        xr = x.double().requires_grad_()
        (auto,) = torch.autograd.grad(twins.diff_augment_flags(xr, seed, *flags, linear=True), xr, g.double())
        torch.testing.assert_close(
            twins.diff_augment_adjoint(g.double(), seed, policy),
            auto,
            rtol=1e-12,
            atol=1e-12,
            msg=lambda m: f"twin adjoint {policy}: {m}",
        )
        torch.testing.assert_close(atg.double(), auto, rtol=1e-5, atol=1e-6, msg=lambda m: f"A'g {policy}: {m}")


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", ALL])
def test_twin_gradcheck_float64(policy):
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: twins.diff_augment(t, 7, policy), (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_matches_twin(device):
    # second order: d/dx <v, dL/dx> for L = sum(w aug(x)^2) = 2 A' diag(w) A v; it runs the adjoint's backward
    # (the linear forward op), the path the WGAN-GP penalty takes through an augmented critic input
    shape, seed = (3, 3, 9, 11), 2024
    x, w, v = (_make(shape, s, torch.float32, device) for s in (1, 2, 3))
    out = {}
    for impl in ("triton", "torch"):
        xr = x.clone().requires_grad_()
        (g1,) = torch.autograd.grad(
            (w * ops.diff_augment(xr, seed, ALL, impl=impl).square()).sum(), xr, create_graph=True
        )
        (g2,) = torch.autograd.grad((g1 * v).sum(), xr)
        out[impl] = (g1.detach(), g2)
    for i, what in enumerate(("first", "second")):
        torch.testing.assert_close(
            out["triton"][i],
            out["torch"][i],
            rtol=1e-5,
            atol=1e-5 * out["torch"][i].abs().max().item(),
            msg=lambda m: f"{what}: {m}",
        )


# ---------------------------------------------------------------------------------------------------------------
# 4. properties of each operation
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_translation_moves_an_impulse_and_zero_fills(device):
    b, c, h, w = 8, 2, 16, 12
    p = twins.augment_params_from_seed(5, b, h, w)
    impulse = torch.zeros(b, c, h, w, device=device)
    impulse[:, 1, 7, 5] = 1.0
    moved = ops.diff_augment(impulse, 5, "translation", impl="triton")
    ones = ops.diff_augment(torch.ones(b, c, h, w, device=device), 5, "translation", impl="triton")
    assert p["translate_y"].unique().numel() > 1 and p["translate_x"].unique().numel() > 1
    for i in range(b):
        ty, tx = int(p["translate_y"][i]), int(p["translate_x"][i])
        assert moved[i, 1, 7 + ty, 5 + tx] == 1 and moved[i].sum() == 1, f"sample {i} moved by ({ty}, {tx})"
        rows = torch.zeros(h, dtype=torch.bool)
        rows[max(ty, 0) : h + min(ty, 0)] = True
        cols = torch.zeros(w, dtype=torch.bool)
        cols[max(tx, 0) : w + min(tx, 0)] = True
        want = (rows[:, None] & cols[None, :]).float().expand(c, h, w).to(device)  # a zero band at the new edge
        assert torch.equal(ones[i], want), f"sample {i} shifted by ({ty}, {tx})"


@pytest.mark.parametrize("device", DEVICES)
def test_cutout_zeroes_one_square_of_the_stated_size(device):
    b, c, h, w = 40, 3, 16, 11
    _, _, ch, cw = kaug.sizes(h, w)  # 8 x 6
    out = ops.diff_augment(torch.ones(b, c, h, w, device=device), 11, "cutout", impl="triton").cpu()
    full = 0
    for i in range(b):
        assert torch.equal(out[i, 0], out[i, 1]) and torch.equal(out[i, 0], out[i, 2]), "one mask for all channels"
        zr, zc = (out[i, 0] == 0).nonzero(as_tuple=True)
        r0, r1, c0, c1 = zr.min().item(), zr.max().item() + 1, zc.min().item(), zc.max().item() + 1
        assert (out[i, 0] == 0).sum() == (r1 - r0) * (c1 - c0), "the zeros form one rectangle"
        assert r1 - r0 <= ch and c1 - c0 <= cw
        if 0 < r0 and r1 < h and 0 < c0 and c1 < w:  # not clipped by the border: exactly the stated size
            assert (r1 - r0, c1 - c0) == (ch, cw)
            full += 1
    assert full > 5


@pytest.mark.parametrize("device", DEVICES)
def test_empty_policy_seeds_and_bad_input(device):
    x = _make((3, 3, 8, 8), 0, torch.float32, device)
    for impl in ("triton", "torch"):
        assert ops.diff_augment(x, 1, "", impl=impl) is x
        assert ops.diff_augment(x, 1, " , ", impl=impl) is x
    same = ops.diff_augment(x, 1, ALL, impl="triton")
    assert torch.equal(same, ops.diff_augment(x, 1, ALL, impl="triton")), "same seed, same output"
    other = ops.diff_augment(x, 2, ALL, impl="triton")
    assert not torch.isclose(same, other).all(dim=(1, 2, 3)).any(), "a new seed changes every sample"
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        ops.diff_augment(x, 1, "color,flip")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ops.diff_augment(x[0], 1, ALL)
    assert ops.diff_augment(x[:0], 1, ALL, impl="triton").shape == (0, 3, 8, 8)


# ---------------------------------------------------------------------------------------------------------------
# 5. the registered ops and torch.compile
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(device, dtype):
    x = _make((2, 3, 5, 7), 0, dtype, device)
    strided = _make((2, 3, 5, 7), 1, dtype, device, strided=True)
    seed = torch.tensor(42, device=device)
    torch.library.opcheck(torch.ops.fastwgan.diff_augment, (x, seed, True, True, True, False))
    torch.library.opcheck(torch.ops.fastwgan.diff_augment, (strided, seed, True, False, True, True))
    torch.library.opcheck(torch.ops.fastwgan.diff_augment_adjoint, (x, seed, True, True, True))


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_matches_eager_without_recompiles(device):
    # a seed tensor is data: three seeds, one graph. Output and input gradient (torch.func.grad, the shape of a
    # compiled critic step) against the eager twin.
    from torch._dynamo.testing import CompileCounterWithBackend

    x, w = _make((3, 3, 9, 11), 0, torch.float32, device), _make((3, 3, 9, 11), 1, torch.float32, device)

    def f(impl):
        def step(x, seed):
            def loss(t):
                y = ops.diff_augment(torch.tanh(t), seed, ALL, impl=impl)
                return (w * y).sum(), y

            return grad(loss, has_aux=True)(x)

        return step

    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(f("triton"), backend=counter, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for seed in (3, 4, -5):
            seed_t = torch.tensor(seed, device=device)
            (g_c, y_c), (g_e, y_e) = compiled(x, seed_t), f("torch")(x, seed_t)
            torch.testing.assert_close(y_c, y_e, **TOL[torch.float32], msg=lambda m: f"output, seed {seed}: {m}")
            torch.testing.assert_close(g_c, g_e, **TOL[torch.float32], msg=lambda m: f"grad, seed {seed}: {m}")
    assert counter.frame_count == 1


@pytest.mark.parametrize("device", DEVICES)
def test_hazard_compiled_augment_on_a_transform_input_fails_loudly(device):
    # DESIGN fact 4: under torch.compile an autograd.Function applied directly to a torch.func transform's input
    # has its backward bypassed; the op's Autograd guard turns the silent zero gradient into an error. (Applied to
    # any computed tensor, even t * 1.0, the custom backward runs: test_compiled_matches_eager_without_recompiles.)
    x, w = _make((2, 3, 5, 7), 0, torch.float32, device), _make((2, 3, 5, 7), 1, torch.float32, device)
    f = torch.compile(grad(lambda t: (w * ops.diff_augment(t, 3, ALL, impl="triton")).sum()), fullgraph=True)
    with pytest.raises(Exception, match="bypassed"):
        f(x)
    # eager, the same function is exact
    want = grad(lambda t: (w * twins.diff_augment(t, 3, ALL)).sum())(x)
    torch.testing.assert_close(
        grad(lambda t: (w * ops.diff_augment(t, 3, ALL, impl="triton")).sum())(x), want, **TOL[torch.float32]
    )
