"""Weight clipping: clamp a flat buffer, or a list of tensors, to [lo, hi] in place, in one launch."""

import torch
import triton
import triton.language as tl

from .common import BLOCK, TL_DTYPES, check_float, grid_1d


@triton.jit
def clamp_kernel(
    X,  # *T (N,) clamped in place
    N,  # number of elements
    LO,  # fp32 lower bound, already rounded to T on the host
    HI,  # fp32 upper bound, already rounded to T on the host
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(X + offs, mask=mask).to(tl.float32)
    # where() rather than minimum/maximum: a NaN fails both tests and stays NaN, as in torch.clamp.
    x = tl.where(x < LO, LO, x)
    x = tl.where(x > HI, HI, x)
    tl.store(X + offs, x.to(X.dtype.element_ty), mask=mask)


@triton.jit
def clamp_multi_kernel(
    PTRS,  # *int64 (T,) address of each tensor
    SIZES,  # *int64 (T,) numel of each tensor
    TABLE,  # *int64 (G, 2) per program: (tensor index, first element)
    LO,  # fp32 lower bound, already rounded to DTYPE on the host
    HI,  # fp32 upper bound, already rounded to DTYPE on the host
    DTYPE: tl.constexpr,  # element type shared by all tensors
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    t = tl.load(TABLE + 2 * pid)
    start = tl.load(TABLE + 2 * pid + 1)
    n = tl.load(SIZES + t)
    X = tl.load(PTRS + t).to(tl.pointer_type(DTYPE))
    offs = start + tl.arange(0, BLOCK).to(tl.int64)
    mask = offs < n
    x = tl.load(X + offs, mask=mask).to(tl.float32)
    x = tl.where(x < LO, LO, x)
    x = tl.where(x > HI, HI, x)
    tl.store(X + offs, x.to(DTYPE), mask=mask)


def _bounds(clip_value: float, dtype: torch.dtype) -> tuple[float, float]:
    # Round the bounds to the tensor's dtype once, with torch's round-to-nearest, so that the fp32 comparison and
    # the cast on store are exact (the interpreter's fp32->bf16 cast truncates, DESIGN fact 9).
    hi = float(torch.tensor(clip_value, dtype=dtype))
    return -hi, hi


def clamp_(x: torch.Tensor, clip_value: float) -> None:
    """Launcher: clamp contiguous `x` to [-clip_value, clip_value] in place, one launch."""
    check_float("clip_", x)
    n = x.numel()
    if n == 0:
        return
    lo, hi = _bounds(clip_value, x.dtype)
    clamp_kernel[grid_1d(n)](x, n, lo, hi, BLOCK=BLOCK)


def clamp_multi_(xs: list[torch.Tensor], clip_value: float) -> None:
    """Launcher: clamp every tensor of `xs` in place; one launch per dtype present (normally one)."""
    check_float("clip_", *xs)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for x in xs:
        if x.numel() > 0:
            by_dtype.setdefault(x.dtype, []).append(x)
    for dtype, group in by_dtype.items():
        device = group[0].device
        if any(x.device != device for x in group):
            raise ValueError("clip_: all tensors of the list must be on one device")
        # Program table: one row per (tensor, block). Built on the host: the list is short (one entry per
        # parameter tensor) and the table is a few hundred bytes.
        table = [(i, s) for i, x in enumerate(group) for s in range(0, x.numel(), BLOCK)]
        meta = torch.tensor([[x.data_ptr() for x in group], [x.numel() for x in group]], dtype=torch.int64).to(
            device, non_blocking=True
        )  # (2, T)
        table_t = torch.tensor(table, dtype=torch.int64).to(device, non_blocking=True)  # (G, 2)
        lo, hi = _bounds(clip_value, dtype)
        clamp_multi_kernel[(len(table),)](meta[0], meta[1], table_t, lo, hi, DTYPE=TL_DTYPES[dtype], BLOCK=BLOCK)
