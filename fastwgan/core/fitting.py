"""What a ``fit`` is asked, checked once for every trainer: ``FitOptions`` (how the run goes and what it writes),
the run's target (``target_steps``), and the small helpers the engine's bookkeeping uses (``fastwgan.core.engine``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Callable

import torch

from . import guards


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device`` as a torch device ("auto": CUDA when available); CUDA asked for but absent: an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device: {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


@dataclass(frozen=True)
class FitOptions:
    """How a ``fit`` runs and what it writes (every trainer's ``fit`` takes these as keywords, or ``options=``).

    Attributes:
        out: a run folder to write (config.json, stats.jsonl, samples, plots, checkpoints); None writes nothing.
            A run folder belongs to one run (``fastwgan.core.run.check_out``): a new trainer (step 0) needs an absent or
            empty folder, a continued one its own run's folder.
        overwrite: a new run may replace the run in ``out``: the old one is moved aside and deleted once this run
            writes its first checkpoint (moved back if it ends before; ``fastwgan.core.run.RunWriter``).
        log_every: steps between log ticks (stats.jsonl line, progress postfix, evaluators, callbacks, NaN check).
        sample_every: steps between the run folder's pictures (default: steps // 10).
        checkpoint_every: steps between checkpoints (default: only at the end).
        keep_checkpoints: how many checkpoints to keep.
        progress: a tqdm bar on a terminal, else a plain line every 30 s (None, the default); True: the bar;
            False: nothing (``fastwgan.core.run.Progress``).
        run_config: extra JSON written to config.json (the CLI records the model and data spec there).
        callbacks: called as ``cb(trainer, record)`` at every log tick.
        evaluators: called as ``ev(trainer) -> dict`` at every log tick BEFORE the record is written; the dicts are
            merged into the record (stats.jsonl, the plots). Their time is not counted in steps_per_s.
        on_nonfinite: "raise": a NaN/inf metric or parameter stops the run with a DivergenceError naming the step
            and the quantity (checked at log ticks and before every checkpoint, so the last checkpoint written is
            always finite); "skip": checked after every step (one sync per step), a bad step is undone and its
            random numbers skipped.
        handle_signals: SIGINT / SIGTERM finish the current step, write a checkpoint (when ``out`` is set) and
            return with ``trainer.stopped_by`` set to the signal's name.
    """

    out: str | os.PathLike | None = None
    overwrite: bool = False
    log_every: int = 10
    sample_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    progress: bool | None = None
    run_config: dict | None = None
    callbacks: tuple[Callable, ...] = ()
    evaluators: tuple[Callable, ...] = ()
    on_nonfinite: str = "raise"
    handle_signals: bool = True

    def __post_init__(self):
        for name in ("log_every", "sample_every", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be >= 1, got {v!r}")
        if isinstance(self.keep_checkpoints, bool) or not isinstance(self.keep_checkpoints, int):
            raise ValueError(f"keep_checkpoints must be an integer, got {self.keep_checkpoints!r}")
        if self.on_nonfinite not in guards.ON_NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {guards.ON_NONFINITE}, got {self.on_nonfinite!r}")
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        object.__setattr__(self, "evaluators", tuple(self.evaluators))

    @classmethod
    def of(cls, options: FitOptions | None = None, **kw) -> FitOptions:
        """``options`` with the keywords ``kw`` applied (an unknown keyword is a TypeError naming it)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise TypeError(f"fit() got unexpected keyword argument(s) {unknown}; fit options: {sorted(known)}")
        base = {f.name: getattr(options, f.name) for f in fields(cls)} if options is not None else {}
        return cls(**{**base, **kw})


def target_steps(current: int, steps: int | None, add_steps: int | None) -> int:
    """The run's total steps from ``steps`` (the total) or ``add_steps`` (more than ``current``): exactly one."""
    if (steps is None) == (add_steps is None):
        raise ValueError("fit: give exactly one of steps (the run's total) and add_steps (more from now)")
    if add_steps is not None:
        if isinstance(add_steps, bool) or not isinstance(add_steps, int) or add_steps < 0:
            raise ValueError(f"add_steps must be a non-negative integer, got {add_steps!r}")
        steps = current + add_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return steps


def config_difference(saved: dict, mine: dict, ignore: tuple[str, ...] = ("device",)) -> list[str]:
    """The config keys on which a checkpoint's config ``saved`` and a trainer's ``mine`` differ (``ignore`` aside)."""
    return sorted(k for k, v in saved.items() if k not in ignore and mine.get(k) != v)


def records_since(records: list[dict], step: int) -> list[dict]:
    """The history records after ``step``: the tail of the list (records are appended in step order), found from
    the end so a log tick costs O(log_every), not O(steps so far)."""
    i = len(records)
    while i > 0 and records[i - 1]["step"] > step:
        i -= 1
    return records[i:]


def clone_tree(obj):
    """A deep copy of nested dicts / lists / tuples whose tensors are cloned (a state to undo a step with)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_tree(v) for v in obj)
    return obj
