"""The one place that calls torch.compile (STYLE habit 1; DESIGN fact 2).

Steps are compiled whole with ``fullgraph=True`` (a graph break is a bug, not a slowdown to live with) and
``dynamic=False``: every tensor that changes between calls (learning rates, step counts) is passed as a 0-d
tensor, and batches always have the configured size (the sampler draws fixed-size batches with replacement,
so there is no short last batch), so nothing recompiles after the first call.

Inductor options per device are data (``INDUCTOR_OPTIONS``), each entry with the measurement that chose it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
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
        "layout_optimization": False
    },
    "cuda": {},
}


# Every trainer compiles its steps from the same methods (one code object per method), and Dynamo keeps one cache
# entry per (trainer's graph, torch thread count): its guards include the global num_threads, which the "auto"
# thread policy (fastwgan.core.threads) changes while it probes. A process training several GANs of different configs
# (sizes, DiffAugment policies) reached Dynamo's default recompile_limit (8) for one method and, with
# fullgraph=True, failed hard (12 digit GANs in one process, TORCH_LOGS=recompiles: "GLOBAL_STATE changed:
# num_threads"). So a step's first call at each thread count (where it compiles) runs with these limits raised;
# every other call runs under Dynamo's own limits, so a genuine recompile of a warm step (shapes and scalars are
# fixed here) still fails loudly.
FIRST_CALL_LIMITS = {"recompile_limit": 1024, "accumulated_recompile_limit": 8192}

log = logging.getLogger("fastwgan")

# A compile killed while inductor wrote its on-disk cache (a scheduler's time limit, the OOM killer, `kill -9`)
# can leave a truncated artifact there: zero-byte `.so` files were seen after a harness killed a child
# mid-compile, and from then on every process compiling the same graph failed with "ImportError: ...main.so: file
# too short", quiet machine or not. Inductor trusts an existing file (it only compiles when the path is absent), so
# the cure is to delete the entry and compile again: `heal_cache` below, around every step's first call.
_CACHE_PATH = re.compile(r"(/[^\s'\":]+)")


def inductor_cache_dir() -> str | None:
    """Inductor's on-disk cache folder for this process (``TORCHINDUCTOR_CACHE_DIR`` or its default)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:  # pragma: no cover  (torch releases without the helper)
        return os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return cache_dir()


def corrupt_cache_files(error: BaseException) -> list[str]:
    """The existing shared objects inside inductor's cache folder that an exception (or its causes) names.

    Only compiled libraries under the cache folder are returned: a path elsewhere (the user's data, the package)
    is never a cache entry to delete, and the sources a genuine C++ compile error names are not corrupt.
    """
    root = inductor_cache_dir()
    if not root:
        return []
    root = os.path.realpath(root) + os.sep
    found: list[str] = []
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for path in _CACHE_PATH.findall(str(e)):
            path = path.rstrip(".,;)")
            real = os.path.realpath(path)
            if real.endswith(".so") and real.startswith(root) and os.path.isfile(real) and real not in found:
                found.append(real)
        e = e.__cause__ or e.__context__
    return found


#: A zero-byte shared object this old is a leftover, not a file another process is writing right now.
STALE_EMPTY_S = 60.0
_swept: set[str] = set()  # the cache folders swept by this process


def sweep_empty_artifacts(root: str | None = None, before: float | None = None) -> list[str]:
    """Delete the zero-byte ``*.so`` files under inductor's cache folder last written before ``before`` (a
    ``time.time()`` value; default ``STALE_EMPTY_S`` ago).

    A zero-byte shared object is never valid, and inductor does not only trust the compiled kernels it finds: it
    also loads small probe libraries to decide which vector ISA the CPU supports, and an empty probe silently
    turns vectorisation off while cached kernels still use it (a C++ compile error that names no bad file). The
    time limit leaves alone a file that a concurrent compile is writing right now. Returns the deleted paths.
    """
    import time

    root = root or inductor_cache_dir()
    if not root or not os.path.isdir(root):
        return []
    before = time.time() - STALE_EMPTY_S if before is None else before
    gone = []
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".so"):
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
                if st.st_size == 0 and st.st_mtime < before:
                    os.remove(path)
                    gone.append(path)
            except FileNotFoundError:
                pass
    return gone


def _note(paths: list[str], why: str) -> None:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    log.warning("removed %d corrupt file(s) from the inductor cache (%s: %s), compiling again", len(paths), why, shown)


def heal_cache(call: Callable, *args, **kwargs):
    """``call(*args, **kwargs)`` (a first call, which compiles) on a healthy inductor cache.

    Before the process's first compile, empty leftovers are swept (``sweep_empty_artifacts``); if the call still
    fails on a corrupt cache entry that the error names, that entry is deleted and the call made again (while each
    failure names a new corrupt entry). Each repair is one line on the logger "fastwgan". Any other error
    propagates.
    """
    root = inductor_cache_dir()
    if root and root not in _swept:
        _swept.add(root)
        gone = sweep_empty_artifacts(root)
        if gone:
            _note(gone, "empty files left by a killed compile")
    removed: list[str] = []
    try:
        # One graph loads many kernel libraries and the loader stops at the first bad one: repeat while each
        # failure names a new corrupt file (every round deletes one, so this ends).
        for _ in range(MAX_REPAIRS + 1):
            try:
                return call(*args, **kwargs)
            except Exception as e:  # noqa: BLE001  (inductor wraps the loader's ImportError in its own types)
                bad = [p for p in corrupt_cache_files(e) if p not in removed]
                if not bad or len(removed) >= MAX_REPAIRS:
                    raise
                # the kill that emptied these emptied its other files at the same moment or earlier: sweep them
                # too (the step's other graphs would fail on them one call later), but nothing written since
                newest = max(os.stat(p).st_mtime for p in bad)
                for path in bad:
                    try:
                        os.remove(path)
                    except FileNotFoundError:
                        pass
                removed += bad + [p for p in sweep_empty_artifacts(root, before=newest + 1.0) if p not in bad]
    finally:
        if removed:
            _note(removed, "named by the compile's errors; an earlier compile was killed?")


#: How many corrupt files one first call may delete before its error propagates.
MAX_REPAIRS = 256


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
            out = heal_cache(compiled, *args, **kwargs)
        warm.add(threads)
        return out

    return run
