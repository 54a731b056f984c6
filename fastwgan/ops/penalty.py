"""The WGAN-GP ops: interpolation (`gp_interpolate`, `gp_interpolate_rand`) and the penalty (`gradient_penalty`).

One file per op (STYLE habit 1): kernel (fastwgan.kernels.gp) -> registered ops (schema, cpu/cuda impl, fake
impl; here) -> autograd wrapper and public functions (here, with `impl` dispatch, fastwgan.ops.dispatch), next to
their plain-PyTorch twins (`twin_*` here, public as `fastwgan.ops.twins.<name>`) and the counter-based hash the
in-kernel eps is drawn with (`hash32`, `gp_eps_from_seed`; DiffAugment draws with it too).

The differentiable penalty is an `autograd.Function` that calls the forward op and, in its backward, the backward
op (DESIGN fact 3). Two silent hazards (DESIGN fact 4) are made loud here:
  * the non-mutating ops get an Autograd kernel that raises if autograd ever reaches the op itself (e.g. under
    torch.compile when the penalty is applied directly to a transform's input, where the Function's backward
    is bypassed and the gradient would silently be zero);
  * the penalty's backward is itself an autograd.Function whose backward raises, so double backward through
    the penalty fails loudly instead of returning zero second-order terms.
"""

from __future__ import annotations

import math

import torch

from . import dispatch
from .dispatch import as_scalar_tensor, compute_dtype, per_sample

if dispatch.HAS_TRITON:
    from ..kernels import gp as _kgp

SCHEMAS = {
    "gp_interpolate": "(Tensor real, Tensor fake, Tensor eps) -> Tensor",
    "gp_interpolate_rand": "(Tensor real, Tensor fake, Tensor seed) -> (Tensor, Tensor)",
    "gp_penalty": "(Tensor grad, float weight, bool one_sided) -> (Tensor, Tensor)",
    "gp_penalty_backward": "(Tensor grad_out, Tensor grad, Tensor norms, float weight, bool one_sided) -> Tensor",
}
dispatch.define(SCHEMAS)


# Fake impls must match the real ones exactly, dtype and strides included (DESIGN fact 6): outputs are contiguous.
@dispatch.register("gp_interpolate", dispatch.fake_like_first)
def _interpolate_impl(real, fake, eps):
    real, fake, eps = real.contiguous(), fake.contiguous(), eps.contiguous()
    if dispatch.kernel_runs_on(real.device):
        return _kgp.interpolate(real, fake, eps)
    return twin_gp_interpolate(real, fake, eps).contiguous()


def _interpolate_rand_fake(real, fake, seed):
    eps = real.new_empty(real.shape[0], dtype=torch.float32)
    return torch.empty_like(real, memory_format=torch.contiguous_format), eps


@dispatch.register("gp_interpolate_rand", _interpolate_rand_fake)
def _interpolate_rand_impl(real, fake, seed):
    real, fake = real.contiguous(), fake.contiguous()
    if dispatch.kernel_runs_on(real.device):
        return _kgp.interpolate_rand(real, fake, seed)
    x_hat, eps = twin_gp_interpolate_rand(real, fake, seed)
    return x_hat.contiguous(), eps


def _penalty_fake(grad, weight, one_sided):
    return grad.new_empty(()), grad.new_empty(grad.shape[0], dtype=torch.float32)


@dispatch.register("gp_penalty", _penalty_fake)
def _penalty_impl(grad, weight, one_sided):
    grad = grad.contiguous()
    if dispatch.kernel_runs_on(grad.device):
        return _kgp.penalty(grad, weight, one_sided)
    return twin_gradient_penalty(grad, weight, one_sided, return_norms=True)


def _penalty_backward_fake(grad_out, grad, norms, weight, one_sided):
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


@dispatch.register("gp_penalty_backward", _penalty_backward_fake)
def _penalty_backward_impl(grad_out, grad, norms, weight, one_sided):
    grad = grad.contiguous()
    if dispatch.kernel_runs_on(grad.device):
        return _kgp.penalty_backward(grad_out, grad, norms, weight, one_sided)
    return twin_gradient_penalty_backward(grad_out, grad, norms, weight, one_sided).contiguous()


