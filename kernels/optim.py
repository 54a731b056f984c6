"""Fused optimizer updates on flat buffers: RMSprop followed by the WGAN clamp, and Adam (one pass each)."""

import math

import torch
import triton
import triton.language as tl

from .common import BLOCK, check_float, grid_1d, round_to


@triton.jit
def rmsprop_clip_kernel(
    P,  # *T (N,) parameters, updated in place
    G,  # *T (N,) gradients
    SQ,  # *T (N,) square averages, updated in place
    LR,  # *float 0-d learning rate (a tensor: a new value does not recompile a compiled step)
    N,  # number of elements
    ALPHA,  # fp32 smoothing constant
    ONE_MINUS_ALPHA,  # fp32 1 - alpha, computed in double on the host as torch.optim does
    EPS,  # fp32 term added to the root of the square average
    LO,  # fp32 lower clamp bound (used when CLIP)
    HI,  # fp32 upper clamp bound (used when CLIP)
    CLIP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    lr = tl.load(LR).to(tl.float32)
    p = tl.load(P + offs, mask=mask).to(tl.float32)
    g = tl.load(G + offs, mask=mask).to(tl.float32)
    sq = tl.load(SQ + offs, mask=mask).to(tl.float32)
    # torch.optim.RMSprop (no momentum, not centered): sq = alpha sq + (1 - alpha) g^2; p -= lr g / (sqrt(sq) + eps)
    sq = sq * ALPHA + ONE_MINUS_ALPHA * g * g
    p = p - lr * tl.div_rn(g, tl.sqrt_rn(sq) + EPS)
    if CLIP:
        p = tl.where(p < LO, LO, p)
        p = tl.where(p > HI, HI, p)
    tl.store(SQ + offs, round_to(sq, SQ.dtype.element_ty), mask=mask)
    tl.store(P + offs, round_to(p, P.dtype.element_ty), mask=mask)


@triton.jit
def adam_kernel(
    P,  # *T (N,) parameters, updated in place
    G,  # *T (N,) gradients
    M,  # *T (N,) first moments, updated in place
    V,  # *T (N,) second moments, updated in place
    STEP,  # *number 0-d step count after the increment (1 on the first step)
    LR,  # *float 0-d learning rate
    N,  # number of elements
    W1,  # fp32 lerp weight 1 - beta1 (torch.optim updates exp_avg with lerp_)
    BETA2,  # fp32 beta2
    ONE_MINUS_BETA2,  # fp32 1 - beta2
    LOG2_BETA1,  # fp32 log2(beta1); unused when BETA1_ZERO
    LOG2_BETA2,  # fp32 log2(beta2)
    EPS,  # fp32
    BETA1_ZERO: tl.constexpr,  # beta1 == 0 (the WGAN-GP preset): the first moment is the gradient
    W1_LT_HALF: tl.constexpr,  # which of torch.lerp's two formulas applies
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    step = tl.load(STEP).to(tl.float32)
    lr = tl.load(LR).to(tl.float32)
    # Bias corrections 1 - beta^step, computed per program from the step tensor (no host sync, no recompiles).
    if BETA1_ZERO:
        bc1 = 1.0
    else:
        bc1 = 1.0 - tl.exp2(step * LOG2_BETA1)
    bc2 = 1.0 - tl.exp2(step * LOG2_BETA2)
    p = tl.load(P + offs, mask=mask).to(tl.float32)
    g = tl.load(G + offs, mask=mask).to(tl.float32)
    m = tl.load(M + offs, mask=mask).to(tl.float32)
    v = tl.load(V + offs, mask=mask).to(tl.float32)
    # m = lerp(m, g, 1 - beta1) with torch.lerp's formula choice; v = beta2 v + (1 - beta2) g^2
    if W1_LT_HALF:
        m = m + W1 * (g - m)
    else:
        m = g - (g - m) * (1.0 - W1)
    v = v * BETA2 + ONE_MINUS_BETA2 * g * g
    # p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
    denom = tl.div_rn(tl.sqrt_rn(v), tl.sqrt_rn(bc2)) + EPS
    p = p - tl.div_rn(lr, bc1) * tl.div_rn(m, denom)
    tl.store(M + offs, round_to(m, M.dtype.element_ty), mask=mask)
    tl.store(V + offs, round_to(v, V.dtype.element_ty), mask=mask)
    tl.store(P + offs, round_to(p, P.dtype.element_ty), mask=mask)


def _check_same(name: str, ref: torch.Tensor, *others: torch.Tensor) -> None:
    for t in others:
        if t.shape != ref.shape or t.device != ref.device:
            raise ValueError(
                f"{name}: state tensors must match the parameter's shape and device, "
                f"got {tuple(t.shape)} on {t.device} for {tuple(ref.shape)} on {ref.device}"
            )


def rmsprop_clip_(
    param, grad, square_avg, lr: torch.Tensor, alpha: float, eps: float, clip_value: float | None
) -> None:
    """Launcher: one fused RMSprop (+ clamp when clip_value is not None) pass over contiguous buffers."""
    check_float("rmsprop_clip_", param, grad, square_avg)
    _check_same("rmsprop_clip_", param, grad, square_avg)
    n = param.numel()
    if n == 0:
        return
    hi = 0.0 if clip_value is None else float(torch.tensor(clip_value, dtype=param.dtype))
    rmsprop_clip_kernel[grid_1d(n)](
        param, grad, square_avg, lr, n, alpha, 1.0 - alpha, eps, -hi, hi, CLIP=clip_value is not None, BLOCK=BLOCK
    )


def adam_(
    param, grad, exp_avg, exp_avg_sq, step: torch.Tensor, lr: torch.Tensor, beta1: float, beta2: float, eps: float
) -> None:
    """Launcher: one fused Adam pass (bias-corrected, no weight decay) over contiguous buffers."""
    check_float("adam_", param, grad, exp_avg, exp_avg_sq)
    _check_same("adam_", param, grad, exp_avg, exp_avg_sq)
    n = param.numel()
    if n == 0:
        return
    w1 = 1.0 - beta1
    log2_b1 = math.log2(beta1) if beta1 > 0 else 0.0
    log2_b2 = math.log2(beta2) if beta2 > 0 else -1e30  # beta2 == 0: bc2 = 1 - 2^-inf = 1
    adam_kernel[grid_1d(n)](
        param,
        grad,
        exp_avg,
        exp_avg_sq,
        step,
        lr,
        n,
        w1,
        beta2,
        1.0 - beta2,
        log2_b1,
        log2_b2,
        eps,
        BETA1_ZERO=beta1 == 0,
        W1_LT_HALF=w1 < 0.5,
        BLOCK=BLOCK,
    )
