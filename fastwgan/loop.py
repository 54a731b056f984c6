"""What every fastwgan trainer shares: the outer schedule, the random stream, history, logging, samples,
checkpoints and the progress bar. A trainer subclass supplies only ``_train_step`` (n_critic critic updates and
one generator update) and its optimizer state; so the reference and the fast trainer differ in nothing else.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import guards, rng
from .conditioning import split_critic_output
from .config import TrainConfig
from .images import as_float
from .models import has_batch_norm
from .run import Progress, RunWriter
from .sources import LoaderSource, RealBatches, TensorSource
from .threads import ThreadPolicy

METRICS = ("critic_loss", "w_estimate", "gp", "grad_norm", "generator_loss", "ac_loss")  # ac_loss: conditional runs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device: {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


class TrainerBase:
    """Shared trainer machinery. Public interface: fit, sample, critic_score, state_dict, load_state_dict,
    history, step."""

    name = "base"

    def __init__(self, generator: nn.Module, critic: nn.Module, config: TrainConfig, threads: int | str | None = None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a fastwgan.TrainConfig, got {type(config).__name__}")
        for label, m in (("generator", generator), ("critic", critic)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{label} must be a torch.nn.Module, got {type(m).__name__}")
        if config.uses_penalty and has_batch_norm(critic):
            # Batch norm mixes samples, so grad_x D(x_hat) is no longer a per-sample gradient (Gulrajani et al.
            # 2017, section 4): use critic_norm="layer" or "none".
            raise ValueError(
                f"critic: batch norm is not allowed with the {config.loss!r} loss (it breaks the "
                "per-sample gradient penalty); build the critic with critic_norm='layer' or 'none'"
            )
        self.config = config
        self.device = resolve_device(config.device)
        self.generator = generator.to(self.device)
        self.critic = critic.to(self.device)
        self.threads = ThreadPolicy(threads, self.device)
        self.step = 0
        self._records: list[dict] = []  # materialised history
        self._pending: list[tuple[int, dict]] = []  # (step, metrics as device tensors), read at log ticks
        self._gen = rng.make_generator(config.seed)
        self._model_rng = rng.ModelRNG(config.seed + rng.MODEL_SEED_OFFSET, self.device)  # dropout and the like
        self.data_position: tuple[int, int] | None = None  # a loader run: (epoch, batches drawn in it) so far
        self.stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when fit returned early on a signal
        self.skipped_steps: list[int] = []  # steps undone by on_nonfinite="skip"
        # torchrun / torch.distributed: every rank draws the same global stream and trains on its slice of each
        # batch; gradients (and logged metrics) are averaged, rank 0 writes the run folder.
        dist = torch.distributed
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world_size > 1 else 0
        if config.batch_size % self.world_size:
            raise ValueError(
                f"TrainConfig.batch_size: {config.batch_size} is not divisible by the world size "
                f"{self.world_size} (the batch is the global batch, split across ranks)"
            )

    def _step(self, source, noise: rng.StepNoise) -> dict[str, torch.Tensor]:
        """One generator iteration on the real batches ``source`` (``batch_source``) hands this step, at the
        thread count of the trainer's policy (``fastwgan.threads``), with the run's own model RNG
        (``rng.ModelRNG``) in place of torch's global one."""
        batches = source.next(noise)
        with self._model_rng:
            return self.threads.run(lambda: self._train_step(batches, noise))

    # ------------------------------------------------------------------ subclass hooks
    def _planned_steps(self, n: int) -> None:
        """Called by ``fit`` with the number of steps it is about to run (a trainer may plan its compile)."""

    def _train_step(self, batches: RealBatches, noise: rng.StepNoise) -> dict[str, torch.Tensor]:
        """n_critic critic updates then one generator update. Returns 0-d metric tensors (not synced)."""
        raise NotImplementedError

    def _optimizer_state(self) -> dict:
        raise NotImplementedError

    def _load_optimizer_state(self, state: dict) -> None:
        raise NotImplementedError

    def _tensor_source(self, data: torch.Tensor, labels: torch.Tensor | None) -> TensorSource:
        """The source of an in-memory dataset (the reference keeps it on the CPU; the fast trainer on the device,
        or streamed from the host when it is too large)."""
        return TensorSource(data, labels)

    # ------------------------------------------------------------------ history
    @property
    def history(self) -> list[dict]:
        """One dict per generator step: step, critic_loss, w_estimate, gp, grad_norm, generator_loss, ac_loss
        (critic values are means over the step's n_critic critic updates; gp/grad_norm are None for "clip";
        ac_loss, the critic's auxiliary-classifier cross-entropy on real samples, None without a classifier head)."""
        self._flush()
        return self._records

    def _flush(self) -> None:
        if not self._pending:
            return
        keys = [k for k in METRICS if k in self._pending[0][1]]
        vals = torch.stack([torch.stack([m[k].float() for k in keys]) for _, m in self._pending])
        if self.world_size > 1:  # each rank saw a slice of the batch: the global value is the mean over ranks
            torch.distributed.all_reduce(vals)
            vals = vals / self.world_size
        vals = vals.cpu().tolist()
        for (step, _), row in zip(self._pending, vals):
            rec = {"step": step, **{k: None for k in self._metric_names()}}
            rec.update(dict(zip(keys, row)))
            self._records.append(rec)
        self._pending.clear()

    def _any_rank_signal(self, signum: int | None) -> int | None:
        """The largest signal number any rank has received (None: none has): one small all-reduce."""
        v = torch.tensor([signum or 0], device=self.device)
        torch.distributed.all_reduce(v, op=torch.distributed.ReduceOp.MAX)
        return int(v.item()) or None

    def _metric_names(self) -> tuple[str, ...]:
        return METRICS if self.config.conditional else METRICS[:-1]

    # ------------------------------------------------------------------ data
    def check_data(self, data, labels=None) -> torch.Tensor:
        """Check a training set against this trainer's models before anything runs, with the shapes named:
        the data's type and values, the latent size against the generator's input, the generator's output against
        the data's sample shape, and the critic's output (one score per sample: (B,) or (B, 1)).

        A class-conditional trainer (``TrainConfig.num_classes``) needs ``labels`` (N,) of ints in [0, K) and
        calls its models as ``G(z, y)`` and ``D(x, y)``; a critic with a classifier head returns
        ``(score, logits)`` with logits (B, K).

        Returns:
            the data as a tensor. Raises ValueError / TypeError with one line naming the problem.
        """
        if isinstance(data, np.ndarray):
            data = torch.from_numpy(data)
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"data must be a tensor or numpy array, got {type(data).__name__}")
        if data.dim() < 2 or data.shape[0] == 0:
            raise ValueError(f"data: expected (N, ...) with N >= 1 samples, got shape {tuple(data.shape)}")
        if data.dtype != torch.uint8 and not data.is_floating_point():
            raise ValueError(f"data: expected uint8 images or a float tensor, got dtype {data.dtype}")
        if data.is_floating_point() and not torch.isfinite(data).all():
            raise ValueError("data: contains NaN or inf values")
        if self.config.augment and data.dim() != 4:
            raise ValueError(
                f"data: TrainConfig.augment={self.config.augment!r} transforms images (N, C, H, W); got "
                f"samples of shape {tuple(data.shape[1:])}"
            )
        k = self.config.num_classes
        if k is None and labels is not None:
            raise ValueError(
                "labels: given, but TrainConfig.num_classes is None (set it for class-conditional training)"
            )
        if k is not None:
            from .data import check_labels

            if labels is None:
                raise ValueError(f"labels: TrainConfig.num_classes is {k}: fit needs labels=, one class id per sample")
            check_labels(labels, data.shape[0], num_classes=k, what="labels")
        y = None if k is None else torch.zeros(2, dtype=torch.long, device=self.device)
        latent = self.config.latent_dim
        hint = _first_layer_hint(self.generator, latent)
        out = probe(
            self.generator,
            torch.zeros(2, latent, device=self.device),
            y,
            lambda e: (
                f"generator: {hint} (a call on z of shape (2, {latent}) failed: {e})"
                if hint
                else f"generator: calling it on z of shape (2, {latent}) failed: {e}"
            ),
        )
        if tuple(out.shape[1:]) != tuple(data.shape[1:]):
            raise ValueError(
                f"data: samples have shape {tuple(data.shape[1:])} but the generator makes "
                f"{tuple(out.shape[1:])}; build the models for this data"
            )
        real = self._as_float(data[:2]).to(self.device)
        score = probe(
            self.critic,
            real,
            y,
            lambda e: f"critic: calling it on a data batch of shape {tuple(real.shape)} failed: {e}",
        )
        if isinstance(score, tuple):  # a classifier head: (score, logits)
            logits = score[1] if len(score) == 2 else None
            if k is None or logits is None or tuple(logits.shape) != (len(real), k):
                raise ValueError(
                    f"critic: returns a tuple; only a class-conditional critic with a classifier head "
                    f"may, as (score, logits) with logits of shape ({len(real)}, num_classes)"
                )
            score = score[0]
        if tuple(score.shape) not in ((len(real),), (len(real), 1)):
            raise ValueError(
                f"critic: returns shape {tuple(score.shape)} for a batch of {len(real)} samples; a "
                f"critic returns one score per sample, shape ({len(real)},) or ({len(real)}, 1)"
            )
        return data

    @staticmethod
    def _as_float(x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float in [-1, 1] (the one normalisation, fastwgan.images.to_float); floats as they are."""
        return as_float(x)

    def batch_source(self, data, labels=None):
        """The batch source (``fastwgan.sources``) ``fit`` trains from, checked against the models.

        Args:
            data: a tensor or array (the whole training set), or an iterable of batches (a DataLoader).
            labels: with a tensor, a class-conditional run's (N,) class ids; a loader yields its own.
        Returns:
            a TensorSource / HostStreamSource / LoaderSource (a loader resumes at ``data_position``).
        """
        if isinstance(data, (torch.Tensor, np.ndarray)):
            data = self.check_data(data, labels)
            y = None if labels is None else torch.as_tensor(labels).long()
            return self._tensor_source(data, y)
        if labels is not None:
            raise ValueError(
                "labels: a loader yields its labels with its batches, as (x, y); fit(loader) takes no labels="
            )
        cfg = self.config
        source = LoaderSource(
            data,
            batch_size=cfg.batch_size // self.world_size,
            n_critic=cfg.n_critic,
            device=self.device,
            num_classes=cfg.num_classes,
            seed=cfg.seed,
            world_size=self.world_size,
            rank=self.rank,
            position=self.data_position or (0, 0),
        )
        x, y = source.first()
        self.check_data(x, y)
        return source

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data,
        steps: int | None = None,
        *,
        labels=None,
        add_steps: int | None = None,
        out: str | os.PathLike | None = None,
        overwrite: bool = False,
        log_every: int = 10,
        sample_every: int | None = None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 3,
        progress: bool | None = None,
        run_config: dict | None = None,
        callbacks: tuple[Callable[["TrainerBase", dict], None], ...] = (),
        on_nonfinite: str = "raise",
        handle_signals: bool = True,
        evaluators: tuple[Callable[["TrainerBase"], dict], ...] = (),
    ) -> "TrainerBase":
        """Train until the run has made ``steps`` generator updates in total, or ``add_steps`` more than now.

        ``steps`` is the run's total, so a resumed or already-trained trainer continues to it: ``fit(x, 100)``
        twice trains 100 steps, once (the second call warns that it has nothing to do). ``fit(x, add_steps=100)``
        trains 100 more each time it is called. Give exactly one of the two.

        Args:
            data: the training set, (N, C, H, W) uint8 images or an (N, ...) float tensor (e.g. 2-D toy points),
                batches drawn by the seeded stream; or a ``torch.utils.data.DataLoader`` (any iterable of batches
                ``x`` or ``(x, y)``) of batch size ``TrainConfig.batch_size`` (per rank under torchrun, with a
                DistributedSampler): each step takes n_critic batches from it, a short batch is skipped with a note,
                and a resumed run skips to where it stopped (``fastwgan.sources``). Float batches are used as they
                are (fastwgan's images are in [-1, 1]); uint8 batches are normalised.
            steps: total generator updates of the run (each preceded by n_critic critic updates).
            labels: class-conditional training (``TrainConfig.num_classes``): (N,) int class ids of a tensor
                ``data`` (a loader yields ``(x, y)`` batches instead).
            add_steps: generator updates to make from the current step (instead of ``steps``).
            out: a run folder to write (config.json, stats.jsonl, samples, plots, checkpoints); None writes nothing.
                A run folder belongs to one run (``fastwgan.run.check_out``): a new trainer (step 0) needs an absent
                or empty folder, a continued one its own run's folder.
            overwrite: a new run may replace the run in ``out``: the old one is moved aside and deleted once this
                run writes its first checkpoint (moved back if it ends before; ``fastwgan.run.RunWriter``).
            log_every: steps between log ticks (stats.jsonl line, progress bar postfix, callbacks, NaN check).
            sample_every: steps between fixed-noise sample pictures (default: steps // 10).
            checkpoint_every: steps between checkpoints (default: only at the end).
            keep_checkpoints: how many checkpoints to keep.
            progress: a tqdm bar on a terminal, else a plain line every 30 s (None, the default); True: the bar;
                False: nothing (``fastwgan.run.Progress``).
            run_config: extra JSON written to config.json (the CLI records the model and data spec there).
            callbacks: called as cb(trainer, record) at every log tick.
            evaluators: called as ev(trainer) -> dict at every log tick BEFORE the record is written; the dicts
                are merged into the record (so metrics land in stats.jsonl; see fastwgan.evaluate.eval_callback,
                which returns {} on ticks it skips). Their time is not counted in steps_per_s.
            on_nonfinite: "raise": a NaN/inf loss, penalty or parameter stops the run with a DivergenceError
                naming the step and the quantity (checked at log ticks and before every checkpoint, so the last
                checkpoint written is always finite); "skip": checked after every step (one sync per step), a bad
                step is undone and its noise skipped.
            handle_signals: SIGINT / SIGTERM finish the current step, write a checkpoint (when ``out`` is set) and
                return with ``self.stopped_by`` set to the signal's name.
        Returns:
            self.
        """
        if (steps is None) == (add_steps is None):
            raise ValueError("fit: give exactly one of steps (the run's total) and add_steps (more from now)")
        if add_steps is not None:
            if not isinstance(add_steps, int) or add_steps < 0:
                raise ValueError(f"add_steps must be a non-negative integer, got {add_steps!r}")
            steps = self.step + add_steps
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        if on_nonfinite not in guards.ON_NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {guards.ON_NONFINITE}, got {on_nonfinite!r}")
        source = self.batch_source(data, labels)
        if steps <= self.step:
            source.close()
            warnings.warn(
                f"fit: nothing to do: the trainer is already at step {self.step} and steps={steps} is the "
                "run's total; fit(data, add_steps=N) trains N more",
                stacklevel=2,
            )
            return self
        try:
            return self._fit(
                source,
                steps,
                out,
                overwrite,
                log_every,
                sample_every,
                checkpoint_every,
                keep_checkpoints,
                progress,
                run_config,
                callbacks,
                on_nonfinite,
                handle_signals,
                evaluators,
            )
        finally:
            source.close()

    def _fit(
        self,
        source,
        steps,
        out,
        overwrite,
        log_every,
        sample_every,
        checkpoint_every,
        keep_checkpoints,
        progress,
        run_config,
        callbacks,
        on_nonfinite,
        handle_signals,
        evaluators,
    ) -> "TrainerBase":
        data = source.first()[0]  # the dataset, or a loader's first batch: its shape sets the previews
        self._planned_steps(steps - self.step)
        cfg = self.config
        writer = None
        if out is not None and self.rank == 0:
            # What load_trainer and the run-reading commands need, whoever called fit: the model spec of bundled
            # models (fastwgan.models sets G.spec; user modules have none: load_trainer then takes the modules)
            # and the run's target, which a resume continues to.
            meta = {"trainer": self.name, "config": cfg.to_dict(), "steps": steps}
            spec = getattr(self.generator, "spec", None)
            writer = RunWriter(
                out,
                {**meta, **(run_config or {})},
                step=self.step,
                overwrite=overwrite,
                defaults=None if spec is None else {"model": dict(spec)},
            )
        sample_every = sample_every or max(1, steps // 10)
        n_show = 1000 if data.dim() == 2 else 64  # 2-D toys: a scatter of 1000 points; images: an 8x8 grid
        per_row = 8
        if cfg.conditional:  # one row of 8 per class
            n_show = per_row * cfg.num_classes if data.dim() > 2 else n_show
        fixed_z = torch.randn(n_show, cfg.latent_dim, generator=rng.make_generator(cfg.seed + 2))
        fixed_y = None if not cfg.conditional else torch.arange(n_show) * cfg.num_classes // n_show
        real_show = data[:5000] if data.dim() == 2 else None
        self.stopped_by = None

        bar = Progress(steps, self.step, f"{self.name} {cfg.loss}", progress, rank=self.rank)
        t_tick, step_tick = time.perf_counter(), self.step
        timed_from = None  # the tick's first timed step: the first step of a fit (compile) is not timed
        first_step_s = None
        skip = on_nonfinite == "skip"
        halt = False  # stop after this step (a signal; under torchrun, once the ranks agreed on it)
        with guards.catch_signals(handle_signals) as stop:
            try:
                while self.step < steps and not halt:
                    snapshot = self._snapshot() if skip else None
                    noise = rng.draw_step(
                        self._gen,
                        source.n,
                        cfg.n_critic,
                        cfg.batch_size,
                        cfg.latent_dim,
                        cfg.uses_penalty,
                        cfg.conditional,
                        bool(cfg.augment),
                    ).shard(self.rank, self.world_size)
                    metrics = self._step(source, noise)
                    source.prefetch()  # the next step's batches load while this one computes
                    if source.position is not None:
                        self.data_position = source.position
                    self._pending.append((self.step + 1, metrics))
                    if skip:
                        self._flush()
                        if guards.first_nonfinite(self._records[-1]) is not None:
                            self._records.pop()
                            self._restore(snapshot)  # the generator state stays advanced: new noise next time
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
                        bar.set_postfix(
                            {k: f"{record[k]:.3g}" for k in ("critic_loss", "w_estimate", "generator_loss")}
                        )
                        if evaluators:
                            for ev in evaluators:
                                record.update(ev(self))
                            t_tick = time.perf_counter()
                        if writer:
                            writer.log(record)
                        for cb in callbacks:
                            cb(self, record)
                    if writer and preview:
                        writer.samples(
                            self.step,
                            self.sample_from(fixed_z, y=fixed_y),
                            real=real_show,
                            nrow=per_row if fixed_y is not None else None,
                        )
                        writer.plots(self.history)
                        t_tick = time.perf_counter()  # writing is not training: not in steps_per_s
                    if writer and ckpt:
                        writer.checkpoint(self.state_dict(), self.step, keep=keep_checkpoints)
                        t_tick = time.perf_counter()
            finally:
                bar.close()
                if writer is not None:
                    writer.close()
        if halt:
            self.stopped_by = stop.name
        return self

    def _records_since(self, step: int) -> list[dict]:
        return records_since(self._records, step)

    def _check_finite(self, since: int) -> None:
        for rec in self._records_since(since):
            bad = guards.first_nonfinite(rec)
            if bad:
                raise guards.DivergenceError(rec["step"], *bad)
        name = guards.nonfinite_parameter({"critic": self.critic, "generator": self.generator})
        if name:
            raise guards.DivergenceError(self.step, f"parameter {name}", math.nan)

    def _snapshot(self) -> dict:
        """Everything a step changes, cloned (for on_nonfinite="skip")."""
        return _clone_tree(self.state_dict(with_history=False))

    def _restore(self, snapshot: dict) -> None:
        gen_state = self._gen.get_state()
        self.load_state_dict({**snapshot, "history": self._records})
        self._gen.set_state(gen_state)

    def _tick_record(self, since_step: int, seconds: float, timed_from: int | None = None) -> dict:
        """Means of the metrics over the steps after ``since_step``; speed over the steps after ``timed_from``
        (the ``seconds`` since then; NaN when no step was timed)."""
        recs = self._records_since(since_step)
        out = {"step": self.step}
        for k in self._metric_names():
            vals = [r[k] for r in recs if r[k] is not None]
            out[k] = sum(vals) / len(vals) if vals else None
        steps = len(self._records_since(since_step if timed_from is None else timed_from))
        out["steps_per_s"] = steps / seconds if seconds > 0 and steps else math.nan
        out["images_per_s"] = out["steps_per_s"] * self.config.batch_size * self.config.n_critic
        if self.threads.mode is not None:
            out["threads"] = self.threads.current  # the CPU thread count now (fastwgan.threads)
        return out

    # ------------------------------------------------------------------ inference
    def sampling_generator(self) -> nn.Module:
        """The network ``sample`` uses (the fast trainer's EMA copy when enabled)."""
        return self.generator

    @torch.no_grad()
    def sample_from(self, z: torch.Tensor, batch_size: int = 1024, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (floats in [-1, 1]) from the given noise ``z`` (and class ids ``y``), in eval mode, in batches."""
        G = self.sampling_generator()
        was = G.training
        G.eval()
        dev = self.device
        try:
            chunks = [
                (
                    G(z[i : i + batch_size].to(dev))
                    if y is None
                    else G(z[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev))
                )
                .float()
                .cpu()
                for i in range(0, z.shape[0], batch_size)
            ]
        finally:
            G.train(was)
        return torch.cat(chunks)

    def sample_noise_generator(self, seed: int | None = None) -> torch.Generator:
        """The noise stream of ``sample``: seeded with ``seed``, by default ``config.seed + 1`` (never the training
        stream)."""
        return rng.make_generator(self.config.seed + rng.SAMPLE_SEED_OFFSET if seed is None else seed)

    def sample_labels(self, n: int, labels=None) -> torch.Tensor | None:
        """The class ids ``sample`` conditions on: None for an unconditional trainer; for a conditional one
        ``labels`` as an (n,) int64 tensor: an int (every sample of that class), a sequence / tensor of n ids, or
        None (balanced: sample i gets class i % num_classes)."""
        k = self.config.num_classes
        if k is None:
            if labels is not None:
                raise ValueError(
                    "sample: labels given, but this trainer is unconditional (TrainConfig.num_classes is None)"
                )
            return None
        if labels is None:
            return torch.arange(n) % k
        y = torch.full((n,), labels, dtype=torch.long) if isinstance(labels, int) else torch.as_tensor(labels)
        from .data import check_labels

        check_labels(y, n, num_classes=k, what="sample: labels")
        return y.long()

    def sample(self, n: int, seed: int | None = None, batch_size: int = 1024, labels=None) -> torch.Tensor:
        """Draw ``n`` samples from the generator (eval mode) with its own noise stream.

        Args:
            n: number of samples.
            seed: noise seed (default ``config.seed + 1``; the training stream is never touched).
            batch_size: generator batch size.
            labels: class-conditional trainers: the classes to draw (see ``sample_labels``; default balanced).
        Returns:
            (n, *data_shape) float CPU tensor: images in [-1, 1] (``fastwgan.data.to_uint8`` converts), or
            coordinates for the 2-D toys.
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"sample: n must be a non-negative integer, got {n!r}")
        y = self.sample_labels(n, labels)
        z = torch.randn(n, self.config.latent_dim, generator=self.sample_noise_generator(seed))
        if n == 0:
            y0 = None if y is None else torch.zeros(1, dtype=torch.long)
            return self.sample_from(torch.zeros(1, self.config.latent_dim), y=y0)[:0]
        return self.sample_from(z, batch_size, y=y)

    @torch.no_grad()
    def critic_score(self, x, batch_size: int = 1024, labels=None) -> torch.Tensor:
        """The critic's score D(x) per sample (higher = judged more like the training data).

        Args:
            x: (N, ...) uint8 images (normalised as in training) or float samples, tensor or numpy array.
            labels: class-conditional trainers: (N,) class ids (or one int for all), scored as D(x, y).
        Returns:
            (N,) float CPU tensor (a critic with a classifier head: its score, not the logits).
        """
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if self.config.conditional and labels is None:
            raise ValueError(
                "critic_score: this trainer is class-conditional: give labels= (the class to score each sample against)"
            )
        if not self.config.conditional and labels is not None:
            raise ValueError("critic_score: labels given, but this trainer is unconditional")
        y = self.sample_labels(x.shape[0], labels)  # None, or (N,) checked against num_classes
        was = self.critic.training
        self.critic.eval()
        dev = self.device
        try:
            out = []
            for i in range(0, x.shape[0], batch_size):
                xb = self._as_float(x[i : i + batch_size]).to(dev)
                s = self.critic(xb) if y is None else self.critic(xb, y[i : i + batch_size].to(dev))
                out.append(split_critic_output(s)[0].reshape(-1).float().cpu())
        finally:
            self.critic.train(was)
        return torch.cat(out) if out else torch.zeros(0)

    # ------------------------------------------------------------------ state
    def state_dict(self, with_history: bool = True) -> dict:
        """Everything needed to continue exactly: both networks, optimizer states, step, the noise generator's
        and the model RNG states (``rng.ModelRNG``), history and config (tensors and JSON-able values only; see
        fastwgan.checkpoint)."""
        state = {
            "format": 1,
            "trainer": self.name,
            "config": self.config.to_dict(),
            "step": self.step,
            "generator": dict(self.generator.state_dict()),
            "critic": dict(self.critic.state_dict()),
            "optimizers": self._optimizer_state(),
            "rng": self._gen.get_state(),
            "rng_model": self._model_rng.state(),
        }
        if self.data_position is not None:  # a loader run: where the loader resumes (fastwgan.sources)
            state["data_position"] = list(self.data_position)
        if with_history:
            state["history"] = self.history
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` (of either trainer). Refuses a state whose config differs (device aside)."""
        for key in ("generator", "critic", "optimizers", "rng", "step"):
            if key not in state:
                raise ValueError(f"load_state_dict: state has no {key!r} entry (not a fastwgan trainer state)")
        if "config" in state:
            mine = self.config.to_dict()
            diff = sorted(k for k, v in state["config"].items() if k != "device" and mine.get(k) != v)
            if diff:
                pairs = ", ".join(f"{k}: checkpoint {state['config'][k]!r} vs {mine.get(k)!r}" for k in diff)
                raise ValueError(f"load_state_dict: the checkpoint was trained with another config ({pairs})")
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
        except RuntimeError as e:
            raise ValueError(f"load_state_dict: the checkpoint does not match these models: {e}") from None
        self._load_optimizer_state(state["optimizers"])
        self._gen.set_state(state["rng"])
        if "rng_model" in state:
            self._model_rng.load(state["rng_model"])
        elif "rng_torch" in state:  # a checkpoint from before the model RNG: the global state it saved is the same
            self._model_rng.load(
                {"cpu": state["rng_torch"], **({"cuda": state["rng_cuda"]} if "rng_cuda" in state else {})}
            )
        self.step = int(state["step"])
        self.data_position = tuple(int(v) for v in state["data_position"]) if "data_position" in state else None
        self._pending.clear()
        self._records = [dict(r) for r in state.get("history", [])]


def records_since(records: list[dict], step: int) -> list[dict]:
    """The history records after ``step``: the tail of the list (records are appended in step order), found from
    the end so a log tick costs O(log_every), not O(steps so far)."""
    i = len(records)
    while i > 0 and records[i - 1]["step"] > step:
        i -= 1
    return records[i:]


@torch.no_grad()
def probe(module: nn.Module, x: torch.Tensor, y: torch.Tensor | None, message):
    """``module(x)`` (``module(x, y)`` with labels) in eval mode (batch norm on its running statistics); a failure
    becomes one ValueError line."""
    was = module.training
    module.eval()
    try:
        return module(x) if y is None else module(x, y)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise ValueError(message(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)) from None
    finally:
        module.train(was)


def _first_layer_hint(module: nn.Module, latent: int) -> str:
    """'its first layer NAME takes K inputs but TrainConfig.latent_dim is L' when they disagree, else ''."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            k = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            return (
                f"its first layer {name} takes {k} inputs but TrainConfig.latent_dim is {latent}" if k != latent else ""
            )
    return ""


def _clone_tree(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tree(v) for v in obj)
    return obj
