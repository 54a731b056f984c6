"""What the Triton kernels share: launcher helpers (host side) and the counter-based hash (device side)."""

import torch
import triton
import triton.language as tl

# Dtypes the kernels load, upcast to fp32 for arithmetic, and store back (DESIGN fact 9: bf16 arithmetic in the
# interpreter is wrong without the upcast, so every kernel computes in fp32).
TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}

# One block of a 1-D elementwise kernel. No autotuning: `@triton.autotune` does not run under the interpreter
# (DESIGN fact 9); 1024 fp32 elements per program is a good default for bandwidth-bound elementwise work.
BLOCK = 1024


@triton.jit
def hash32(x):
    # the counter-based hash the kernels draw per-sample randomness from (fastwgan.ops.twins.hash32 is its twin):
    # a 32-bit integer mix (xorshift-multiply, "lowbias32"), on int64 lanes masked to 32 bits
    x = x & 0xFFFFFFFF
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return x


def is_interpreted(kernel) -> bool:
    """True when `kernel` was decorated while TRITON_INTERPRET=1 was set (Triton decides at decoration time)."""
    return type(kernel).__name__ == "InterpretedFunction"


def check_float(name: str, *tensors: torch.Tensor) -> None:
    """Refuse dtypes the kernels do not handle and tensors that are not dense and contiguous."""
    for t in tensors:
        if t.dtype not in TL_DTYPES:
            raise TypeError(f"{name}: the Triton kernel supports float32, float16 and bfloat16, got {t.dtype}")
        if not t.is_contiguous():
            raise ValueError(
                f"{name}: the Triton kernel needs contiguous tensors (got strides {t.stride()} for shape "
                f"{tuple(t.shape)}); use fastwgan.core.flat.flatten_parameters or .contiguous()"
            )


def grid_1d(n: int, block: int = BLOCK):
    return (triton.cdiv(n, block),)


@triton.jit
def round_to(x, DTYPE: tl.constexpr):
    # fp32 -> DTYPE, round to nearest even. The interpreter truncates fp32 -> bf16 (DESIGN fact 9), so bf16 is
    # rounded by hand: add half an ulp (ties to even) to the bits and drop the low 16. The GPU's own cast gives
    # the same bits; NaN goes through the plain cast so that its payload cannot carry into the exponent.
    if DTYPE == tl.bfloat16:
        u = x.to(tl.uint32, bitcast=True)
        u = u + 0x7FFF + ((u >> 16) & 1)
        r = (u >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        return tl.where(x != x, x.to(tl.bfloat16), r)
    else:
        return x.to(DTYPE)
