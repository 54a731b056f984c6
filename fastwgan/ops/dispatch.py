"""Dispatch and registration, in one place: which implementation an op runs, and how an op is registered.

What lives here (everything the op files share; one file per op holds the rest, fastwgan/ops/<op>.py):
  * `HAS_TRITON`, `INTERPRET`, `IMPLS` and the resolution of an op's `impl` for a tensor: `kernel_runs_on`
    (where the Triton kernels can run) and `resolves_to_triton` (what "auto" | "triton" | "torch" means there);
  * `DEFAULT_IMPL` and `resolve_impl`: the per-device, per-op-group table of the fast trainers;
  * the torch.library helpers every op file uses: `define` (the schemas), `register` (cpu/cuda impl + fake),
    `forbid_autograd`, the shared fakes `no_fake_output` and `fake_like_first`;
  * the small tensor helpers the ops and their twins share: `as_scalar_tensor`, `compute_dtype`, `per_sample`.

Dispatch `impl`: "torch" is the twin (plain tensor ops inductor can fuse); "triton" is the kernel; "auto" is the
kernel on CUDA and, on CPU, the kernel under the Triton interpreter when TRITON_INTERPRET=1 was set before
`fastwgan.kernels` was imported (Triton decides interpret-or-compile when it decorates a kernel, so the
setting is read at import), else the twin. `INTERPRET` is read when an op runs, so a test can patch it here.

Registration pattern (DESIGN fact 3): ops are made with `torch.library.define` + `torch.library.impl` for
cpu/cuda + `register_fake`, with NO working autograd kernel. A differentiable op is an `autograd.Function`
(with `setup_context` and `generate_vmap_rule = True`) that calls the forward op and, in its backward, the
backward op; this is the only pattern that worked under torch.func nested twice and under a fullgraph
torch.compile. `custom_op`/`triton_op` + `register_autograd` fail under torch.func.
"""

from __future__ import annotations

import torch

try:
    from ..kernels import clip as _kclip
    from ..kernels import common as _kcommon

    HAS_TRITON = True
    #: True when the kernels run under the Triton interpreter (CPU); fixed at import.
    INTERPRET = _kcommon.is_interpreted(_kclip.clamp_kernel)
except ImportError:  # pragma: no cover - platforms without triton: the twins only
    HAS_TRITON = False
    INTERPRET = False

IMPLS = ("auto", "triton", "torch")

#: The torch.library namespace of every fastwgan op (torch.ops.fastwgan.*).
NAMESPACE = "fastwgan"


def kernel_runs_on(device: torch.device) -> bool:
    """True when the Triton kernels can run on `device` (CUDA; CPU under the interpreter)."""
    return HAS_TRITON and (device.type == "cuda" or (device.type == "cpu" and INTERPRET))


def resolves_to_triton(impl: str, t: torch.Tensor) -> bool:
    """True when `impl` runs the Triton kernel for a tensor like `t` (False: the plain-PyTorch twin).

    Raises for an unknown `impl`, and for impl="triton" where the kernel cannot run.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return False
    ok = kernel_runs_on(t.device)
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


# Which implementation each op uses, per device type. "auto" = the Triton kernel where Triton runs (CUDA; CPU
# under TRITON_INTERPRET=1), else the plain-PyTorch twin. The penalty defaults to the twin: inside a compiled
# step inductor fuses the twin's math itself (DESIGN fact 7), and no GPU benchmark has yet shown the opaque
# kernel faster; change it only with a benchmark that says so.
DEFAULT_IMPL = {
    "cpu": {"optimizer": "auto", "interpolate": "auto", "penalty": "torch", "augment": "auto"},
    "cuda": {"optimizer": "auto", "interpolate": "auto", "penalty": "torch", "augment": "auto"},
}


def resolve_impl(impl: str | dict, device: torch.device) -> dict[str, str]:
    """The per-op-group implementation table of a fast trainer: ``DEFAULT_IMPL`` for the device, with ``impl``
    ("auto" | "triton" | "torch" for every group, or a dict of groups) applied."""
    table = dict(DEFAULT_IMPL.get(device.type, DEFAULT_IMPL["cpu"]))
    if isinstance(impl, str):
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS} or a dict, got {impl!r}")
        return table if impl == "auto" else {k: impl for k in table}
    unknown = set(impl) - set(table)
    if unknown:
        raise ValueError(f"impl: unknown op group(s) {sorted(unknown)}; known: {sorted(table)}")
    table.update(impl)
    return table


# ---------------------------------------------------------------------------------------------------------------
# torch.library helpers. An op's cpu/cuda impl runs the kernel where it can run (CUDA, or CPU under the
# interpreter) and the twin otherwise, so calling torch.ops.fastwgan.* directly is always defined.
# ---------------------------------------------------------------------------------------------------------------
def define(schemas: dict[str, str]) -> None:
    """`torch.library.define` each {op name: schema} in the fastwgan namespace (once per process)."""
    for name, schema in schemas.items():
        torch.library.define(f"{NAMESPACE}::{name}", schema)


def register(name: str, fake):
    """Decorator: the function is op `name`'s cpu and cuda impl, `fake` its fake (meta) impl.

    Fake impls must match the real ones exactly, dtype and strides included (DESIGN fact 6).
    """

    def deco(fn):
        torch.library.impl(f"{NAMESPACE}::{name}", ("cpu", "cuda"), fn)
        torch.library.register_fake(f"{NAMESPACE}::{name}", fake)
        return fn

    return deco


def no_fake_output(*args, **kwargs):
    """The fake impl of an op that only mutates its arguments (schema `-> ()`)."""
    return None


def fake_like_first(x, *args):
    """The fake impl of an op whose one output is a new contiguous tensor of its first input's shape and dtype."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def forbid_autograd(name: str, why: str) -> None:
    """Autograd kernel for an op that must never be differentiated by autograd directly: raise, never zero.

    DESIGN fact 4's silent hazard made loud: when autograd reaches the op itself (e.g. under torch.compile when
    the op is applied directly to a transform's input, where the autograd.Function's backward is bypassed), the
    gradient would silently be zero.
    """
    op = getattr(getattr(torch.ops, NAMESPACE), name).default

    def kernel(*args):
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            raise RuntimeError(f"{NAMESPACE}::{name} was differentiated by autograd directly: {why}")
        with torch._C._AutoDispatchBelowAutograd():
            return op(*args)

    torch.library.impl(f"{NAMESPACE}::{name}", "Autograd", kernel)


# ---------------------------------------------------------------------------------------------------------------
# Tensor helpers shared by the ops and their twins
# ---------------------------------------------------------------------------------------------------------------
def as_scalar_tensor(v, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A 0-d tensor on `device`: a one-element tensor reshaped (its dtype kept), or a number as `dtype`."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"expected a number or a one-element tensor, got shape {tuple(v.shape)}")
        return v.reshape(()).to(device=device)
    return torch.tensor(v, dtype=dtype, device=device)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp16/bf16/fp32 (the kernels' accumulation type), fp64 stays fp64 (for gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) `v` shaped (B, 1, ..., 1) to broadcast over `like`'s non-batch dims."""
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1)))
