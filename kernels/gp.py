"""Gradient penalty: interpolation x_hat = eps real + (1 - eps) fake, and the penalty on the input gradient.

Every (B, ...) tensor is seen as (B, M) with M = numel / B: eps is one per sample and the norm is over all
non-batch dims.
"""

import torch
import triton
import triton.language as tl

from .common import BLOCK, check_float, grid_1d, hash32, round_to

# Counter-based hash for in-kernel eps (a 32-bit xorshift-multiply mix). Constants are below 2^31 so that every
# product of a 32-bit value fits in int64 without overflow: the same integer arithmetic runs bit-identically in
# Triton, in the interpreter (numpy) and in the torch twin (fastwgan.ops.twins.gp_eps_from_seed).
MASK32 = 0xFFFFFFFF
MUL1 = 0x7FEB352D
MUL2 = 0x2C1B3C6D
GOLDEN = 0x61C88647


@triton.jit
def _eps_from_seed(seed, row):
    # eps in [0, 1), a multiple of 2^-24 (exact in fp32)
    x = hash32(hash32(seed) + (row + 1) * 0x61C88647)
    return (x >> 8).to(tl.float32) * (1.0 / 16777216.0)


@triton.jit
def interpolate_kernel(
    REAL,  # *T (B, M)
    FAKE,  # *T (B, M)
    EPS,  # *float (B,) input eps, or output eps when RANDOM
    SEED,  # *int64 0-d seed (used when RANDOM)
    OUT,  # *T (B, M) x_hat
    N,  # B * M
    M,  # elements per sample
    RANDOM: tl.constexpr,  # draw eps in the kernel from SEED and store it to EPS
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    row = offs // M
    if RANDOM:
        seed = tl.load(SEED).to(tl.int64)
        e = _eps_from_seed(seed, row)
        # the first element of each sample publishes its eps
        tl.store(EPS + row, e, mask=mask & (offs % M == 0))
    else:
        e = tl.load(EPS + row, mask=mask).to(tl.float32)
    r = tl.load(REAL + offs, mask=mask).to(tl.float32)
    f = tl.load(FAKE + offs, mask=mask).to(tl.float32)
    x = e * r + (1.0 - e) * f
    tl.store(OUT + offs, round_to(x, OUT.dtype.element_ty), mask=mask)


@triton.jit
def penalty_rows_kernel(
    G,  # *T (B, M) input gradients
    NORMS,  # *fp32 (B,) out: ||g_b||_2
    TERMS,  # *fp32 (B,) out: (n_b - 1)^2, or max(0, n_b - 1)^2 when ONE_SIDED
    B,  # batch size
    M,  # elements per sample
    ONE_SIDED: tl.constexpr,
    ROWS: tl.constexpr,  # samples per program (several when M is small)
    BLOCK_M: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * ROWS + tl.arange(0, ROWS).to(tl.int64)
    row_mask = rows < B
    acc = tl.zeros((ROWS, BLOCK_M), dtype=tl.float32)
    # A while loop, not `for start in range(0, M, BLOCK_M)`: triton 3.6's interpreter cannot take a runtime
    # range bound with numpy >= 2.3 (int() of a 1-element array); a while condition works in every version.
    start = 0
    while start < M:
        cols = start + tl.arange(0, BLOCK_M)
        mask = row_mask[:, None] & (cols[None, :] < M)
        g = tl.load(G + rows[:, None] * M + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        acc += g * g
        start += BLOCK_M
    n = tl.sqrt_rn(tl.sum(acc, axis=1))
    d = n - 1.0
    if ONE_SIDED:
        d = tl.maximum(d, 0.0)
    tl.store(NORMS + rows, n, mask=row_mask)
    tl.store(TERMS + rows, d * d, mask=row_mask)


@triton.jit
def penalty_mean_kernel(
    TERMS,  # *fp32 (B,)
    OUT,  # *T 0-d penalty
    B,  # batch size
    SCALE,  # fp32 weight / B
    BLOCK: tl.constexpr,
):
    # one program, fixed summation order: deterministic (no atomics)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    start = 0
    while start < B:  # a while loop for triton 3.6's interpreter, see penalty_rows_kernel
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(TERMS + offs, mask=offs < B, other=0.0)
        start += BLOCK
    tl.store(OUT, round_to(tl.sum(acc, axis=0) * SCALE, OUT.dtype.element_ty))


@triton.jit
def penalty_backward_kernel(
    GO,  # *T 0-d upstream gradient of the penalty
    G,  # *T (B, M) input gradients
    NORMS,  # *fp32 (B,) norms from the forward
    DG,  # *T (B, M) out: gradient of the penalty w.r.t. G
    N,  # B * M
    M,  # elements per sample
    COEF,  # fp32 2 * weight / B
    ONE_SIDED: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    row = offs // M
    go = tl.load(GO).to(tl.float32)
    n = tl.load(NORMS + row, mask=mask, other=1.0)
    g = tl.load(G + offs, mask=mask).to(tl.float32)
    # L = w / B sum_b d_b^2, d_b = n_b - 1 (or max(0, n_b - 1)), n_b = ||g_b||:
    #   dL/dg_b = w / B * 2 d_b * g_b / n_b; defined as 0 for a zero row (the subgradient torch's norm picks).
    d = n - 1.0
    if ONE_SIDED:
        d = tl.maximum(d, 0.0)
    c = tl.where(n > 0.0, tl.div_rn(COEF * d, tl.where(n > 0.0, n, 1.0)), 0.0) * go
    tl.store(DG + offs, round_to(c * g, DG.dtype.element_ty), mask=mask)


def _rows(x: torch.Tensor) -> tuple[int, int]:
    b = x.shape[0]
    return b, (x.numel() // b if b else 0)


def interpolate(real, fake, eps) -> torch.Tensor:
    """Launcher: x_hat = eps real + (1 - eps) fake, eps (B,) broadcast per sample."""
    check_float("gp_interpolate", real, fake, eps)
    out = torch.empty_like(real)
    n = real.numel()
    if n:
        _, m = _rows(real)
        interpolate_kernel[grid_1d(n)](real, fake, eps, eps, out, n, m, RANDOM=False, BLOCK=BLOCK)
    return out


def interpolate_rand(real, fake, seed) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher: as interpolate, eps drawn in the kernel from `seed` (0-d int64). Returns (x_hat, eps fp32)."""
    check_float("gp_interpolate_rand", real, fake)
    out = torch.empty_like(real)
    b, m = _rows(real)
    eps = torch.empty(b, dtype=torch.float32, device=real.device)
    n = real.numel()
    if n:
        interpolate_kernel[grid_1d(n)](real, fake, eps, seed, out, n, m, RANDOM=True, BLOCK=BLOCK)
    elif b:  # samples with no elements still get their eps
        from fastwgan.ops.twins import gp_eps_from_seed

        eps.copy_(gp_eps_from_seed(seed, b, real.device))
    return out, eps


def penalty(grad, weight: float, one_sided: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher: (weight * mean_b d_b^2 as a 0-d tensor of grad.dtype, norms (B,) fp32)."""
    check_float("gradient_penalty", grad)
    b, m = _rows(grad)
    norms = torch.empty(b, dtype=torch.float32, device=grad.device)
    terms = torch.empty(b, dtype=torch.float32, device=grad.device)
    out = torch.empty((), dtype=grad.dtype, device=grad.device)
    if b == 0:
        out.fill_(float("nan"))  # mean over an empty batch, as torch.mean
        return out, norms
    block_m = min(triton.next_power_of_2(max(m, 1)), 1024)
    rows = min(max(1, 2048 // block_m), triton.next_power_of_2(b))
    penalty_rows_kernel[(triton.cdiv(b, rows),)](
        grad, norms, terms, b, m, ONE_SIDED=one_sided, ROWS=rows, BLOCK_M=block_m
    )
    penalty_mean_kernel[(1,)](terms, out, b, weight / b, BLOCK=min(triton.next_power_of_2(b), 1024))
    return out, norms


def penalty_backward(grad_out, grad, norms, weight: float, one_sided: bool) -> torch.Tensor:
    """Launcher: dL/dg = grad_out * weight * 2 d_b / (B n_b) * g_b (0 on zero rows), shape and dtype of grad."""
    check_float("gradient_penalty backward", grad_out, grad)
    out = torch.empty_like(grad)
    b, m = _rows(grad)
    n = grad.numel()
    if n:
        penalty_backward_kernel[grid_1d(n)](
            grad_out, grad, norms, out, n, m, 2.0 * weight / b, ONE_SIDED=one_sided, BLOCK=BLOCK
        )
    return out
