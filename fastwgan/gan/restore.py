"""Rebuild trainers from specs and run folders (used by the CLI, evaluation and scoring)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.config import TrainConfig


def build_trainer(
    cfg: TrainConfig, spec: dict, trainer: str = "fast", compile: bool = True, ema_decay=None, threads="auto"
):
    """Models from a spec (initialised from cfg.seed) and the trainer that trains them.

    Args:
        cfg: the training config.
        spec: a model spec (``G.spec`` of a model made by ``fastwgan.gan.models``).
        trainer: "fast" or "reference".
        compile, ema_decay, threads: fast-trainer options.
    Returns:
        the trainer (models on cfg.device).
    """
    from . import models
    from .reference import ReferenceTrainer
    from .trainer import Trainer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # model initialisation, without touching the caller's global RNG
        G, D = models.build(**spec)
    if trainer == "fast":
        return Trainer(G, D, cfg, compile=compile, ema_decay=ema_decay, threads=threads)
    if ema_decay is not None or not compile:
        raise ValueError("--ema-decay and --no-compile apply to --trainer fast")
    return ReferenceTrainer(G, D, cfg)


def run_root(path: str | Path) -> Path:
    """The run folder of ``path``: a run folder itself, its checkpoints/ folder or one of its step_N.json."""
    p = Path(path)
    return next((d for d in (p, *p.parents) if (d / "config.json").is_file()), p)


def load_trainer(run: str | Path, *, compile: bool = False, threads="auto", generator=None, critic=None):
    """Rebuild a run's models and trainer from its config.json and latest checkpoint (or the given step_N.json),
    to sample, score, or continue it from Python.

    Args:
        run: a run folder written by ``fastwgan train`` or ``fit(out=...)`` with the CLI's run config, its
            checkpoints/ folder, or one of its step_N.json.
        compile: compile the training steps (for continuing a run; sampling and scoring never need it).
        threads: the fast trainer's thread policy (``fastwgan.core.threads``).
        generator, critic: the modules of a run that trained user modules (``fit(out=...)`` records the spec of
            ``fastwgan.gan.models`` only): built alike, their weights come from the checkpoint.
    Returns:
        (trainer, run_config): a fast ``fastwgan.Trainer`` at the checkpoint's step (fast and reference
        checkpoints interchange; a run trained with an EMA generator gets it back) and the run's config.json.
        ``trainer.fit(data, add_steps=N, out=run)`` continues the run in its own folder.
    """
    from ..core import checkpoint
    from ..core.run import read_config

    rc = read_config(run_root(run))
    if "config" not in rc:
        raise ValueError(f"{run}: config.json has no 'config' entry (not a fastwgan GAN run?)")
    cfg = TrainConfig.from_dict(rc["config"]).replace(device="auto")
    if (generator is None) != (critic is None):
        raise ValueError("load_trainer: give both generator= and critic= (the run's modules), or neither")
    if generator is None and "model" not in rc:
        raise ValueError(
            f"{run}: the run trained modules fastwgan did not build (config.json records no model "
            "spec); pass them: fw.load_trainer(run, generator=G, critic=D)"
        )
    state = checkpoint.load(run)
    ema = rc.get("ema_decay") if "ema_generator" in state.get("optimizers", {}) else None
    if generator is not None:
        from .trainer import Trainer

        trainer = Trainer(generator, critic, cfg, compile=compile, ema_decay=ema, threads=threads)
    else:
        trainer = build_trainer(cfg, rc["model"], "fast", compile=compile, ema_decay=ema, threads=threads)
    trainer.load_state_dict(state)
    return trainer, rc
