"""fastwgan's custom ops: torch.library registration of the Triton kernels, dispatch, and the functional API.

Layers (STYLE habit 1): kernel (fastwgan.kernels.*) -> launcher (same modules) -> registered op (here, with a
fake impl) -> public function (here, with `impl` dispatch). Every public function has a plain-PyTorch twin of
the same signature in `fastwgan.twins`.

Registration pattern (DESIGN fact 3): ops are made with `torch.library.define` + `torch.library.impl` for
cpu/cuda + `register_fake`, with NO working autograd kernel. The differentiable penalty is an
`autograd.Function` (with `setup_context` and `generate_vmap_rule = True`) that calls the forward op and, in its
backward, the backward op; this is the only pattern that worked under torch.func nested twice and under a
fullgraph torch.compile. `custom_op`/`triton_op` + `register_autograd` fail under torch.func.

Two silent hazards (DESIGN fact 4) are made loud here:
  * the non-mutating ops get an Autograd kernel that raises if autograd ever reaches the op itself (e.g. under
    torch.compile when the penalty is applied directly to a transform's input, where the Function's backward
    is bypassed and the gradient would silently be zero);
  * the penalty's backward is itself an autograd.Function whose backward raises, so double backward through
    the penalty fails loudly instead of returning zero second-order terms.

Dispatch `impl`: "torch" is the twin (plain tensor ops inductor can fuse); "triton" is the kernel; "auto" is the
kernel on CUDA and, on CPU, the kernel under the Triton interpreter when TRITON_INTERPRET=1 was set before
`fastwgan.kernels` was imported (Triton decides interpret-or-compile when it decorates a kernel, so the
setting is read at import), else the twin.
"""

from __future__ import annotations

import math

import torch

from fastwgan import twins

try:
    from fastwgan.kernels import augment as _kaugment
    from fastwgan.kernels import clip as _kclip
    from fastwgan.kernels import common as _kcommon
    from fastwgan.kernels import gp as _kgp
    from fastwgan.kernels import optim as _koptim

    HAS_TRITON = True
    #: True when the kernels run under the Triton interpreter (CPU); fixed at import.
    INTERPRET = _kcommon.is_interpreted(_kclip.clamp_kernel)
except ImportError:  # pragma: no cover - platforms without triton: the twins only
    HAS_TRITON = False
    INTERPRET = False

IMPLS = ("auto", "triton", "torch")


def _kernel_runs_on(device: torch.device) -> bool:
    return HAS_TRITON and (device.type == "cuda" or (device.type == "cpu" and INTERPRET))


