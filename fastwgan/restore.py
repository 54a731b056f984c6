"""Rebuild trainers from specs and run folders (used by the CLI, evaluation and scoring)."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import TrainConfig


def build_trainer(cfg: TrainConfig, spec: dict, trainer: str = "fast", compile: bool = True, ema_decay=None,
                  threads="auto"):
    """Models from a spec (initialised from cfg.seed) and the trainer that trains them.

    Args:
        cfg: the training config.
        spec: a model spec (``G.spec`` of a model made by ``fastwgan.models``).
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


def load_trainer(run: str | Path):
    """Rebuild a run's models and trainer from its config.json and latest checkpoint.

    The eager trainer is enough for sampling and scoring (fast and reference checkpoints interchange); a run
    trained with an EMA generator gets it back.
    """
    from . import checkpoint
    from .run import read_config

    p = Path(run)
    root = next((d for d in (p, *p.parents) if (d / "config.json").is_file()), p)  # step_N.json -> its run
    rc = read_config(root)
    try:
        cfg = TrainConfig.from_dict(rc["config"]).replace(device="auto")
        spec = rc["model"]
    except KeyError as e:
        raise ValueError(f"{run}: config.json has no {e} entry (not a fastwgan train run?)") from None
    state = checkpoint.load(run)
    ema = rc.get("ema_decay") if "ema_generator" in state.get("optimizers", {}) else None
    trainer = build_trainer(cfg, spec, "fast", compile=False, ema_decay=ema)
    trainer.load_state_dict(state)
    return trainer, rc
