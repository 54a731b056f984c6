"""`fastwgan` command line: a thin shell over the Python API.

    fastwgan train  --data digits|PATH|toy:NAME --preset wgan-gp|wgan-clip|wgan-gp-toy --steps N --out DIR
    fastwgan sample --checkpoint RUN --n N --out FILE.png|DIR|FILE.npz
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from .config import PRESETS, TrainConfig

# One line of help per TrainConfig field (the dataclass docstring holds the long form).
FIELD_HELP = {
    "loss": "clip (WGAN weight clipping), gp (WGAN-GP penalty), lp (one-sided penalty, Petzka et al. 2018)",
    "n_critic": "critic updates per generator update",
    "lr_d": "critic learning rate",
    "lr_g": "generator learning rate",
    "optimizer": "rmsprop or adam",
    "betas": "Adam betas, two numbers",
    "rmsprop_alpha": "RMSprop smoothing constant",
    "opt_eps": "optimizer epsilon",
    "clip_value": "c: critic weights are clamped to [-c, c] (clip loss)",
    "gp_weight": "lambda: gradient-penalty weight (gp / lp losses)",
    "batch_size": "samples per update",
    "latent_dim": "generator noise size",
    "seed": "seeds model initialisation and the training noise stream",
    "device": "cpu, cuda, cuda:N or auto",
    "dtype": "float32, or bfloat16 autocast for the networks (fast trainer)",
}


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training config (override the preset; see fastwgan.TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "betas":
            g.add_argument(flag, type=float, nargs=2, default=None, metavar=("B1", "B2"), help=FIELD_HELP[f.name])
        else:
            typ = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            g.add_argument(flag, type=typ, default=None, help=FIELD_HELP[f.name])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastwgan", description="Train Wasserstein GANs (WGAN, WGAN-GP) on images.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train on a dataset and write a run folder",
                       description="Train a WGAN and write a run folder: config.json, stats.jsonl, "
                                   "samples/*.png, plots/losses.png, checkpoints/.")
    t.add_argument("--data", default="digits",
                   help="'digits' (bundled UCI handwritten digits, 8x8), 'toy:8gaussians|25gaussians|swissroll', "
                        "or a path: image folder, MNIST IDX file (.gz ok), CIFAR-10 batch or folder, .npz/.npy")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="paper settings (default: wgan-gp; wgan-gp-toy for toy data)")
    t.add_argument("--steps", type=int, default=1000, help="generator updates in total (default 1000)")
    t.add_argument("--out", default=None, help="run folder (default runs/<data>-<preset>)")
    t.add_argument("--trainer", choices=("fast", "reference"), default="fast",
                   help="fast: compiled steps with fused kernels (default); reference: the eager oracle")
    t.add_argument("--no-compile", action="store_true", help="fast trainer without torch.compile (eager)")
    t.add_argument("--ema-decay", type=float, default=None, help="sample from an EMA of the generator (fast)")
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=("auto", "mlp", "dcgan", "resnet"), default="auto",
                   help="auto: DCGAN for 28/32/64 px images, an MLP otherwise (8x8 digits, 2-D toys)")
    m.add_argument("--image-size", type=int, default=None, help="resize images to this square size")
    m.add_argument("--channels", type=int, choices=(1, 3), default=None, help="force 1 (gray) or 3 (RGB) channels")
    m.add_argument("--width", type=int, default=None, help="MLP hidden width / DCGAN base width / ResNet dim")
    m.add_argument("--critic-norm", choices=("none", "layer", "batch"), default="none",
                   help="critic normalisation (batch is refused with the gp / lp losses)")
    m.add_argument("--toy-n", type=int, default=100_000, help="points drawn for toy data")
    o = t.add_argument_group("outputs")
    o.add_argument("--log-every", type=int, default=10, help="steps between stats.jsonl lines")
    o.add_argument("--sample-every", type=int, default=None, help="steps between sample pictures (default steps/10)")
    o.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default: end)")
    o.add_argument("--keep-checkpoints", type=int, default=3, help="checkpoints kept")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(t)

    s = sub.add_parser("sample", help="generate samples from a trained run",
                       description="Generate N samples from a run's latest checkpoint.")
    s.add_argument("--checkpoint", required=True, help="run folder (or its checkpoints/ or a step_N.json)")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", required=True,
                   help="FILE.png: a grid (a scatter plot for toys); DIR: one PNG per sample; FILE.npz: an array")
    s.add_argument("--seed", type=int, default=None, help="noise seed (default: the run's seed + 1)")
    s.add_argument("--batch-size", type=int, default=1024, help="generator batch size")
    return p


def _config_from_args(args) -> TrainConfig:
    preset = args.preset or ("wgan-gp-toy" if args.data.startswith("toy:") else "wgan-gp")
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    if "betas" in over:
        over["betas"] = tuple(over["betas"])
    return TrainConfig.preset(preset, **over), preset


def _load_data(args):
    from . import data

    if args.data.startswith("toy:"):
        return data.toy(args.data[4:], n=args.toy_n, seed=0)
    return data.load(args.data, image_size=args.image_size, channels=args.channels)


def cmd_train(args) -> int:
    from . import models
    from .reference import ReferenceTrainer
    from .trainer import Trainer

    cfg, preset = _config_from_args(args)
    x = _load_data(args)
    extra = {}
    if args.width is not None:
        kind = args.model if args.model != "auto" else models.auto_kind(tuple(x.shape[1:]))
        extra = {{"mlp": "hidden", "dcgan": "width", "resnet": "dim"}[kind]: args.width}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # model initialisation, without touching the caller's global RNG
        G, D = models.build(args.model, list(x.shape[1:]), cfg.latent_dim, args.critic_norm, **extra)
    spec = G.spec  # the resolved model spec: `fastwgan sample` rebuilds the models from it
    if args.trainer == "fast":
        trainer = Trainer(G, D, cfg, compile=not args.no_compile, ema_decay=args.ema_decay)
    else:
        if args.ema_decay is not None or args.no_compile:
            raise ValueError("--ema-decay and --no-compile apply to --trainer fast")
        trainer = ReferenceTrainer(G, D, cfg)
    name = args.data[4:] if args.data.startswith("toy:") else Path(args.data).stem
    out = Path(args.out or f"runs/{name}-{preset}")
    run_config = {"preset": preset, "model": spec, "steps": args.steps, "ema_decay": args.ema_decay,
                  "data": {"source": args.data, "image_size": args.image_size, "channels": args.channels,
                           "toy_n": args.toy_n, "shape": list(x.shape), "dtype": str(x.dtype)}}
    print(f"fastwgan: {trainer.name} trainer, {cfg.loss} loss, {x.shape[0]} samples of shape {tuple(x.shape[1:])}, "
          f"{sum(p.numel() for p in D.parameters())} critic / {sum(p.numel() for p in G.parameters())} generator "
          f"parameters, {args.steps} steps -> {out}", file=sys.stderr)
    trainer.fit(x, args.steps, out=out, log_every=args.log_every, sample_every=args.sample_every,
                checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                progress=False if args.no_progress else None, run_config=run_config)
    last = trainer.history[-1] if trainer.history else {}
    print(json.dumps({"run": str(out), **last}))
    return 0


def load_trainer(run: str | Path):
    """Rebuild a run's models and trainer from its config.json and latest checkpoint.

    The eager trainer is enough for sampling and scoring (fast and reference checkpoints interchange); a run
    trained with an EMA generator gets it back.
    """
    from . import checkpoint, models
    from .trainer import Trainer
    from .run import read_config

    rc = read_config(run)
    cfg = TrainConfig.from_dict(rc["config"]).replace(device="auto")
    G, D = models.build(**rc["model"])
    state = checkpoint.load(run)
    ema = rc.get("ema_decay") if "ema_generator" in state.get("optimizers", {}) else None
    trainer = Trainer(G, D, cfg, compile=False, ema_decay=ema)
    trainer.load_state_dict(state)
    return trainer, rc


def cmd_sample(args) -> int:
    from . import data, plots

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    trainer, rc = load_trainer(args.checkpoint)
    out = Path(args.out)
    x = trainer.sample(args.n, seed=args.seed, batch_size=args.batch_size)
    toy = x.dim() == 2
    if out.suffix == ".npz":
        data.save_npz(x if toy else data.to_uint8(x), out)
    elif out.suffix == ".png":
        plots.scatter(x, out, title=f"{args.n} samples") if toy else data.save_grid(x, out)
    elif out.suffix:
        raise ValueError(f"--out: {out} must end in .png or .npz, or be a folder")
    else:
        if toy:
            raise ValueError("--out: toy samples are points; write them to FILE.npz or FILE.png")
        data.save_image_folder(x, out)
    print(f"fastwgan: wrote {args.n} samples to {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "sample": cmd_sample}[args.command](args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, TypeError) as e:
        print(f"fastwgan {args.command}: error: {e}", file=sys.stderr)
        return 2