def _use_triton(impl: str, t: torch.Tensor) -> bool:
    """Resolve `impl` for a tensor on t.device; raises for an impossible "triton" request."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return False
    ok = _kernel_runs_on(t.device)
    if impl == "triton" and not ok:
        why = (
            "triton is not installed"
            if not HAS_TRITON
            else "on CPU the Triton kernels run only under the interpreter: set TRITON_INTERPRET=1 before "
            "importing fastwgan"
            if t.device.type == "cpu"
            else f"no Triton backend for {t.device.type}"
        )
        raise RuntimeError(f"impl='triton' is unavailable for a tensor on {t.device}: {why}")
    return ok


def resolves_to_triton(impl: str, t: torch.Tensor) -> bool:
    """True when `impl` runs the Triton kernel for a tensor like `t` (False: the plain-PyTorch twin)."""
    return _use_triton(impl, t)


# ---------------------------------------------------------------------------------------------------------------
# Registered ops. The cpu/cuda impl runs the kernel where it can run (CUDA, or CPU under the interpreter) and the
# twin otherwise, so calling torch.ops.fastwgan.* directly is always defined.
# ---------------------------------------------------------------------------------------------------------------
_SCHEMAS = {
    "clip_": "(Tensor(a!) x, float clip_value) -> ()",
    "clip_list_": "(Tensor(a!)[] xs, float clip_value) -> ()",
    "rmsprop_clip_": "(Tensor(a!) param, Tensor grad, Tensor(b!) square_avg, Tensor lr, float alpha, float eps, "
    "float? clip_value) -> ()",
    "adam_": "(Tensor(a!) param, Tensor grad, Tensor(b!) exp_avg, Tensor(c!) exp_avg_sq, Tensor step, Tensor lr, "
    "float beta1, float beta2, float eps) -> ()",
    "gp_interpolate": "(Tensor real, Tensor fake, Tensor eps) -> Tensor",
    "gp_interpolate_rand": "(Tensor real, Tensor fake, Tensor seed) -> (Tensor, Tensor)",
    "gp_penalty": "(Tensor grad, float weight, bool one_sided) -> (Tensor, Tensor)",
    "gp_penalty_backward": "(Tensor grad_out, Tensor grad, Tensor norms, float weight, bool one_sided) -> Tensor",
}
for _name, _schema in _SCHEMAS.items():
    torch.library.define(f"fastwgan::{_name}", _schema)


def _register(name: str, fake):
    def deco(fn):
        torch.library.impl(f"fastwgan::{name}", ("cpu", "cuda"), fn)
        torch.library.register_fake(f"fastwgan::{name}", fake)
        return fn

    return deco


def _no_fake_output(*args, **kwargs):
    return None


@_register("clip_", _no_fake_output)
def _clip_impl(x, clip_value):
    if _kernel_runs_on(x.device):
        _kclip.clamp_(x, clip_value)
    else:
        twins.clip_(x, clip_value)


@_register("clip_list_", _no_fake_output)
def _clip_list_impl(xs, clip_value):
    if xs and _kernel_runs_on(xs[0].device):
        _kclip.clamp_multi_(list(xs), clip_value)
    else:
        twins.clip_(list(xs), clip_value)


@_register("rmsprop_clip_", _no_fake_output)
def _rmsprop_clip_impl(param, grad, square_avg, lr, alpha, eps, clip_value):
    if _kernel_runs_on(param.device):
        _koptim.rmsprop_clip_(param, grad, square_avg, lr, alpha, eps, clip_value)
    else:
        twins.rmsprop_clip_(param, grad, square_avg, lr, alpha, eps, clip_value)


@_register("adam_", _no_fake_output)
def _adam_impl(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps):
    if _kernel_runs_on(param.device):
        _koptim.adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
    else:
        twins.adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)


# Fake impls must match the real ones exactly, dtype and strides included (DESIGN fact 6): outputs are contiguous.
def _interpolate_fake(real, fake, eps):
    return torch.empty_like(real, memory_format=torch.contiguous_format)


@_register("gp_interpolate", _interpolate_fake)
def _interpolate_impl(real, fake, eps):
    real, fake, eps = real.contiguous(), fake.contiguous(), eps.contiguous()
    if _kernel_runs_on(real.device):
        return _kgp.interpolate(real, fake, eps)
    return twins.gp_interpolate(real, fake, eps).contiguous()


def _interpolate_rand_fake(real, fake, seed):
    eps = real.new_empty(real.shape[0], dtype=torch.float32)
    return torch.empty_like(real, memory_format=torch.contiguous_format), eps


@_register("gp_interpolate_rand", _interpolate_rand_fake)
def _interpolate_rand_impl(real, fake, seed):
    real, fake = real.contiguous(), fake.contiguous()
    if _kernel_runs_on(real.device):
        return _kgp.interpolate_rand(real, fake, seed)
    x_hat, eps = twins.gp_interpolate_rand(real, fake, seed)
    return x_hat.contiguous(), eps


def _penalty_fake(grad, weight, one_sided):
    return grad.new_empty(()), grad.new_empty(grad.shape[0], dtype=torch.float32)


@_register("gp_penalty", _penalty_fake)
def _penalty_impl(grad, weight, one_sided):
    grad = grad.contiguous()
    if _kernel_runs_on(grad.device):
        return _kgp.penalty(grad, weight, one_sided)
    return twins.gradient_penalty(grad, weight, one_sided, return_norms=True)


def _penalty_backward_fake(grad_out, grad, norms, weight, one_sided):
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


@_register("gp_penalty_backward", _penalty_backward_fake)
def _penalty_backward_impl(grad_out, grad, norms, weight, one_sided):
    grad = grad.contiguous()
    if _kernel_runs_on(grad.device):
        return _kgp.penalty_backward(grad_out, grad, norms, weight, one_sided)
    return twins.gradient_penalty_backward(grad_out, grad, norms, weight, one_sided).contiguous()


# DiffAugment: the affine forward (linear=True: without the brightness constant, i.e. A x) and the adjoint A^T g.
# Kept out of _SCHEMAS so that tests/test_ops_opcheck.py (one sample set per _SCHEMAS entry) stays as it is; the
# opcheck of these two lives in tests/test_kernels_augment.py.
_AUGMENT_SCHEMAS = {
    "diff_augment": "(Tensor x, Tensor seed, bool color, bool translation, bool cutout, bool linear) -> Tensor",
    "diff_augment_adjoint": "(Tensor grad, Tensor seed, bool color, bool translation, bool cutout) -> Tensor",
}
for _name, _schema in _AUGMENT_SCHEMAS.items():
    torch.library.define(f"fastwgan::{_name}", _schema)


def _diff_augment_fake(x, seed, color, translation, cutout, linear):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@_register("diff_augment", _diff_augment_fake)
def _diff_augment_impl(x, seed, color, translation, cutout, linear):
    x = x.contiguous()
    if _kernel_runs_on(x.device):
        return _kaugment.diff_augment(x, seed, color, translation, cutout, brightness=not linear)
    # .clone(): an op's output must not alias its input (the empty policy returns x itself)
    return twins.diff_augment_flags(x, seed, color, translation, cutout, linear).contiguous().clone()


def _diff_augment_adjoint_fake(grad, seed, color, translation, cutout):
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


@_register("diff_augment_adjoint", _diff_augment_adjoint_fake)
def _diff_augment_adjoint_impl(grad, seed, color, translation, cutout):
    grad = grad.contiguous()
    if _kernel_runs_on(grad.device):
        return _kaugment.diff_augment(grad, seed, color, translation, cutout, adjoint=True)
    return twins.diff_augment_adjoint_flags(grad, seed, color, translation, cutout).contiguous().clone()


def _forbid_autograd(name: str, why: str):
    """Autograd kernel for an op that must never be differentiated by autograd directly: raise, never zero."""
    op = getattr(torch.ops.fastwgan, name).default

    def kernel(*args):
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            raise RuntimeError(f"fastwgan::{name} was differentiated by autograd directly: {why}")
        with torch._C._AutoDispatchBelowAutograd():
            return op(*args)

    torch.library.impl(f"fastwgan::{name}", "Autograd", kernel)


_BYPASS = (
    "its custom backward (the autograd.Function in fastwgan.ops.gradient_penalty) was bypassed. Under "
    "torch.compile this happens when the penalty is applied directly to the input of a torch.func "
    "transform (DESIGN fact 4): apply it to a computed gradient, or use impl='torch'."
)
_forbid_autograd("gp_penalty", _BYPASS)
_forbid_autograd(
    "gp_penalty_backward",
    "double backward through gradient_penalty is not supported; use impl='torch' for higher-order gradients.",
)
_forbid_autograd(
    "gp_interpolate",
    "the interpolation op is not differentiable; pass detached real/fake/eps "
    "(the WGAN-GP input gradient is taken w.r.t. x_hat) or use impl='torch'.",
)
_forbid_autograd(
    "gp_interpolate_rand", "the interpolation op is not differentiable; pass detached real/fake or use impl='torch'."
)

_AUGMENT_BYPASS = (
    "its custom backward (the autograd.Function in fastwgan.ops.diff_augment) was bypassed. Under "
    "torch.compile this happens when it is applied directly to the input of a torch.func "
    "transform (DESIGN fact 4): augment a computed tensor, or use impl='torch'."
)
_forbid_autograd("diff_augment", _AUGMENT_BYPASS)
_forbid_autograd("diff_augment_adjoint", _AUGMENT_BYPASS)


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
# DiffAugment autograd. aug(x) = A x + c with A linear and fixed by the seed, so the backward is the adjoint op
# and the adjoint's backward is the linear forward op: derivatives of every order are exact (STYLE habit 3).
# ---------------------------------------------------------------------------------------------------------------
class _DiffAugment(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, seed, color, translation, cutout, linear):
        return torch.ops.fastwgan.diff_augment(x, seed, color, translation, cutout, linear)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, seed, color, translation, cutout, _ = inputs
        ctx.save_for_backward(seed)
        ctx.flags = (color, translation, cutout)

    @staticmethod
    def backward(ctx, grad_out):
        (seed,) = ctx.saved_tensors
        # d aug / dx = A, so dL/dx = A^T dL/daug
        return _DiffAugmentAdjoint.apply(grad_out, seed, *ctx.flags), None, None, None, None, None


class _DiffAugmentAdjoint(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(grad, seed, color, translation, cutout):
        return torch.ops.fastwgan.diff_augment_adjoint(grad, seed, color, translation, cutout)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, seed, color, translation, cutout = inputs
        ctx.save_for_backward(seed)
        ctx.flags = (color, translation, cutout)

    @staticmethod
    def backward(ctx, grad_out):
        (seed,) = ctx.saved_tensors
        # (A^T)^T = A: the linear forward, without the brightness constant
        return _DiffAugment.apply(grad_out, seed, *ctx.flags, True), None, None, None, None


# ---------------------------------------------------------------------------------------------------------------
# Public functional API
# ---------------------------------------------------------------------------------------------------------------
def _check_clip_value(clip_value) -> float:
    c = float(clip_value)
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"clip_value must be a positive finite number, got {clip_value}")
    return c


def clip_(x: torch.Tensor | list[torch.Tensor], clip_value: float, impl: str = "auto"):
    """Clamp to [-clip_value, clip_value] in place, in one launch (WGAN weight clipping).

    Args:
        x: the flat parameter buffer (fastwgan.flat), or a list of contiguous tensors of one device (the
            pointer-array kernel: one launch per dtype present). An empty list is a no-op.
        clip_value: positive bound c.
        impl: "auto" | "triton" | "torch" (see the module docstring).
    Returns:
        `x`. Bit-identical to `torch.clamp_` on each tensor.
    """
    c = _check_clip_value(clip_value)
    tensors = [x] if isinstance(x, torch.Tensor) else list(x)
    if not tensors:
        return x
    if _use_triton(impl, tensors[0]):
        with torch.no_grad():
            if isinstance(x, torch.Tensor):
                torch.ops.fastwgan.clip_(x, c)
            else:
                torch.ops.fastwgan.clip_list_(tensors, c)
    else:
        twins.clip_(x, c)
    return x


def _as_scalar_tensor(v, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"expected a number or a one-element tensor, got shape {tuple(v.shape)}")
        return v.reshape(()).to(device=device)
    return torch.tensor(v, dtype=dtype, device=device)


def rmsprop_clip_(
    param,
    grad,
    square_avg,
    lr,
    alpha: float = 0.99,
    eps: float = 1e-8,
    clip_value: float | None = None,
    impl: str = "auto",
) -> None:
    """One torch.optim.RMSprop step (no momentum, not centered, no weight decay), then the clamp, fused.

    Args:
        param: parameters (the flat buffer), updated in place.
        grad: gradients, same shape.
        square_avg: RMSprop state (zeros before the first step), updated in place.
        lr: learning rate, a float or a 0-d tensor (a tensor does not recompile a compiled step when it changes).
        alpha, eps: RMSprop constants (PyTorch's defaults).
        clip_value: clamp to [-clip_value, clip_value] after the update (WGAN); None: plain RMSprop.
        impl: "auto" | "triton" | "torch".
    Returns:
        None.
    """
    if clip_value is not None:
        clip_value = _check_clip_value(clip_value)
    if _use_triton(impl, param):
        lr_t = _as_scalar_tensor(lr, param.device, torch.float32)
        with torch.no_grad():
            torch.ops.fastwgan.rmsprop_clip_(param, grad, square_avg, lr_t, float(alpha), float(eps), clip_value)
    else:
        twins.rmsprop_clip_(param, grad, square_avg, lr, alpha, eps, clip_value)


def adam_(
    param, grad, exp_avg, exp_avg_sq, step, lr, beta1: float, beta2: float, eps: float = 1e-8, impl: str = "auto"
) -> None:
    """One torch.optim.Adam step (bias-corrected, no weight decay, no amsgrad), fused into one pass.

    Args:
        param: parameters (the flat buffer), updated in place.
        grad: gradients, same shape.
        exp_avg, exp_avg_sq: Adam state (zeros before the first step), updated in place.
        step: the step count AFTER the increment (1 on the first step), an int or a 0-d tensor.
        lr: learning rate, a float or a 0-d tensor.
        beta1, beta2, eps: Adam constants (WGAN-GP: betas (0, 0.9)).
        impl: "auto" | "triton" | "torch".
    Returns:
        None.
    """
    if _use_triton(impl, param):
        step_t = _as_scalar_tensor(step, param.device, torch.float32)
        lr_t = _as_scalar_tensor(lr, param.device, torch.float32)
        with torch.no_grad():
            torch.ops.fastwgan.adam_(
                param, grad, exp_avg, exp_avg_sq, step_t, lr_t, float(beta1), float(beta2), float(eps)
            )
    else:
        twins.adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)


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
        impl: "auto" | "triton" | "torch".
    Returns:
        x_hat, (B, ...) contiguous, of real.dtype (computed in fp32). Not differentiable with impl="triton".
    """
    _check_pair(real, fake)
    if eps.shape != (real.shape[0],):
        raise ValueError(f"eps must have shape ({real.shape[0]},), got {tuple(eps.shape)}")
    if _use_triton(impl, real):
        return torch.ops.fastwgan.gp_interpolate(real, fake, eps.to(torch.float32))
    return twins.gp_interpolate(real, fake, eps)


def gp_interpolate_rand(real: torch.Tensor, fake: torch.Tensor, seed: int | torch.Tensor, impl: str = "auto"):
    """Interpolation with eps drawn inside the kernel from `seed` (no separate RNG launch).

    eps_b is a counter-based hash of (seed, b) (`fastwgan.twins.gp_eps_from_seed`), identical in every impl.

    Args:
        real, fake: (B, ...) of one shape and dtype.
        seed: an int or a 0-d integer tensor (a tensor: a new seed per step does not recompile).
        impl: "auto" | "triton" | "torch".
    Returns:
        (x_hat (B, ...) of real.dtype, eps (B,) float32).
    """
    _check_pair(real, fake)
    if _use_triton(impl, real):
        seed_t = _as_scalar_tensor(seed, real.device, torch.int64).to(torch.int64)
        return torch.ops.fastwgan.gp_interpolate_rand(real, fake, seed_t)
    return twins.gp_interpolate_rand(real, fake, seed)


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
    if _use_triton(impl, grad):
        pen, norms = _GradientPenalty.apply(grad, float(weight), bool(one_sided), 1.0)
    else:
        pen, norms = twins.gradient_penalty(grad, weight, one_sided, return_norms=True)
    return (pen, norms) if return_norms else pen


def _gradient_penalty_scaled_backward(grad, weight, one_sided=False, backward_scale=1.0):
    """Test-only: the Triton penalty whose backward is multiplied by backward_scale (the canary)."""
    return _GradientPenalty.apply(grad, float(weight), bool(one_sided), float(backward_scale))[0]


def diff_augment(x: torch.Tensor, seed: int | torch.Tensor, policy: str, impl: str = "auto") -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): per-sample random colour, translation and cutout in one launch.

    The official DiffAugment-pytorch operations, always applied in the order color, translation (ratio 1/8, zero
    fill), cutout (ratio 1/2), with per-sample parameters drawn from `seed` by a counter-based hash
    (`fastwgan.twins.augment_params_from_seed`), identical in every impl. Differentiable in x to any order with
    every impl: the augmentation is affine in x, the Triton path's backward is the adjoint kernel and the
    adjoint's backward is the linear forward kernel.

    Args:
        x: (B, C, H, W) float32, bfloat16 or float16 images (any strides; float64 with impl="torch").
        seed: an int or a 0-d integer tensor (a tensor: a new seed per step does not recompile a compiled step).
        policy: comma-separated subset of "color", "translation", "cutout" (any order); "" returns x itself.
        impl: "auto" | "triton" | "torch".
    Returns:
        (B, C, H, W) of x.dtype, contiguous with impl="triton" (computed in fp32).
    """
    if x.dim() != 4:
        raise ValueError(f"diff_augment needs (B, C, H, W), got shape {tuple(x.shape)}")
    color, translation, cutout = twins.parse_augment_policy(policy)
    if not (color or translation or cutout):
        _use_triton(impl, x)  # still validate impl
        return x
    if _use_triton(impl, x):
        seed_t = _as_scalar_tensor(seed, x.device, torch.int64).to(torch.int64)
        return _DiffAugment.apply(x, seed_t, color, translation, cutout, False)
    return twins.diff_augment(x, seed, policy)
