"""CPU thread count for training steps: fixed, or chosen from measured step times (``threads="auto"``).

Why: torch's intra-op threads meet at an OpenMP barrier after every parallel op. When another busy process
holds one of the cores, the barrier waits for a descheduled thread, and a step made of hundreds of short ops
slows down many times over (measured on a 2-core EPYC: a 128-wide toy step went from 43 ms to 145 ms at 2
threads, but only to 56 ms at 1 thread). No single count is right on a machine shared with other work, so
"auto" measures:

* it runs at all cores (torch's default) and keeps the typical step time there: the median of the last
  ``window`` steps that were not slow (not the best time: on a virtual machine a rare fast step set a bar that
  ordinary noise crossed, and a quiet 1000-step run probed once, paying a compile at the other count; measured);
* when ``patience`` steps in a row take more than ``slow`` times that typical time (another process arrived), it
  probes: ``probe`` timed steps at each candidate count (all cores, half of them, one), and keeps the fastest,
  preferring more threads unless fewer are clearly faster; while below all cores it re-checks after
  ``reprobe_every`` steps (the other process may have left), doubling the interval each time a re-check keeps
  the lower count (up to 20x), since every re-check runs a few slow steps.

A compiled step is compiled once per thread count (inductor bakes the count into its C++ kernels, and Dynamo
guards on it), so the first step at a new count is a compile: it runs, but it is not timed. Nothing is probed
on a quiet machine, so a quiet run compiles once, as with a fixed count.

Probes are ordinary training steps (nothing is wasted); only the thread count differs between them. A
parallel reduction sums in an order that depends on the thread count, so a run whose count changed is equal to
a fixed-count run within fp32 rounding, not bitwise: pass an int for bitwise-repeatable CPU runs.
On CUDA the policy does nothing (the host threads only launch kernels).
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Callable

import torch

log = logging.getLogger("fastwgan")


def threads_arg(v: str) -> int | str:
    """The command line's ``--threads``: "auto" or a positive integer."""
    import argparse

    if v == "auto":
        return v
    if v.isdigit() and int(v) >= 1:
        return int(v)
    raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {v!r}")


def candidates(max_threads: int) -> list[int]:
    """Thread counts "auto" tries, most first: all, half (4 or more cores), one."""
    return sorted({max_threads, max(1, max_threads // 2), 1}, reverse=True)


class ThreadPolicy:
    """Runs steps at a fixed or a measured intra-op thread count.

    Args:
        threads: "auto", an int >= 1 (fixed), or None (leave torch's setting alone).
        device: the trainer's device; on anything but CPU the policy is inert.
        warmup: steps at the start (and at each new count) that are not timed (the first compiles).
        probe: timed steps per candidate in a probe.
        slow: a step this many times the typical time at the current count counts as slow.
        window: how many recent not-slow steps make the typical time (their median).
        patience: slow steps in a row that trigger a new probe.
        reprobe_every: steps between probes while running below the full count.
        margin: fewer threads are kept only if at least this much faster (ratio of median times).
        clock: the timer (tests pass a fake one).
    """

    def __init__(
        self,
        threads: int | str | None,
        device: torch.device,
        *,
        warmup: int = 2,
        probe: int = 2,
        slow: float = 1.5,
        patience: int = 3,
        reprobe_every: int = 50,
        margin: float = 0.9,
        window: int = 15,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if not (
            threads is None
            or threads == "auto"
            or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1)
        ):
            raise ValueError(f"threads must be 'auto', a positive int or None, got {threads!r}")
        self.mode = threads if device.type == "cpu" else None
        self.max_threads = torch.get_num_threads()
        self.warmup, self.probe, self.slow, self.patience = warmup, probe, slow, patience
        self.reprobe_every, self.margin, self.clock = reprobe_every, margin, clock
        self.current = self.max_threads if self.mode == "auto" else (self.mode or self.max_threads)
        self.window = window
        self.recent: dict[int, list[float]] = {}  # the last `window` not-slow step times at each count
        self.steps = 0
        self.since_probe = 0
        self.interval = reprobe_every  # steps until the next re-check while below all cores
        self.slow_run = 0
        self._plan: list[tuple[int, bool]] = []  # (count, timed) still to run in the probe under way
        self._seen: set[int] = set()  # counts a step has run at (each compiled once)
        self._times: dict[int, list[float]] = {}
        self.log: list[tuple[int, int, str]] = []  # (step, chosen count, why): what "auto" decided and when

    @property
    def settling(self) -> bool:
        """True while "auto" is warming up or probing (benchmarks warm up until it is done)."""
        return self.mode == "auto" and (self.steps < self.warmup or bool(self._plan))

    def run(self, step: Callable[[], object]):
        """Run one step at the policy's thread count, timing it for "auto"."""
        if self.mode is None:
            return step()
        threads = self._plan[0][0] if self._plan else self.current
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
        # the decisions' details go to the debug level (`fastwgan --debug`); a change of count is one info line
        log.debug(
            "threads: timing %s threads for a few steps (%s)", "/".join(map(str, candidates(self.max_threads))), why
        )
        self._why = why
        self._plan = []
        for t in candidates(self.max_threads):
            untimed = 0 if t in self._seen else 1  # a first step at a new count compiles
            self._plan += [(t, False)] * untimed + [(t, True)] * self.probe
        self._times = {}

    def _observe(self, threads: int, seconds: float) -> None:
        self.steps += 1
        first = threads not in self._seen
        self._seen.add(threads)
        if self._plan:
            _, timed = self._plan.pop(0)
            if timed:
                self._times.setdefault(threads, []).append(seconds)
            if not self._plan:
                self._finish_probe()
            return
        if self.steps <= self.warmup or first:
            return
        self.since_probe += 1
        recent = self.recent.setdefault(threads, [])
        typical = statistics.median(recent) if recent else seconds
        slow = seconds > self.slow * typical
        if not slow:
            recent.append(seconds)
            del recent[: -self.window]
        self.slow_run = self.slow_run + 1 if slow else 0
        if self.slow_run >= self.patience:
            self._start_probe(f"{self.patience} steps over {self.slow}x the typical time at {threads} threads")
        elif threads < self.max_threads and self.since_probe >= self.interval:
            self._start_probe(f"periodic re-check below {self.max_threads} threads")

    def _finish_probe(self) -> None:
        measured = {t: statistics.median(ts) for t, ts in self._times.items()}
        choice = self.max_threads
        for t in sorted(measured, reverse=True):  # fewer threads only when clearly faster
            if measured[t] < self.margin * measured[choice]:
                choice = t
        self.recent = {t: list(ts) for t, ts in self._times.items()}  # the conditions changed: start again
        recheck = self._why.startswith("periodic")
        self.interval = (
            min(2 * self.interval, 20 * self.reprobe_every)
            if recheck and choice == self.current
            else self.reprobe_every
        )
        changed, self.current = choice != self.current, choice
        self.since_probe = self.slow_run = 0
        self.log.append((self.steps, choice, self._why))
        times = ", ".join(f"{t} threads {1e3 * m:.1f} ms" for t, m in sorted(measured.items()))
        if changed:
            log.info(
                "threads: %d from step %d (another process competes for the cores; median step %s)",
                choice,
                self.steps,
                times,
            )
        else:
            log.debug("threads: keeping %d (median step %s)", choice, times)
