"""The optimizer ops: weight clipping (`clip_`), fused RMSprop + clip (`rmsprop_clip_`) and fused Adam (`adam_`).

One file per op (STYLE habit 1): kernel (fastwgan.kernels.clip / .optim) -> registered op (schema, cpu/cuda impl,
fake impl; here) -> public function (here, with `impl` dispatch, fastwgan.ops.dispatch), next to its
plain-PyTorch twin (`twin_*` here, public as `fastwgan.ops.twins.<name>`).

These ops need no autograd (DESIGN fact 5): they are opaque ops with `mutates_args` (`Tensor(a!)` in the schema),
which write in place inside a fullgraph compiled step, and their public functions run under `torch.no_grad`.
"""

from __future__ import annotations

import math

import torch

from . import dispatch
from .dispatch import as_scalar_tensor

if dispatch.HAS_TRITON:
    from ..kernels import clip as _kclip
    from ..kernels import optim as _koptim

SCHEMAS = {
    "clip_": "(Tensor(a!) x, float clip_value) -> ()",
    "clip_list_": "(Tensor(a!)[] xs, float clip_value) -> ()",
    "rmsprop_clip_": "(Tensor(a!) param, Tensor grad, Tensor(b!) square_avg, Tensor lr, float alpha, float eps, "
    "float? clip_value) -> ()",
    "adam_": "(Tensor(a!) param, Tensor grad, Tensor(b!) exp_avg, Tensor(c!) exp_avg_sq, Tensor step, Tensor lr, "
    "float beta1, float beta2, float eps) -> ()",
}
dispatch.define(SCHEMAS)


@dispatch.register("clip_", dispatch.no_fake_output)
def _clip_impl(x, clip_value):
    if dispatch.kernel_runs_on(x.device):
        _kclip.clamp_(x, clip_value)
    else:
        twin_clip_(x, clip_value)


@dispatch.register("clip_list_", dispatch.no_fake_output)
def _clip_list_impl(xs, clip_value):
    if xs and dispatch.kernel_runs_on(xs[0].device):
        _kclip.clamp_multi_(list(xs), clip_value)
    else:
        twin_clip_(list(xs), clip_value)


@dispatch.register("rmsprop_clip_", dispatch.no_fake_output)
def _rmsprop_clip_impl(param, grad, square_avg, lr, alpha, eps, clip_value):
    if dispatch.kernel_runs_on(param.device):
        _koptim.rmsprop_clip_(param, grad, square_avg, lr, alpha, eps, clip_value)
    else:
        twin_rmsprop_clip_(param, grad, square_avg, lr, alpha, eps, clip_value)


@dispatch.register("adam_", dispatch.no_fake_output)
def _adam_impl(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps):
    if dispatch.kernel_runs_on(param.device):
        _koptim.adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
    else:
        twin_adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)


# ---------------------------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------------------------
def _check_clip_value(clip_value) -> float:
    c = float(clip_value)
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"clip_value must be a positive finite number, got {clip_value}")
    return c


def clip_(x: torch.Tensor | list[torch.Tensor], clip_value: float, impl: str = "auto"):
    """Clamp to [-clip_value, clip_value] in place, in one launch (WGAN weight clipping).

    Args:
        x: the flat parameter buffer (fastwgan.core.flat), or a list of contiguous tensors of one device (the
            pointer-array kernel: one launch per dtype present). An empty list is a no-op.
        clip_value: positive bound c.
        impl: "auto" | "triton" | "torch" (fastwgan.ops.dispatch).
    Returns:
        `x`. Bit-identical to `torch.clamp_` on each tensor.
    """
    c = _check_clip_value(clip_value)
    tensors = [x] if isinstance(x, torch.Tensor) else list(x)
    if not tensors:
        return x
    if dispatch.resolves_to_triton(impl, tensors[0]):
        with torch.no_grad():
            if isinstance(x, torch.Tensor):
                torch.ops.fastwgan.clip_(x, c)
            else:
                torch.ops.fastwgan.clip_list_(tensors, c)
    else:
        twin_clip_(x, c)
    return x


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
    if dispatch.resolves_to_triton(impl, param):
        lr_t = as_scalar_tensor(lr, param.device, torch.float32)
        with torch.no_grad():
            torch.ops.fastwgan.rmsprop_clip_(param, grad, square_avg, lr_t, float(alpha), float(eps), clip_value)
    else:
        twin_rmsprop_clip_(param, grad, square_avg, lr, alpha, eps, clip_value)


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
    if dispatch.resolves_to_triton(impl, param):
        step_t = as_scalar_tensor(step, param.device, torch.float32)
        lr_t = as_scalar_tensor(lr, param.device, torch.float32)
        with torch.no_grad():
            torch.ops.fastwgan.adam_(
                param, grad, exp_avg, exp_avg_sq, step_t, lr_t, float(beta1), float(beta2), float(eps)
            )
    else:
        twin_adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)


