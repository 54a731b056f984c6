"""The one training engine: the outer loop every fastwgan trainer runs on.

A trainer (the GAN trainers, the translation and adaptation trainers, the f-AnoGAN encoder trainer, fast and
reference alike) subclasses ``Engine`` and supplies what is its own:

* ``_networks()``: the trained networks by name (NaN guard, state);
* ``_draw(source)``: one step's random numbers from the run's seeded stream ``self._gen`` (batch rows, noise, eps),
  already sliced to this rank's share under torchrun;
* ``_step(source, draw)``: one training step (all its updates), returning 0-d metric tensors, not synced;
* ``_preview(writer, source)``: the run folder's pictures of the current step (optional);
* ``state_dict`` / ``load_state_dict`` in its checkpoint format, built from ``engine_state`` /
  ``load_engine_state``.

The engine owns the rest, once for all: the run's target (``steps`` / ``add_steps``), the run folder (config.json,
stats.jsonl, samples, plots, atomic checkpoints; ``fastwgan.core.run.RunWriter``), log ticks with their speed, the
progress bar, evaluators and callbacks, the NaN guard (``on_nonfinite="raise"``) or skip (``"skip"``: a bad step
is undone and its random numbers skipped), SIGINT / SIGTERM (finish the step, checkpoint, return), torchrun (every
rank draws the same stream and trains on its slice; metrics are averaged over ranks, rank 0 writes, the ranks vote
on a signal at log ticks) and the CPU thread policy (``fastwgan.core.threads``). The options of a ``fit`` are one
object,
``FitOptions``.
"""

from __future__ import annotations

import math
import time
import warnings

import torch
from torch import nn

from . import guards, rng
from .fitting import FitOptions, clone_tree, config_difference, records_since, resolve_device, target_steps
from .run import Progress, RunWriter
from .threads import ThreadPolicy

__all__ = ["Engine", "FitOptions", "resolve_device"]


