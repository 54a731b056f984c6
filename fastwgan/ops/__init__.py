"""fastwgan's custom ops: the Triton kernels (fastwgan.kernels) registered with torch.library, and their API.

One file per op (STYLE habit 1): its schema, fake impl, autograd wrapper, public function and plain-PyTorch twin
together; dispatch (which implementation runs, `DEFAULT_IMPL`, `resolve_impl`) and the registration helpers in
one place:

    dispatch.py   HAS_TRITON, INTERPRET, IMPLS, kernel_runs_on, resolves_to_triton, DEFAULT_IMPL, resolve_impl,
                  and the torch.library helpers (define, register, forbid_autograd)
    optimizer.py  clip_, rmsprop_clip_, adam_
    penalty.py    gp_interpolate, gp_interpolate_rand, gradient_penalty (and the hash of the in-kernel draws)
    augment.py    diff_augment, and apply (DiffAugment in training)
    twins.py      the plain-PyTorch twins under the ops' names (`fastwgan.ops.twins.adam`, ...)

Layers: kernel (fastwgan.kernels.*) -> launcher (same modules) -> registered op (torch.ops.fastwgan.*, with a fake
impl) -> public function (with `impl` dispatch: "auto" | "triton" | "torch", see fastwgan.ops.dispatch).
"""

from . import augment, dispatch, optimizer, penalty, twins
from .augment import diff_augment
from .dispatch import DEFAULT_IMPL, HAS_TRITON, IMPLS, INTERPRET, kernel_runs_on, resolve_impl, resolves_to_triton
from .optimizer import adam_, clip_, rmsprop_clip_
from .penalty import gp_interpolate, gp_interpolate_rand, gradient_penalty

__all__ = [
    "augment",
    "dispatch",
    "optimizer",
    "penalty",
    "twins",
    "HAS_TRITON",
    "INTERPRET",
    "IMPLS",
    "DEFAULT_IMPL",
    "kernel_runs_on",
    "resolves_to_triton",
    "resolve_impl",
    "clip_",
    "rmsprop_clip_",
    "adam_",
    "gp_interpolate",
    "gp_interpolate_rand",
    "gradient_penalty",
    "diff_augment",
]
