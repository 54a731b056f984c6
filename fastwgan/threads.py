"""CPU thread count for training steps: fixed, or chosen from measured step times (``threads="auto"``).

Why: torch's intra-op threads meet at an OpenMP barrier after every parallel op. When another busy process
holds one of the cores, the barrier waits for a descheduled thread, and a step made of hundreds of short ops
slows down many times over (measured on a 2-core EPYC: a 128-wide toy step went from 43 ms to 145 ms at 2
threads, but only to 56 ms at 1 thread). No single count is right on a machine shared with other work, so
"auto" measures:

* after ``warmup`` steps (the first call compiles), it times ``probe`` steps at each candidate count (all cores,
  half of them, one) and keeps the fastest, preferring more threads unless fewer are clearly faster;
* it then watches the step time: when ``patience`` steps in a row take more than ``slow`` times the best time
  measured at the current count (another process arrived), or every ``reprobe_every`` steps while running
  below the full count (it may have left), it probes again.

Probes are ordinary training steps (nothing is wasted); only the thread count differs between them. A
parallel reduction sums in an order that depends on the thread count, so a run whose count changed is equal to
a fixed-count run within fp32 rounding, not bitwise: pass an int for bitwise-repeatable CPU runs.
On CUDA the policy does nothing (the host threads only launch kernels).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def candidates(max_threads: int) -> list[int]:
    """Thread counts "auto" tries, most first: all, half (4 or more cores), one."""
    return sorted({max_threads, max(1, max_threads // 2), 1}, reverse=True)


class ThreadPolicy:
    """Runs steps at a fixed or a measured intra-op thread count.

    Args:
        threads: "auto", an int >= 1 (fixed), or None (leave torch's setting alone).
        device: the trainer's device; on anything but CPU the policy is inert.
        warmup: steps run at the full count before the first probe (the first compiles).
        probe: timed steps per candidate in a probe.
        slow: a step this many times the best time at the current count counts as slow.
        patience: slow steps in a row that trigger a new probe.
        reprobe_every: steps between probes while running below the full count.
        margin: fewer threads are kept only if at least this much faster (ratio of median times).
        clock: the timer (tests pass a fake one).
    """

    def __init__(self, threads: int | str | None, device: torch.device, *, warmup: int = 2, probe: int = 2,
                 slow: float = 1.5, patience: int = 3, reprobe_every: int = 50, margin: float = 0.9,
                 clock: Callable[[], float] = time.perf_counter):
        if not (threads is None or threads == "auto" or (isinstance(threads, int) and not isinstance(threads, bool)
                                                          and threads >= 1)):
            raise ValueError(f"threads must be 'auto', a positive int or None, got {threads!r}")
        self.mode = threads if device.type == "cpu" else None
        self.max_threads = torch.get_num_threads()
        self.warmup, self.probe, self.slow, self.patience = warmup, probe, slow, patience
        self.reprobe_every, self.margin, self.clock = reprobe_every, margin, clock
        self.current = self.max_threads if self.mode == "auto" else (self.mode or self.max_threads)
        self.best: dict[int, float] = {}  # best (median) step time measured at each count in the last probe
        self.steps = 0
        self.since_probe = 0
        self.slow_run = 0
        self._plan: list[int] = []  # counts still to run in the probe under way
        self._times: dict[int, list[float]] = {}
        self.log: list[tuple[int, int, str]] = []  # (step, chosen count, why): what "auto" decided and when

    @property
    def settling(self) -> bool:
        """True until "auto" has finished its first probe (benchmarks warm up until then)."""
        return self.mode == "auto" and (self.steps < self.warmup or bool(self._plan))

    def run(self, step: Callable[[], object]):
        """Run one step at the policy's thread count, timing it for "auto"."""
        if self.mode is None:
            return step()
        threads = self._plan[0] if self._plan else self.current
        old = torch.get_num_threads()
        if threads != old:
            torch.set_num_threads(threads)
        try:
            t = self.clock()
            out = step()
            seconds = self.clock() - t
        finally:
            if threads != old:
                torch.set_num_threads(old)  # importing or calling fastwgan leaves global state as it was
        if self.mode == "auto":
            self._observe(threads, seconds)
        return out

    # ------------------------------------------------------------------ the "auto" decisions
    def _start_probe(self, why: str) -> None:
        self._why = why
        self._plan = [t for t in candidates(self.max_threads) for _ in range(self.probe)]
        self._times = {}

    def _observe(self, threads: int, seconds: float) -> None:
        self.steps += 1
        if self._plan:
            self._plan.pop(0)
            self._times.setdefault(threads, []).append(seconds)
            if not self._plan:
                self._finish_probe()
            return
        if self.steps == self.warmup:
            self._start_probe("warm-up")
            return
        if self.steps < self.warmup:
            return
        self.since_probe += 1
        best = self.best.get(threads)
        self.slow_run = self.slow_run + 1 if best is not None and seconds > self.slow * best else 0
        if self.slow_run >= self.patience:
            self._start_probe(f"{self.patience} steps over {self.slow}x the best time at {threads} threads")
        elif threads < self.max_threads and self.since_probe >= self.reprobe_every:
            self._start_probe(f"periodic re-check below {self.max_threads} threads")

    def _finish_probe(self) -> None:
        self.best = {t: statistics.median(ts) for t, ts in self._times.items()}
        choice = self.max_threads
        for t in sorted(self.best, reverse=True):  # fewer threads only when clearly faster
            if self.best[t] < self.margin * self.best[choice]:
                choice = t
        self.current = choice
        self.since_probe = self.slow_run = 0
        self.log.append((self.steps, choice, self._why))
