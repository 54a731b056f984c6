"""The penalty op inside the real WGAN-GP shape: outer grad over critic params of a loss whose penalty sits on an
inner torch.func.grad over x_hat. Eager and under a fullgraph torch.compile, against autograd of the twin; the
canary proving the custom backward runs; double backward and the compile hazard failing loudly (DESIGN fact 4).
"""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value

from fastwgan import ops
from fastwgan.core.flat import flatten_parameters
from fastwgan.ops import twins

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not ops.INTERPRET, reason="Triton on CPU needs TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=pytest.mark.gpu),
]
pytestmark = pytest.mark.skipif(
    not ops.INTERPRET and not torch.cuda.is_available(), reason="the Triton path needs CUDA or TRITON_INTERPRET=1"
)

LAMBDA = 10.0
# fp32 gradients through two levels of autograd: the kernel's norm (different summation order) and closed-form
# backward differ from autograd of the twin by a few ulp per op; relative to each gradient's scale: 1e-5.
RTOL, ATOL_REL = 1e-5, 1e-5


def _critic(seed=0, device="cpu"):
    torch.manual_seed(seed)
    # Tanh: smooth, so the mixed second derivatives the outer grad needs are nonzero everywhere
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)).to(device)


def _data(b=6, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    real, fake, eps = torch.randn(b, 4, generator=g), torch.randn(b, 4, generator=g) * 0.5, torch.rand(b, generator=g)
    return real.to(device), fake.to(device), eps.to(device)


def _assert_tree_close(got: dict, want: dict, what: str, factor: float = 1.0):
    for k in want:
        if want[k] is None:  # e.g. the last bias: the penalty does not depend on it
            assert got[k] is None or not got[k].any(), f"{what}: d loss / d {k} should be empty"
            continue
        scale = want[k].abs().max().item() * abs(factor) + 1e-12
        torch.testing.assert_close(
            got[k],
            factor * want[k],
            rtol=RTOL,
            atol=ATOL_REL * scale,
            msg=lambda m, k=k: f"{what}: d loss / d {k}: {m}",
        )


def _critic_loss(critic, real, fake, eps, impl, penalty=None):
    """WGAN-GP critic loss as a function of the critic's parameters (the shape compiled steps use)."""

    def loss(params):
        def d_sum(x):
            return functional_call(critic, params, (x,)).sum()

        x_hat = ops.gp_interpolate(real, fake, eps, impl=impl)  # (B, 4)
        g = grad(d_sum)(x_hat)  # (B, 4), a function of params
        pen = ops.gradient_penalty(g, LAMBDA, impl=impl) if penalty is None else penalty(g)
        w = functional_call(critic, params, (fake,)).mean() - functional_call(critic, params, (real,)).mean()
        return w + pen

    return loss


def _params(critic):
    return {k: v.detach() for k, v in critic.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("one_sided", [False, True])
def test_wgan_gp_shape_eager_matches_twin(one_sided, device):
    critic, (real, fake, eps) = _critic(device=device), _data(device=device)
    params = _params(critic)

    def fast(g):
        return ops.gradient_penalty(g, LAMBDA, one_sided, impl="triton")

    def ref(g):
        return twins.gradient_penalty(g, LAMBDA, one_sided)

    got, lv = grad_and_value(_critic_loss(critic, real, fake, eps, "triton", fast))(params)
    want, lv_ref = grad_and_value(_critic_loss(critic, real, fake, eps, "torch", ref))(params)
    torch.testing.assert_close(lv, lv_ref, rtol=RTOL, atol=1e-6)
    _assert_tree_close(got, want, "eager")


def test_reference_trainer_shape_autograd_create_graph():
    # the eager oracle's shape: autograd.grad(create_graph=True), then .backward() through the penalty
    real, fake, eps = _data()
    grads = {}
    for impl in ("triton", "torch"):
        critic = _critic()
        x_hat = ops.gp_interpolate(real, fake, eps, impl=impl).requires_grad_()
        (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        ops.gradient_penalty(g, LAMBDA, impl=impl).backward()
        grads[impl] = {k: p.grad for k, p in critic.named_parameters()}
    _assert_tree_close(grads["triton"], grads["torch"], "autograd.grad(create_graph=True)")


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_canary_custom_backward_is_used_eager_and_compiled(device):
    # A variant whose backward is scaled by 3 on purpose: if the 3 shows up, the custom backward kernel is what
    # produced the gradient (not some silently substituted path).
    critic, (real, fake, eps) = _critic(device=device), _data(device=device)
    params = _params(critic)

    def pen_only(penalty):
        def loss(p):
            g = grad(lambda x: functional_call(critic, p, (x,)).sum())(twins.gp_interpolate(real, fake, eps))
            return penalty(g)

        return loss

    want = grad(pen_only(lambda g: twins.gradient_penalty(g, LAMBDA)))(params)
    canary = grad(pen_only(lambda g: ops.penalty.gradient_penalty_scaled_backward(g, LAMBDA, backward_scale=3.0)))
    _assert_tree_close(canary(params), want, "eager canary", factor=3.0)
    _assert_tree_close(torch.compile(canary, fullgraph=True)(params), want, "compiled canary", factor=3.0)
    # and applied directly to a transform's input, eager
    g0 = torch.randn(5, 3, device=device)
    torch.testing.assert_close(
        grad(lambda g: ops.penalty.gradient_penalty_scaled_backward(g, LAMBDA, False, 3.0))(g0),
        3.0 * grad(lambda g: twins.gradient_penalty(g, LAMBDA))(g0),
    )


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_wgan_gp_critic_step_matches_eager_twin(device):
    # The whole critic step as the trainer compiles it: eps drawn in-kernel from a seed tensor, grad over the flat
    # parameter buffer, fused Adam in the same graph. New seed/step/lr values must not recompile.
    real, fake, _ = _data(b=5, device=device)
    critics = {impl: _critic(device=device) for impl in ("triton", "torch")}
    flats = {impl: flatten_parameters(c, grad=False) for impl, c in critics.items()}

    def make_step(impl):
        critic, flat = critics[impl], flats[impl]

        def step(buf, exp_avg, exp_avg_sq, seed, step_t, lr):
            def loss(b):
                params = flat.unflatten(b)
                x_hat, _ = ops.gp_interpolate_rand(real, fake, seed, impl=impl)
                g = grad(lambda x: functional_call(critic, params, (x,)).sum())(x_hat)
                pen = ops.gradient_penalty(g, LAMBDA, impl=impl)
                return (
                    functional_call(critic, params, (fake,)).mean()
                    - functional_call(critic, params, (real,)).mean()
                    + pen
                )

            g, loss_v = grad_and_value(loss)(buf)  # g: (N,)
            ops.adam_(buf, g, exp_avg, exp_avg_sq, step_t, lr, 0.0, 0.9, impl=impl)
            return loss_v, g

        return step

    compiled = torch.compile(make_step("triton"), fullgraph=True)
    eager = make_step("torch")
    states = {
        impl: (torch.zeros(flats[impl].numel, device=device), torch.zeros(flats[impl].numel, device=device))
        for impl in critics
    }
    with torch._dynamo.config.patch(error_on_recompile=True):
        for k in range(1, 4):
            args = (
                torch.tensor(100 + k, device=device),
                torch.tensor(float(k), device=device),
                torch.tensor(1e-3 * k, device=device),
            )
            loss_c, g_c = compiled(flats["triton"].data, *states["triton"], *args)
            loss_e, g_e = eager(flats["torch"].data, *states["torch"], *args)
            # compare gradients and losses step by step (DESIGN fact 10), parameters with a tolerance that
            # allows Adam's amplification of ~1e-7 differences over 3 steps
            torch.testing.assert_close(loss_c, loss_e, rtol=RTOL, atol=1e-6, msg=lambda m: f"loss step {k}: {m}")
            torch.testing.assert_close(
                g_c, g_e, rtol=RTOL, atol=ATOL_REL * g_e.abs().max().item(), msg=lambda m: f"flat grad step {k}: {m}"
            )
    torch.testing.assert_close(flats["triton"].data, flats["torch"].data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_through_penalty_fails_loudly(device):
    g0 = torch.randn(5, 3, device=device)
    with pytest.raises(RuntimeError, match="double backward"):
        grad(lambda g: grad(lambda h: ops.gradient_penalty(h, LAMBDA, impl="triton"))(g).sum())(g0)
    g1 = g0.clone().requires_grad_()
    (dg,) = torch.autograd.grad(ops.gradient_penalty(g1, LAMBDA, impl="triton"), g1, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(dg.square().sum(), g1)
    # the op itself, reached by autograd directly, refuses too
    with pytest.raises(RuntimeError, match="double backward"):
        norms = torch.linalg.vector_norm(g0, dim=1)
        torch.ops.fastwgan.gp_penalty_backward(torch.tensor(1.0, device=device), g1, norms, LAMBDA, False)


def test_double_backward_with_impl_torch_is_exact():
    g0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    for one_sided in (False, True):
        assert torch.autograd.gradgradcheck(lambda g: ops.gradient_penalty(g, LAMBDA, one_sided, impl="torch"), (g0,))


@pytest.mark.parametrize("device", DEVICES)
def test_hazard_compiled_penalty_on_a_transform_input_fails_loudly(device):
    # DESIGN fact 4: under torch.compile, an autograd.Function applied directly to a torch.func transform's input
    # has its backward bypassed; without the guard the gradient came out silently zero.
    g0 = torch.randn(5, 3, device=device)
    f = torch.compile(grad(lambda g: ops.gradient_penalty(g, LAMBDA, impl="triton")), fullgraph=True)
    with pytest.raises(Exception, match="bypassed"):
        f(g0)


def test_non_differentiable_interpolation_refuses_grad():
    real, fake, eps = _data()
    with pytest.raises(RuntimeError, match="not differentiable"):
        ops.gp_interpolate(real.requires_grad_(), fake, eps, impl="triton")
    # with the twin it is ordinary autograd
    ops.gp_interpolate(real, fake, eps, impl="torch").sum().backward()
    torch.testing.assert_close(real.grad, eps[:, None].expand(-1, 4))
