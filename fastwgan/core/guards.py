"""Run guards: stop cleanly on Ctrl-C / SIGTERM, and stop (or skip the step) when training diverges."""

from __future__ import annotations

import math
import signal
import threading
from contextlib import contextmanager

import torch

ON_NONFINITE = ("raise", "skip")


class DivergenceError(RuntimeError):
    """A loss, the penalty or a parameter became NaN or inf. ``step`` and ``quantity`` say where."""

    def __init__(self, step: int, quantity: str, value: float):
        self.step, self.quantity, self.value = step, quantity, value
        super().__init__(f"training diverged at step {step}: {quantity} is {value}")


def first_nonfinite(record: dict) -> tuple[str, float] | None:
    """The first metric of a history record that is NaN or inf, as (name, value)."""
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            return k, v
    return None


def nonfinite_parameter(modules: dict) -> str | None:
    """Name of the first parameter (``net.name``) holding a NaN or inf, or None. One sync per module."""
    for net, m in modules.items():
        params = [p for p in m.parameters()]
        if not params:
            continue
        finite = torch.stack([torch.isfinite(p).all() for p in params])
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            return f"{net}.{[n for n, _ in m.named_parameters()][bad]}"
    return None


class StopFlag:
    """Set by SIGINT / SIGTERM while ``catch_signals`` is active; the loop finishes the current step first."""

    def __init__(self):
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def agree(self, signum: int | None) -> bool:
        """Adopt the signal the processes agreed on (torchrun: any rank's); returns whether to stop."""
        if signum:
            self.signal = signum
        return bool(self)


@contextmanager
def catch_signals(enabled: bool = True):
    """Turn SIGINT and SIGTERM into a StopFlag for the duration (main thread only; elsewhere a no-op).

    A second Ctrl-C while stopping raises KeyboardInterrupt as usual.
    """
    flag = StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signal = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
