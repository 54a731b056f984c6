"""The one place that calls torch.compile (STYLE habit 1; DESIGN fact 2).

Steps are compiled whole with ``fullgraph=True`` (a graph break is a bug, not a slowdown to live with) and
``dynamic=False``: every tensor that changes between calls (learning rates, step counts) is passed as a 0-d
tensor, and batches always have the configured size (the sampler draws fixed-size batches with replacement,
so there is no short last batch), so nothing recompiles after the first call.

Inductor options per device are data (``INDUCTOR_OPTIONS``), each entry with the measurement that chose it.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: Inductor options per device type, applied while a step compiles. Each entry names what chose it.
INDUCTOR_OPTIONS: dict[str, dict[str, object]] = {
    "cpu": {
        # Inductor's layout optimisation turns convolution activations channels-last and back with transpose
        # kernels around every convolution; oneDNN's own NCHW path is faster here. Chosen by the DCGAN-32 b64
        # wgan-gp (LayerNorm critic) step, torch 2.13 CPU, 2-core EPYC, 1 thread (quiet), median of 5: 2068 ms
        # off vs 2247 ms on (the eager loop: 2002 ms); re-measured by benchmarks/test_bench_steps.py
        # --profile cpu (provider fastwgan vs loop).
        "layout_optimization": False,
    },
    "cuda": {},
}


# Every trainer compiles its steps from the same methods (one code object per method), and Dynamo keeps one cache
# entry per (trainer's graph, torch thread count): its guards include the global num_threads, which the "auto"
# thread policy (fastwgan.threads) changes while it probes. A process training several GANs of different configs
# (sizes, DiffAugment policies) reached Dynamo's default recompile_limit (8) for one method and, with
# fullgraph=True, failed hard (12 digit GANs in one process, TORCH_LOGS=recompiles: "GLOBAL_STATE changed:
# num_threads"). So a step's first call at each thread count (where it compiles) runs with these limits raised;
# every other call runs under Dynamo's own limits, so a genuine recompile of a warm step (shapes and scalars are
# fixed here) still fails loudly.
FIRST_CALL_LIMITS = {"recompile_limit": 1024, "accumulated_recompile_limit": 8192}


def compile_step(fn: Callable, mode: str | None = None, device: torch.device | str | None = None) -> Callable:
    """Compile a training-step function as one graph.

    Args:
        fn: the step (pure tensor code plus fastwgan's registered ops).
        mode: torch.compile mode; "reduce-overhead" adds CUDA graphs on CUDA.
        device: the device the step runs on; selects ``INDUCTOR_OPTIONS`` (None: no extra options).
    Returns:
        The compiled callable.
    """
    if mode not in MODES:
        raise ValueError(f"compile mode must be one of {MODES}, got {mode!r}")
    options = INDUCTOR_OPTIONS.get(torch.device(device).type, {}) if device is not None else {}
    if not options:
        compiled = torch.compile(fn, fullgraph=True, dynamic=False, mode=mode)
    elif mode in (None, "default"):
        compiled = torch.compile(fn, fullgraph=True, dynamic=False, options=dict(options))
    else:
        # torch.compile takes a mode or options, not both: apply the options around each call (compiles happen
        # inside the first call).
        inner = torch.compile(fn, fullgraph=True, dynamic=False, mode=mode)
        import torch._inductor.config as inductor_config

        def compiled(*args, **kwargs):
            with inductor_config.patch(options):
                return inner(*args, **kwargs)

    import torch._dynamo.config as dynamo_config

    warm: set[int] = set()  # the thread counts this step has run (and so compiled) at

    @functools.wraps(fn)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads in warm:
            return compiled(*args, **kwargs)
        with dynamo_config.patch(FIRST_CALL_LIMITS):  # this step compiles here (see FIRST_CALL_LIMITS)
            out = compiled(*args, **kwargs)
        warm.add(threads)
        return out

    return run