# ---------------------------------------------------------------------------------------------------------------
# Plain-PyTorch twins (fastwgan.ops.twins): the impl="torch" path and the kernels' oracle
# ---------------------------------------------------------------------------------------------------------------
def twin_clip_(x: torch.Tensor | list[torch.Tensor], clip_value: float):
    """Clamp `x` (a tensor or a list of tensors) to [-clip_value, clip_value] in place.

    Args:
        x: tensor or list of tensors, modified in place.
        clip_value: positive bound c.
    Returns:
        `x`.
    """
    with torch.no_grad():
        for t in [x] if isinstance(x, torch.Tensor) else x:
            t.clamp_(-clip_value, clip_value)
    return x


def twin_rmsprop_clip(param, grad, square_avg, lr, alpha=0.99, eps=1e-8, clip_value=None):
    """One step of torch.optim.RMSprop (no momentum, not centered, no weight decay), then the clamp, out of place.

    The same tensor ops in the same order as `torch.optim.RMSprop`'s single-tensor path (so the same values).

    Args:
        param, grad, square_avg: tensors of one shape (not modified).
        lr: learning rate, a float or a 0-d tensor.
        alpha, eps: RMSprop constants.
        clip_value: clamp the new parameters to [-clip_value, clip_value]; None: no clamp.
    Returns:
        (new param, new square_avg).
    """
    with torch.no_grad():
        square_avg = (square_avg * alpha).addcmul_(grad, grad, value=1 - alpha)
        avg = square_avg.sqrt().add_(eps)
        if isinstance(lr, torch.Tensor):
            param = param - grad / avg * lr
        else:
            param = param.addcdiv(grad, avg, value=-lr)
        if clip_value is not None:
            param = param.clamp(-clip_value, clip_value)
        return param, square_avg


def twin_rmsprop_clip_(param, grad, square_avg, lr, alpha=0.99, eps=1e-8, clip_value=None):
    """`twin_rmsprop_clip` in place: param and square_avg are updated. Returns None."""
    new_param, new_avg = twin_rmsprop_clip(param, grad, square_avg, lr, alpha, eps, clip_value)
    with torch.no_grad():
        square_avg.copy_(new_avg)
        param.copy_(new_param)


def twin_adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps=1e-8):
    """One step of torch.optim.Adam (bias-corrected, no weight decay, no amsgrad), out of place.

    The same tensor ops in the same order as `torch.optim.Adam`'s single-tensor path (so the same values).

    Args:
        param, grad, exp_avg, exp_avg_sq: tensors of one shape (not modified).
        step: the step count after the increment (1 on the first step), an int or a 0-d tensor.
        lr: learning rate, a float or a 0-d tensor.
        beta1, beta2, eps: Adam constants.
    Returns:
        (new param, new exp_avg, new exp_avg_sq).
    """
    with torch.no_grad():
        exp_avg = torch.lerp(exp_avg, grad, 1 - beta1)
        exp_avg_sq = (exp_avg_sq * beta2).addcmul_(grad, grad, value=1 - beta2)
        if isinstance(step, torch.Tensor):
            step = step.to(torch.float32)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
        if isinstance(step_size, torch.Tensor):
            param = param - exp_avg / denom * step_size
        else:
            param = param.addcdiv(exp_avg, denom, value=-step_size)
        return param, exp_avg, exp_avg_sq


def twin_adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps=1e-8):
    """`twin_adam` in place: param, exp_avg and exp_avg_sq are updated. Returns None."""
    new_param, new_avg, new_sq = twin_adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
    with torch.no_grad():
        exp_avg.copy_(new_avg)
        exp_avg_sq.copy_(new_sq)
        param.copy_(new_param)
