"""What the two-domain trainers share (``fastwgan.translate``, ``fastwgan.adapt``): the checks of a source and a
target set, the seeded stream, the outer loop with its run folder, log ticks, NaN guard, signals, sample pictures
and atomic checkpoints, and the state that resumes a run exactly. A subclass supplies its draw, its step, its
networks and its optimizer state, as the GAN trainers do over ``fastwgan.loop``.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from . import guards, rng
from .config import TrainConfig
from .images import DataError
from .loop import records_since, resolve_device
from .run import Progress, RunWriter
from .threads import ThreadPolicy


def check_domain(x, what: str, *, channels: int | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A domain's images as a uint8 (N, C, H, W) tensor, N >= 1, or a one-line error naming ``what``.

    Args:
        x: a tensor or array of uint8 images (floats in [-1, 1] are taken too, finite only).
        channels: the channel count the networks expect (None: any).
        size: the (H, W) the networks expect (None: any).
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a tensor or array of images, got {type(x).__name__}")
    if x.dim() != 4:
        raise DataError(f"{what}: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: the domain is empty (0 images)")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise DataError(f"{what}: expected uint8 images or floats in [-1, 1], got dtype {x.dtype}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise DataError(f"{what}: contains NaN or inf values")
    if channels is not None and x.shape[1] != channels:
        raise DataError(f"{what}: images have {x.shape[1]} channels but the networks take {channels}")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise DataError(f"{what}: images are {x.shape[2]}x{x.shape[3]} but the networks take {size[0]}x{size[1]}")
    return x


def functional(module: nn.Module, params: dict, prefix: str | None = None):
    """``module`` as a function of x with the parameters ``params`` ({name: tensor}, views of a flat buffer; with
    ``prefix``, the entries of a ModuleDict's dict under ``prefix.``, the prefix removed) and its own buffers,
    passed explicitly (torch.func refuses in-place updates of tensors a transformed function merely captures)."""
    if prefix is not None:
        n = len(prefix) + 1
        params = {k[n:]: v for k, v in params.items() if k.startswith(prefix + ".")}
    bufs = dict(module.named_buffers())
    return lambda x: functional_call(module, {**params, **bufs}, (x,))


def kept(out, copy: bool):
    """A compiled update's outputs, cloned when ``copy`` (CUDA graphs reuse their output memory on the next
    replay, ``compile_mode="reduce-overhead"``)."""
    if not copy:
        return out
    if isinstance(out, dict):
        return {k: v.clone() for k, v in out.items()}
    return type(out)(v.clone() for v in out)


class DomainTrainerBase:
    """Shared machinery of the two-domain trainers. Public: fit's loop (subclasses' ``fit``), history, step,
    state_dict, load_state_dict."""

    name = "base"
    kind = "base"  # "translation" | "adaptation": what a checkpoint holds
    plot_panels: tuple = ()  # plots/losses.png: (title, ((history key, label), ...)) per panel (fastwgan.plots)
    metrics: tuple[str, ...] = ()  # the per-step metric names, in stats.jsonl order

    def __init__(self, config: TrainConfig):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a fastwgan.TrainConfig, got {type(config).__name__}")
        if config.conditional or config.augment:
            raise ValueError(
                "config: num_classes and augment are GAN-trainer settings; a two-domain trainer takes neither"
            )
        if config.dtype != "float32":
            raise ValueError(f"TrainConfig.dtype: the two-domain trainers train in float32, got {config.dtype!r}")
        self.config = config
        self.device = resolve_device(config.device)
        self._gen = rng.make_generator(config.seed)
        self.step = 0
        self._records: list[dict] = []
        self._pending: list[tuple[int, dict]] = []
        self.stopped_by: str | None = None
        self.threads = ThreadPolicy(None, self.device)  # the fast trainers take threads="auto" | N

    # ------------------------------------------------------------------ subclass hooks
    def _networks(self) -> dict[str, nn.Module]:
        """The trained networks by name (state, NaN guard)."""
        raise NotImplementedError

    def _draw(self, sizes: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """One step's random numbers (CPU), from ``self._gen`` in the subclass's documented order."""
        raise NotImplementedError

    def _train_step(self, domains: tuple, draw: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _preview(self, writer: RunWriter, step: int, domains: tuple) -> None:
        """Write the run folder's pictures of ``step``."""

    def _optimizer_state(self) -> dict:
        raise NotImplementedError

    def _load_optimizer_state(self, state: dict) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ history
    @property
    def history(self) -> list[dict]:
        """One dict per step: the step and ``metrics`` (critic values are means over the step's critic updates)."""
        self._flush()
        return self._records

    def _flush(self) -> None:
        if not self._pending:
            return
        vals = torch.stack([torch.stack([m[k].float() for k in self.metrics]) for _, m in self._pending]).cpu()
        for (step, _), row in zip(self._pending, vals.tolist()):
            self._records.append({"step": step, **dict(zip(self.metrics, row))})
        self._pending.clear()

    # ------------------------------------------------------------------ training
    def _fit(
        self,
        domains: tuple,
        steps: int | None,
        add_steps: int | None,
        *,
        out=None,
        overwrite: bool = False,
        log_every: int = 10,
        sample_every: int | None = None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 3,
        progress: bool | None = None,
        run_config: dict | None = None,
        handle_signals: bool = True,
        evaluators=(),
    ):
        """The loop of every two-domain ``fit`` (the subclass checked ``domains``: device tensors). ``evaluators``:
        callables ``f(trainer) -> dict`` whose values join each log tick's record (stats.jsonl, the plots)."""
        if (steps is None) == (add_steps is None):
            raise ValueError("fit: give exactly one of steps (the run's total) and add_steps (more from now)")
        if add_steps is not None:
            if isinstance(add_steps, bool) or not isinstance(add_steps, int) or add_steps < 0:
                raise ValueError(f"add_steps must be a non-negative integer, got {add_steps!r}")
            steps = self.step + add_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        if steps <= self.step:
            warnings.warn(
                f"fit: nothing to do: the trainer is already at step {self.step} and steps={steps} is the "
                "run's total; fit(..., add_steps=N) trains N more",
                stacklevel=3,
            )
            return self
        writer = None
        if out is not None:
            writer = RunWriter(
                out,
                {
                    "kind": self.kind,
                    "trainer": self.name,
                    "config": self.config.to_dict(),
                    "steps": steps,
                    **(run_config or {}),
                },
                step=self.step,
                overwrite=overwrite,
            )
        sample_every = sample_every or max(1, steps // 10)
        sizes = tuple(len(d) for d in domains)
        bar = Progress(steps, self.step, f"{self.kind} {self.name}", progress)
        t_tick, tick_from, timed_from = time.perf_counter(), self.step, None
        self.stopped_by = None
        with guards.catch_signals(handle_signals) as stop:
            try:
                while self.step < steps and not stop:
                    draw = self._draw(sizes)
                    metrics = self.threads.run(lambda: self._train_step(domains, draw))
                    self._pending.append((self.step + 1, metrics))
                    self.step += 1
                    bar.update(1)
                    if timed_from is None:  # the first step (compiles) is not timed
                        self._flush()
                        t_tick, timed_from = time.perf_counter(), self.step
                    last = self.step == steps or bool(stop)
                    ckpt = writer is not None and ((checkpoint_every and self.step % checkpoint_every == 0) or last)
                    tick = self.step % log_every == 0 or last
                    if tick or ckpt:
                        self._check_finite(tick_from)
                    if tick:
                        now = time.perf_counter()
                        record = self._tick_record(tick_from, timed_from, now - t_tick)
                        t_tick, tick_from, timed_from = now, self.step, self.step
                        bar.set_postfix({k: f"{record[k]:.3g}" for k in self.metrics[:3]})
                        for ev in evaluators:
                            record.update(ev(self))
                        if evaluators:
                            t_tick = time.perf_counter()  # evaluating is not training
                        if writer:
                            writer.log(record)
                    if writer and (self.step % sample_every == 0 or last):
                        self._preview(writer, self.step, domains)
                        writer.plots(self.history, self.plot_panels)
                        t_tick = time.perf_counter()
                    if ckpt:
                        writer.checkpoint(self.state_dict(), self.step, keep=keep_checkpoints)
                        t_tick = time.perf_counter()
            finally:
                bar.close()
                if writer is not None:
                    writer.close()
        if stop:
            self.stopped_by = stop.name
        return self

    def _records_since(self, step: int) -> list[dict]:
        return records_since(self._records, step)

    def _check_finite(self, since: int) -> None:
        self._flush()
        for rec in self._records_since(since):
            bad = guards.first_nonfinite(rec)
            if bad:
                raise guards.DivergenceError(rec["step"], *bad)
        name = guards.nonfinite_parameter(self._networks())
        if name:
            raise guards.DivergenceError(self.step, f"parameter {name}", math.nan)

    def _tick_record(self, since: int, timed_from: int, seconds: float) -> dict:
        recs = self._records_since(since)
        out = {"step": self.step, **{k: sum(r[k] for r in recs) / len(recs) for k in self.metrics}}
        timed = len(self._records_since(timed_from))
        out["steps_per_s"] = timed / seconds if seconds > 0 and timed else math.nan
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: the networks, optimizer states, step, the stream, history."""
        return {
            "format": 1,
            "kind": self.kind,
            "trainer": self.name,
            "config": self.config.to_dict(),
            "step": self.step,
            "networks": {k: dict(m.state_dict()) for k, m in self._networks().items()},
            "optimizers": self._optimizer_state(),
            "rng": self._gen.get_state(),
            "history": self.history,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` of either twin; refuses another kind of checkpoint or another config."""
        if state.get("kind") != self.kind:
            raise ValueError(f"load_state_dict: not a {self.kind} checkpoint (kind {state.get('kind')!r})")
        mine = self.config.to_dict()
        diff = sorted(k for k, v in state["config"].items() if k != "device" and mine.get(k) != v)
        if diff:
            raise ValueError(f"load_state_dict: the checkpoint was trained with another config ({', '.join(diff)})")
        nets = self._networks()
        if set(state["networks"]) != set(nets):
            raise ValueError(
                f"load_state_dict: the checkpoint holds networks {sorted(state['networks'])}, this "
                f"trainer {sorted(nets)}"
            )
        try:
            for k, m in nets.items():
                m.load_state_dict(state["networks"][k])
        except RuntimeError as e:
            raise ValueError(f"load_state_dict: the checkpoint does not match these networks: {e}") from None
        self._load_optimizer_state(state["optimizers"])
        self._gen.set_state(state["rng"])
        self.step = int(state["step"])
        self._pending.clear()
        self._records = [dict(r) for r in state.get("history", [])]