dispatch.forbid_autograd(
    "gp_penalty",
    "its custom backward (the autograd.Function in fastwgan.ops.gradient_penalty) was bypassed. Under "
    "torch.compile this happens when the penalty is applied directly to the input of a torch.func "
    "transform (DESIGN fact 4): apply it to a computed gradient, or use impl='torch'.",
)
dispatch.forbid_autograd(
    "gp_penalty_backward",
    "double backward through gradient_penalty is not supported; use impl='torch' for higher-order gradients.",
)
dispatch.forbid_autograd(
    "gp_interpolate",
    "the interpolation op is not differentiable; pass detached real/fake/eps "
    "(the WGAN-GP input gradient is taken w.r.t. x_hat) or use impl='torch'.",
)
dispatch.forbid_autograd(
    "gp_interpolate_rand", "the interpolation op is not differentiable; pass detached real/fake or use impl='torch'."
)


# ---------------------------------------------------------------------------------------------------------------
# Gradient penalty autograd: forward op, backward op, and a backward that refuses to be differentiated.
# ---------------------------------------------------------------------------------------------------------------
class _PenaltyBackward(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(grad_out, grad, norms, weight, one_sided):
        return torch.ops.fastwgan.gp_penalty_backward(grad_out, grad, norms, weight, one_sided)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        # Reached only when something differentiates the penalty's gradient (double backward).
        raise RuntimeError(
            "double backward through fastwgan.ops.gradient_penalty (impl='triton') is not "
            "supported; use impl='torch' when second-order terms of the penalty are needed"
        )


class _GradientPenalty(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(grad, weight, one_sided, backward_scale):
        return torch.ops.fastwgan.gp_penalty(grad, weight, one_sided)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grad, weight, one_sided, backward_scale = inputs
        _, norms = output
        ctx.save_for_backward(grad, norms)
        # backward_scale is 1 except in the canary test, which scales the backward on purpose to prove it runs.
        ctx.weight = weight * backward_scale
        ctx.one_sided = one_sided
        ctx.mark_non_differentiable(norms)

    @staticmethod
    def backward(ctx, grad_pen, grad_norms):
        grad, norms = ctx.saved_tensors
        dgrad = _PenaltyBackward.apply(grad_pen, grad, norms, ctx.weight, ctx.one_sided)
        return dgrad, None, None, None


# ---------------------------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------------------------
def _check_pair(real, fake):
    if real.shape != fake.shape or real.dtype != fake.dtype or real.device != fake.device:
        raise ValueError(
            f"real and fake must match in shape, dtype and device: {tuple(real.shape)} "
            f"{real.dtype} {real.device} vs {tuple(fake.shape)} {fake.dtype} {fake.device}"
        )
    if real.dim() < 1:
        raise ValueError("real and fake need a batch dimension")


def gp_interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """x_hat = eps * real + (1 - eps) * fake, one eps per sample broadcast over all non-batch dims.

    Args:
        real, fake: (B, ...) of one shape and dtype; any strides (copied to contiguous for the kernel).
        eps: (B,) weights in [0, 1].
        impl: "auto" | "triton" | "torch" (fastwgan.ops.dispatch).
    Returns:
        x_hat, (B, ...) contiguous, of real.dtype (computed in fp32). Not differentiable with impl="triton".
    """
    _check_pair(real, fake)
    if eps.shape != (real.shape[0],):
        raise ValueError(f"eps must have shape ({real.shape[0]},), got {tuple(eps.shape)}")
    if dispatch.resolves_to_triton(impl, real):
        return torch.ops.fastwgan.gp_interpolate(real, fake, eps.to(torch.float32))
    return twin_gp_interpolate(real, fake, eps)


def gp_interpolate_rand(real: torch.Tensor, fake: torch.Tensor, seed: int | torch.Tensor, impl: str = "auto"):
    """Interpolation with eps drawn inside the kernel from `seed` (no separate RNG launch).

    eps_b is a counter-based hash of (seed, b) (`gp_eps_from_seed`), identical in every impl.

    Args:
        real, fake: (B, ...) of one shape and dtype.
        seed: an int or a 0-d integer tensor (a tensor: a new seed per step does not recompile).
        impl: "auto" | "triton" | "torch".
    Returns:
        (x_hat (B, ...) of real.dtype, eps (B,) float32).
    """
    _check_pair(real, fake)
    if dispatch.resolves_to_triton(impl, real):
        seed_t = as_scalar_tensor(seed, real.device, torch.int64).to(torch.int64)
        return torch.ops.fastwgan.gp_interpolate_rand(real, fake, seed_t)
    return twin_gp_interpolate_rand(real, fake, seed)


def gradient_penalty(
    grad: torch.Tensor, weight: float, one_sided: bool = False, impl: str = "auto", return_norms: bool = False
):
    """weight * mean_b((||g_b||_2 - 1)^2), the norm over all non-batch dims, in one pass.

    Differentiable once with impl="triton" (custom backward kernel dL/dg_b = weight 2 (n_b - 1) / (B n_b) g_b,
    0 on a zero row); double backward raises. impl="torch" is plain autograd (any order). Apply it to a computed
    input gradient (the WGAN-GP shape), not directly to a torch.func transform's input under torch.compile
    (that raises, see the module docstring).

    Args:
        grad: (B, ...) input gradient of the critic at x_hat.
        weight: lambda.
        one_sided: max(0, n - 1)^2 instead of (n - 1)^2.
        impl: "auto" | "triton" | "torch".
        return_norms: also return the per-sample norms (free: the kernel computes them anyway).
    Returns:
        penalty, a 0-d tensor of grad.dtype; with return_norms, (penalty, norms (B,) float32, not
        differentiable with impl="triton").
    """
    if grad.dim() < 1:
        raise ValueError("gradient_penalty needs a batch dimension")
    if dispatch.resolves_to_triton(impl, grad):
        pen, norms = _GradientPenalty.apply(grad, float(weight), bool(one_sided), 1.0)
    else:
        pen, norms = twin_gradient_penalty(grad, weight, one_sided, return_norms=True)
    return (pen, norms) if return_norms else pen


def gradient_penalty_scaled_backward(grad, weight, one_sided=False, backward_scale=1.0):
    """Test-only: the Triton penalty whose backward is multiplied by backward_scale (the canary, DESIGN fact 4)."""
    return _GradientPenalty.apply(grad, float(weight), bool(one_sided), float(backward_scale))[0]


# ---------------------------------------------------------------------------------------------------------------
# The counter-based hash of the in-kernel draws (must equal fastwgan.kernels.gp's constants; tested)
# ---------------------------------------------------------------------------------------------------------------
MASK32 = 0xFFFFFFFF
MUL1 = 0x7FEB352D
MUL2 = 0x2C1B3C6D
GOLDEN = 0x61C88647


def hash32(x: torch.Tensor) -> torch.Tensor:
    """The kernels' 32-bit integer mix (xorshift-multiply, "lowbias32") on int64 tensors masked to 32 bits."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * MUL1) & MASK32
    x = x ^ (x >> 15)
    x = (x * MUL2) & MASK32
    return x ^ (x >> 16)


def seed_tensor(seed: int | torch.Tensor, device=None) -> torch.Tensor:
    """`seed` as a 0-d int64 tensor on `device` (default: the seed's device, else CPU)."""
    if isinstance(seed, torch.Tensor):
        return seed.to(device=seed.device if device is None else device, dtype=torch.int64)
    return torch.tensor(int(seed), dtype=torch.int64, device=device)


def counter_bits(seed: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """The 24 random bits the kernels draw for each counter: hash(hash(seed) + counter * GOLDEN) >> 8 (int64)."""
    return hash32(hash32(seed) + counters * GOLDEN) >> 8


def gp_eps_from_seed(seed: int | torch.Tensor, batch: int, device=None) -> torch.Tensor:
    """The eps that `gp_interpolate_rand` draws for `seed`: a counter-based hash of (seed, sample index).

    Bit-identical to the kernel's draw. Values are multiples of 2^-24 in [0, 1).

    Args:
        seed: an int or a 0-d integer tensor.
        batch: number of samples B.
        device: where to put the result (default: the seed's device, else CPU).
    Returns:
        eps, (B,) float32.
    """
    s = seed_tensor(seed, device)
    rows = torch.arange(batch, dtype=torch.int64, device=s.device)
    return counter_bits(s, rows + 1).to(torch.float32) * (1.0 / 16777216.0)


# ---------------------------------------------------------------------------------------------------------------
# Plain-PyTorch twins (fastwgan.ops.twins): the impl="torch" path and the kernels' oracle
# ---------------------------------------------------------------------------------------------------------------
def twin_gp_interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_hat = eps * real + (1 - eps) * fake, one eps per sample.

    Computed in fp32 (fp64 for fp64 inputs) and cast to real.dtype, like the kernel.

    Args:
        real, fake: (B, ...) tensors of one shape and dtype.
        eps: (B,) interpolation weights.
    Returns:
        x_hat, (B, ...) of real.dtype.
    """
    ct = compute_dtype(real.dtype)
    e = per_sample(eps.to(ct), real)  # (B, 1, ..., 1)
    return (e * real.to(ct) + (1 - e) * fake.to(ct)).to(real.dtype)


def twin_gp_interpolate_rand(real: torch.Tensor, fake: torch.Tensor, seed: int | torch.Tensor):
    """Interpolation with eps drawn from `seed` (see `gp_eps_from_seed`).

    Args:
        real, fake: (B, ...) tensors of one shape and dtype.
        seed: an int or a 0-d integer tensor.
    Returns:
        (x_hat (B, ...) of real.dtype, eps (B,) float32).
    """
    eps = gp_eps_from_seed(seed, real.shape[0], real.device)
    return twin_gp_interpolate(real, fake, eps), eps


def twin_gradient_penalty(grad: torch.Tensor, weight: float, one_sided: bool = False, return_norms: bool = False):
    """weight * mean_b((||g_b||_2 - 1)^2), the norm over all non-batch dims; one_sided: max(0, n - 1)^2.

    Differentiable to any order by autograd. At a zero row the gradient is 0: `torch.linalg.vector_norm`'s
    backward picks that subgradient (a hand-written sqrt(sum(g^2)) would give NaN), and the kernel defines the
    same.

    Args:
        grad: (B, ...) input gradient.
        weight: lambda.
        one_sided: use max(0, n - 1)^2 (the "lp" penalty).
        return_norms: also return the per-sample norms.
    Returns:
        penalty, a 0-d tensor of grad.dtype; with return_norms, (penalty, norms (B,) float32, or float64
        for float64 grad).
    """
    rows = grad.reshape(grad.shape[0], math.prod(grad.shape[1:]))  # (B, M)
    norms = torch.linalg.vector_norm(rows.to(compute_dtype(grad.dtype)), dim=1)  # (B,)
    d = norms - 1
    if one_sided:
        d = d.clamp(min=0)
    pen = (weight * d.square().mean()).to(grad.dtype)
    return (pen, norms) if return_norms else pen


def twin_gradient_penalty_backward(grad_out, grad, norms, weight: float, one_sided: bool = False) -> torch.Tensor:
    """The penalty's gradient w.r.t. grad: grad_out * weight * 2 d_b / (B n_b) * g_b, 0 on zero rows.

    Args:
        grad_out: 0-d upstream gradient.
        grad: (B, ...) input gradient of the forward.
        norms: (B,) float32 norms from the forward.
        weight, one_sided: as in the forward.
    Returns:
        (B, ...) tensor of grad.dtype.
    """
    d = norms - 1
    if one_sided:
        d = d.clamp(min=0)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    c = torch.where(norms > 0, 2.0 * weight / grad.shape[0] * d / safe, torch.zeros_like(norms))  # (B,)
    ct = compute_dtype(grad.dtype)
    return (per_sample(c.to(ct) * grad_out.to(ct), grad) * grad.to(ct)).to(grad.dtype)