class Engine:
    """The outer training loop and the run's bookkeeping (module docstring). Public: ``step``, ``history``,
    ``stopped_by``, ``skipped_steps``, ``world_size``, ``rank``, ``threads``."""

    name = "base"  # "fast" | "reference": which twin (config.json, checkpoints)
    kind: str | None = None  # what a checkpoint holds: None (a GAN), "translation", "adaptation", ...
    metrics: tuple[str, ...] = ()  # the per-step metric names, in history order
    plot_panels = None  # plots/losses.png panels (fastwgan.core.plots); None: the GAN's
    single_process = False  # True: refuses torchrun (the eager oracles)

    def __init__(self, config, device: torch.device, *, seed: int, batch_size: int, threads=None):
        self.config = config
        self.device = device
        self.threads = ThreadPolicy(threads, device)
        self.step = 0
        self._records: list[dict] = []  # materialised history
        self._pending: list[tuple[int, dict]] = []  # (step, metrics as device tensors), read at log ticks
        self._gen = rng.make_generator(seed)  # the run's seeded stream: every step's random numbers
        self.data_position = None  # a loader run: where its loader(s) resume (fastwgan.data.sources)
        self.stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when fit returned early on a signal
        self.skipped_steps: list[int] = []  # steps undone by on_nonfinite="skip"
        # torchrun / torch.distributed: every rank draws the same global stream and trains on its slice of each
        # batch; gradients (and logged metrics) are averaged, rank 0 writes the run folder.
        dist = torch.distributed
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world_size > 1 else 0
        if self.world_size > 1 and self.single_process:
            raise ValueError(f"{type(self).__name__} is the single-process oracle; use its fast twin under torchrun")
        if batch_size % self.world_size:
            raise ValueError(
                f"TrainConfig.batch_size: {batch_size} is not divisible by the world size {self.world_size} (the "
                "batch is the global batch, split across ranks)"
            )

    # ------------------------------------------------------------------ what a trainer supplies
    def _networks(self) -> dict[str, nn.Module]:
        """The trained networks by name (the NaN guard reads their parameters)."""
        raise NotImplementedError

    def _draw(self, source):
        """One step's random numbers from ``self._gen`` (this rank's share under torchrun)."""
        raise NotImplementedError

    def _step(self, source, draw) -> dict[str, torch.Tensor]:
        """One training step on the batches ``source`` gives for ``draw``; returns 0-d metric tensors."""
        raise NotImplementedError

    def _preview(self, writer: RunWriter, source) -> None:
        """Write the run folder's pictures of the current step."""

    def _run_meta(self, steps: int) -> tuple[dict, dict | None]:
        """(config.json entries, defaults for entries neither they nor the caller's run_config set)."""
        meta = {"trainer": self.name, "config": self.config.to_dict(), "steps": steps}
        return ({"kind": self.kind, **meta} if self.kind else meta), None

    def _planned_steps(self, n: int) -> None:
        """Called with the number of steps a fit is about to run (a trainer may plan its compile)."""

    def _postfix(self, record: dict) -> dict:
        """What the progress bar shows after a log tick."""
        return {k: f"{record[k]:.3g}" for k in self.metrics[:3] if record.get(k) is not None}

    images_per_step: int | None = None  # samples one step trains on (for images_per_s); None: not reported

    # ------------------------------------------------------------------ history
    @property
    def history(self) -> list[dict]:
        """One dict per step: ``step`` and the trainer's ``metrics`` (None where a step does not report one)."""
        self._flush()
        return self._records

    def _flush(self) -> None:
        """Read the pending metric tensors into history records (one sync; under torchrun, one all-reduce)."""
        if not self._pending:
            return
        keys = [k for k in self.metrics if k in self._pending[0][1]]
        vals = torch.stack([torch.stack([m[k].float() for k in keys]) for _, m in self._pending])
        if self.world_size > 1:  # each rank saw a slice of the batch: the global value is the mean over ranks
            torch.distributed.all_reduce(vals)
            vals = vals / self.world_size
        for (step, _), row in zip(self._pending, vals.cpu().tolist()):
            rec = {"step": step, **{k: None for k in self.metrics}}
            rec.update(zip(keys, row))
            self._records.append(rec)
        self._pending.clear()

    def _tick_record(self, since_step: int, seconds: float, timed_from: int | None = None) -> dict:
        """Means of the metrics over the steps after ``since_step``; speed over the steps after ``timed_from``
        (the ``seconds`` since then; NaN when no step was timed)."""
        recs = records_since(self._records, since_step)
        out = {"step": self.step}
        for k in self.metrics:
            vals = [r[k] for r in recs if r.get(k) is not None]
            out[k] = sum(vals) / len(vals) if vals else None
        steps = len(records_since(self._records, since_step if timed_from is None else timed_from))
        out["steps_per_s"] = steps / seconds if seconds > 0 and steps else math.nan
        if self.images_per_step is not None:
            out["images_per_s"] = out["steps_per_s"] * self.images_per_step
        if self.threads.mode is not None:
            out["threads"] = self.threads.current  # the CPU thread count now (fastwgan.core.threads)
        return out

    def _check_finite(self, since: int) -> None:
        for rec in records_since(self._records, since):
            bad = guards.first_nonfinite(rec)
            if bad:
                raise guards.DivergenceError(rec["step"], *bad)
        name = guards.nonfinite_parameter(self._networks())
        if name:
            raise guards.DivergenceError(self.step, f"parameter {name}", math.nan)

    def _any_rank_signal(self, signum: int | None) -> int | None:
        """The largest signal number any rank has received (None: none has): one small all-reduce."""
        v = torch.tensor([signum or 0], device=self.device)
        torch.distributed.all_reduce(v, op=torch.distributed.ReduceOp.MAX)
        return int(v.item()) or None

    def all_reduce_mean(self, g: torch.Tensor) -> torch.Tensor:
        """Multi-process: the mean of a flat gradient over ranks, one all-reduce per update (a functional
        collective, so it traces into a compiled step). Each rank's loss is a mean over its B / W samples, so the
        mean over ranks is the single-process gradient of the global batch."""
        if self.world_size == 1:
            return g
        import torch.distributed._functional_collectives as funcol

        return funcol.all_reduce(g, "sum", torch.distributed.group.WORLD) / self.world_size

    def shard(self, t: torch.Tensor | None, dim: int = -1) -> torch.Tensor | None:
        """This rank's contiguous block of a global batch along ``dim`` (the whole tensor for one process)."""
        if t is None or self.world_size == 1:
            return t
        b = t.shape[dim] // self.world_size
        return t.narrow(dim, self.rank * b, b)

    # ------------------------------------------------------------------ state
    def engine_state(self, with_history: bool = True) -> dict:
        """The entries every checkpoint holds: format, trainer, config, step, the stream, the loader position and
        (``with_history``) the history."""
        state = {"format": 1, "trainer": self.name, "config": self.config.to_dict(), "step": self.step}
        if self.kind:
            state["kind"] = self.kind
        state["rng"] = self._gen.get_state()
        if self.data_position is not None:  # a loader run: where the loader(s) resume (fastwgan.data.sources)
            state["data_position"] = clone_tree(list(self.data_position))
        if with_history:
            state["history"] = self.history
        return state

    def check_state_config(self, state: dict, ignore: tuple[str, ...] = ("device",)) -> None:
        """Refuse a checkpoint trained with another config (one line naming the differing settings)."""
        if "config" not in state:
            return
        diff = config_difference(state["config"], self.config.to_dict(), ignore)
        if diff:
            mine = self.config.to_dict()
            pairs = ", ".join(f"{k}: checkpoint {state['config'][k]!r} vs {mine.get(k)!r}" for k in diff)
            raise ValueError(f"load_state_dict: the checkpoint was trained with another config ({pairs})")

    def load_engine_state(self, state: dict) -> None:
        """Restore what ``engine_state`` wrote (the caller checked the config and loaded the networks)."""
        self._gen.set_state(state["rng"])
        self.step = int(state["step"])
        pos = state.get("data_position")
        self.data_position = None if pos is None else _as_position(pos)
        self._pending.clear()
        self._records = [dict(r) for r in state.get("history", [])]

    def _optimizer_state(self) -> dict:
        """The optimizers' state by group (``self.groups``: a ``FlatGroups`` or ``TorchGroups``)."""
        return self.groups.state_dict()

    def _load_optimizer_state(self, state: dict) -> None:
        self.groups.load_state_dict(state)

    def state_dict(self, with_history: bool = True) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def _snapshot(self) -> dict:
        """Everything a step changes, cloned (for on_nonfinite="skip")."""
        return clone_tree(self.state_dict(with_history=False))

    def _restore(self, snapshot: dict) -> None:
        """Undo a step: the snapshot's state, but the stream stays advanced (the next try draws new numbers)."""
        gen_state = self._gen.get_state()
        self.load_state_dict({**snapshot, "history": self._records})
        self._gen.set_state(gen_state)

    # ------------------------------------------------------------------ the loop
    def run(self, source, steps: int | None, add_steps: int | None, options: FitOptions) -> Engine:
        """Train on ``source`` (a batch source: ``first``, ``prefetch``, ``position``, ``close``) to the run's
        total ``steps`` or ``add_steps`` more; closes the source. The body of every trainer's ``fit``."""
        try:
            steps = target_steps(self.step, steps, add_steps)
            if steps <= self.step:
                warnings.warn(
                    f"fit: nothing to do: the trainer is already at step {self.step} and steps={steps} is the "
                    "run's total; fit(..., add_steps=N) trains N more",
                    stacklevel=3,
                )
                return self
            return self._loop(source, steps, options)
        finally:
            source.close()

    def _loop(self, source, steps: int, opts: FitOptions) -> Engine:
        self._planned_steps(steps - self.step)
        writer = None
        if opts.out is not None and self.rank == 0:
            meta, defaults = self._run_meta(steps)
            writer = RunWriter(
                opts.out,
                {**meta, **(opts.run_config or {})},
                step=self.step,
                overwrite=opts.overwrite,
                defaults=defaults,
            )
        out = opts.out
        log_every = opts.log_every
        sample_every = opts.sample_every or max(1, steps // 10)
        checkpoint_every = opts.checkpoint_every
        self.stopped_by = None
        desc = f"{self.kind or self.name} {self.name if self.kind else getattr(self.config, 'loss', '')}".strip()
        bar = Progress(steps, self.step, desc, opts.progress, rank=self.rank)
        t_tick, step_tick = time.perf_counter(), self.step
        timed_from = None  # the tick's first timed step: the first step of a fit (compile) is not timed
        first_step_s = None
        skip = opts.on_nonfinite == "skip"
        halt = False  # stop after this step (a signal; under torchrun, once the ranks agreed on it)
        with guards.catch_signals(opts.handle_signals) as stop:
            try:
                while self.step < steps and not halt:
                    snapshot = self._snapshot() if skip else None
                    draw = self._draw(source)
                    metrics = self._step(source, draw)
                    source.prefetch()  # the next step's batches load while this one computes
                    if source.position is not None:
                        self.data_position = source.position
                    self._pending.append((self.step + 1, metrics))
                    if skip:
                        self._flush()
                        if guards.first_nonfinite(self._records[-1]) is not None:
                            self._records.pop()
                            self._restore(snapshot)  # the stream stays advanced: new random numbers next time
                            self.skipped_steps.append(self.step + 1)
                            continue
                    self.step += 1
                    bar.update(1)
                    if first_step_s is None:  # its time (compile included) goes in the first record, apart
                        self._flush()
                        now = time.perf_counter()
                        first_step_s, t_tick, timed_from = now - t_tick, now, self.step
                    # Under torchrun every rank must reach every collective (the metrics' all-reduce in _flush, the
                    # stop vote) at the same step, so these decisions depend on the step alone, never on the rank:
                    # rank 0's extra flushes at its checkpoints and previews once made it all-reduce metrics while
                    # the others all-reduced gradients (gloo: "op.preamble.length <= op.nbytes").
                    tick = self.step % log_every == 0
                    if self.world_size == 1:
                        halt = bool(stop)
                    elif tick:  # a signal reaches the ranks at different steps: they vote at log ticks
                        halt = stop.agree(self._any_rank_signal(stop.signal))
                    last = self.step == steps or halt
                    ckpt = out is not None and ((checkpoint_every and self.step % checkpoint_every == 0) or last)
                    preview = out is not None and (self.step % sample_every == 0 or last)
                    if tick or last or ckpt or preview:
                        self._flush()
                        self._check_finite(since=step_tick)
                    if tick or last:
                        now = time.perf_counter()
                        record = self._tick_record(step_tick, now - t_tick, timed_from)
                        if first_step_s is not None and step_tick < timed_from:
                            record["first_step_s"] = first_step_s  # compile + one step: not in steps_per_s
                        t_tick, step_tick, timed_from = now, self.step, self.step
                        bar.set_postfix(self._postfix(record))
                        if opts.evaluators:
                            for ev in opts.evaluators:
                                record.update(ev(self))
                            t_tick = time.perf_counter()  # evaluating is not training
                        if writer:
                            writer.log(record)
                        for cb in opts.callbacks:
                            cb(self, record)
                    if writer and preview:
                        self._preview(writer, source)
                        if self.plot_panels is None:
                            writer.plots(self.history)
                        else:
                            writer.plots(self.history, self.plot_panels)
                        t_tick = time.perf_counter()  # writing is not training: not in steps_per_s
                    if writer and ckpt:
                        writer.checkpoint(self.state_dict(), self.step, keep=opts.keep_checkpoints)
                        t_tick = time.perf_counter()
            finally:
                bar.close()
                if writer is not None:
                    writer.close()
        if halt:
            self.stopped_by = stop.name
        return self


def _as_position(pos):
    """A checkpoint's loader position: (epoch, batches) for one loader, or a list of them (one per domain)."""
    if pos and isinstance(pos[0], (list, tuple)):
        return [tuple(int(v) for v in p) for p in pos]
    return tuple(int(v) for v in pos)
