"""The one place that calls torch.compile (STYLE habit 1; DESIGN fact 2).

Steps are compiled whole with ``fullgraph=True`` (a graph break is a bug, not a slowdown to live with) and
``dynamic=False``: every tensor that changes between calls (learning rates, step counts) is passed as a 0-d
tensor, and batches always have the configured size (the sampler draws fixed-size batches with replacement,
so there is no short last batch), so nothing recompiles after the first call.
"""
from __future__ import annotations

from typing import Callable

import torch

MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_step(fn: Callable, mode: str | None = None) -> Callable:
    """Compile a training-step function as one graph.

    Args:
        fn: the step (pure tensor code plus fastwgan's registered ops).
        mode: torch.compile mode; "reduce-overhead" adds CUDA graphs on CUDA.
    Returns:
        The compiled callable.
    """
    if mode not in MODES:
        raise ValueError(f"compile mode must be one of {MODES}, got {mode!r}")
    return torch.compile(fn, fullgraph=True, dynamic=False, mode=mode)
