"""`fastwgan` command line: a thin shell over the Python API.

    fastwgan train  --data digits|PATH|toy:NAME --preset wgan-gp|wgan-clip|wgan-gp-toy --steps N --out DIR
    fastwgan sample --checkpoint RUN --n N --out FILE.png|DIR|FILE.npz
    fastwgan evaluate RUN                      (writes RUN/metrics.json)
    fastwgan score --checkpoint RUN INPUT [--out scores.csv]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from .config import PRESETS, TrainConfig
from .restore import build_trainer, load_trainer  # noqa: F401 (load_trainer: public via the CLI too)

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


def _threads(v: str):
    if v == "auto":
        return v
    if v.isdigit() and int(v) >= 1:
        return int(v)
    raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {v!r}")


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
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train on a dataset and write a run folder",
                       description="Train a WGAN and write a run folder: config.json, stats.jsonl, "
                                   "samples/*.png, plots/losses.png, checkpoints/.")
    t.add_argument("--data", default="digits",
                   help="'digits' (bundled UCI handwritten digits, 8x8; 'digits-train' / 'digits-heldout' is a fixed "
                        "1297 / 500 split, 'stacked-digits' three digits in three channels: 1000 modes), "
                        "'toy:8gaussians|25gaussians|swissroll', "
                        "or a path: image folder, MNIST IDX file (.gz ok), CIFAR-10 batch or folder, .npz/.npy")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="paper settings (default: wgan-gp; wgan-gp-toy for toy data)")
    t.add_argument("--steps", type=int, default=1000, help="generator updates in total (default 1000)")
    t.add_argument("--out", default=None, help="run folder (default runs/<data>-<preset>)")
    t.add_argument("--trainer", choices=("fast", "reference"), default="fast",
                   help="fast: compiled steps with fused kernels (default); reference: the eager oracle")
    t.add_argument("--no-compile", action="store_true", help="fast trainer without torch.compile (eager)")
    t.add_argument("--resume", default=None, metavar="RUN",
                   help="continue RUN from its latest checkpoint with its own config; --steps counts the whole run")
    t.add_argument("--on-nonfinite", choices=("raise", "skip"), default="raise",
                   help="NaN/inf loss, penalty or parameter: stop naming the step (raise) or undo the step (skip)")
    t.add_argument("--ema-decay", type=float, default=None, help="sample from an EMA of the generator (fast)")
    t.add_argument("--threads", type=_threads, default="auto", metavar="auto|N",
                   help="CPU threads of the fast trainer: auto (default) measures and re-chooses when other "
                        "processes compete for the cores; N fixes the count (bitwise-repeatable runs)")
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
    o.add_argument("--eval-every", type=int, default=None, metavar="K",
                   help="every K steps (and at the end) add the `fastwgan evaluate` metrics to stats.jsonl (eval_*)")
    _add_config_options(t)

    s = sub.add_parser("sample", help="generate samples from a trained run",
                       description="Generate N samples from a run's latest checkpoint.")
    s.add_argument("--checkpoint", required=True, help="run folder (or its checkpoints/ or a step_N.json)")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", required=True,
                   help="FILE.png: a grid (a scatter plot for toys); DIR: one PNG per sample; FILE.npz: an array")
    s.add_argument("--seed", type=int, default=None, help="noise seed (default: the run's seed + 1)")
    s.add_argument("--batch-size", type=int, default=1024, help="generator batch size")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="compute the metrics that apply to a run (writes RUN/metrics.json)",
                       description="Evaluate a run's latest checkpoint: toys: modes covered, high-quality fraction, "
                                   "sliced Wasserstein; digits: classifier FID/KID vs held-out digits next to "
                                   "real-vs-real; stacked-digits: modes of 1000 and KL from uniform. Writes "
                                   "RUN/metrics.json and prints a table.")
    e.add_argument("run", help="run folder")
    e.add_argument("--n", type=int, default=None, help="generated samples (default: per data kind)")
    e.add_argument("--seed", type=int, default=0, help="sample-noise seed")
    e.add_argument("--inception", default=None, metavar="FILE",
                   help="add FID/KID with this TorchScript feature extractor (e.g. NVlabs inception-2015-12-05.pt)")
    e.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    e.add_argument("--checkpoint", default=None, metavar="STEP_JSON",
                   help="evaluate this checkpoint instead of the latest (writes RUN/eval/metrics_step_N.json)")

    c = sub.add_parser("score", help="critic scores for images (anomaly scoring), as CSV",
                       description="Score each input with the run's critic: higher = judged more like the "
                                   "training data (more normal). Writes index,name,score rows.")
    c.add_argument("--checkpoint", required=True, help="run folder (or its checkpoints/ or a step_N.json)")
    c.add_argument("input", help="an image folder, or a .npz / .npy array (points for toy runs)")
    c.add_argument("--out", default=None, help="CSV file (default: print to stdout)")
    c.add_argument("--batch-size", type=int, default=1024, help="critic batch size")
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


def _init_distributed(cfg: TrainConfig) -> TrainConfig:
    """Under torchrun (WORLD_SIZE > 1): join the process group (NCCL on CUDA, gloo on CPU) and pick this rank's
    device."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return cfg
    import torch.distributed as dist

    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return cfg.replace(device=f"cuda:{local}")
    return cfg.replace(device="cpu")


def _resume_args(args) -> tuple[TrainConfig, dict, dict]:
    """The run's own config, model and data spec; only --steps and output options may change on resume."""
    from .run import read_config

    given = [f.name for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None]
    if given or args.preset or args.width is not None or args.image_size or args.channels:
        raise ValueError("--resume continues a run with its own config, model and data; drop "
                         f"{', '.join('--' + g.replace('_', '-') for g in given) or 'the model/data options'}")
    rc = read_config(args.resume)
    try:
        cfg = TrainConfig.from_dict(rc["config"])
        d = rc["data"]
        args.data, args.image_size, args.channels, args.toy_n = d["source"], d["image_size"], d["channels"], d["toy_n"]
        args.trainer, args.ema_decay = rc.get("trainer", "fast"), rc.get("ema_decay")
        return cfg, rc["model"], rc
    except KeyError as e:
        raise ValueError(f"--resume: {args.resume}/config.json has no {e} entry (not a fastwgan train run?)") from None


def cmd_train(args) -> int:
    from . import checkpoint, models
    from .guards import DivergenceError

    if args.resume:
        cfg, spec, rc = _resume_args(args)
        preset, out = rc.get("preset"), Path(args.resume)
        x = _load_data(args)
    else:
        cfg, preset = _config_from_args(args)
        x = _load_data(args)
        extra = {}
        if args.width is not None:
            kind = args.model if args.model != "auto" else models.auto_kind(tuple(x.shape[1:]))
            extra = {{"mlp": "hidden", "dcgan": "width", "resnet": "dim"}[kind]: args.width}
        spec = dict(kind=args.model, data_shape=list(x.shape[1:]), latent_dim=cfg.latent_dim,
                    critic_norm=args.critic_norm, **extra)
        name = args.data[4:] if args.data.startswith("toy:") else Path(args.data).stem
        out = Path(args.out or f"runs/{name}-{preset}")
    cfg = _init_distributed(cfg)
    trainer = build_trainer(cfg, spec, args.trainer, compile=not args.no_compile, ema_decay=args.ema_decay,
                            threads=args.threads)
    spec = trainer.generator.spec  # resolved ("auto" -> its kind): `fastwgan sample` rebuilds the models from it
    if args.resume:
        trainer.load_state_dict(checkpoint.load(out))
    run_config = {"preset": preset, "model": spec, "steps": args.steps, "ema_decay": args.ema_decay,
                  "data": {"source": args.data, "image_size": args.image_size, "channels": args.channels,
                           "toy_n": args.toy_n, "shape": list(x.shape), "dtype": str(x.dtype)}}
    if trainer.rank == 0:
        what = f"resuming at step {trainer.step}" if args.resume else "training"
        print(f"fastwgan: {what}: {trainer.name} trainer, {cfg.loss} loss, {x.shape[0]} samples of shape "
              f"{tuple(x.shape[1:])}, {sum(p.numel() for p in trainer.critic.parameters())} critic / "
              f"{sum(p.numel() for p in trainer.generator.parameters())} generator parameters, "
              f"{args.steps} steps in total -> {out}", file=sys.stderr)
    try:
        trainer.fit(x, args.steps, out=out, log_every=args.log_every, sample_every=args.sample_every,
                    checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                    progress=False if args.no_progress else None, run_config=run_config,
                    on_nonfinite=args.on_nonfinite, evaluators=_evaluators(args, out, x))
    except DivergenceError as e:
        try:
            kept = f"; the last good checkpoint is {checkpoint.resolve(out)}"
        except (OSError, ValueError):
            kept = "; no checkpoint was written before it"
        raise ValueError(f"{e}{kept} (--on-nonfinite skip undoes bad steps instead)") from None
    if trainer.stopped_by:
        if trainer.rank == 0:
            print(f"fastwgan train: stopped by {trainer.stopped_by} at step {trainer.step}; checkpoint written to "
                  f"{out / 'checkpoints'}. Resume with: fastwgan train --resume {out} --steps {args.steps}",
                  file=sys.stderr)
        import signal

        return 128 + int(getattr(signal, trainer.stopped_by))
    last = trainer.history[-1] if trainer.history else {}
    if trainer.rank == 0:
        print(json.dumps({"run": str(out), **last}))
    return 0


def cmd_sample(args) -> int:
    from . import data, inference, plots

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    trainer, rc = load_trainer(args.checkpoint)
    out = Path(args.out)
    if out.suffix == ".png":  # one picture: the samples fit in memory by nature
        x = trainer.sample(args.n, seed=args.seed, batch_size=args.batch_size)
        plots.scatter(x, out, title=f"{args.n} samples") if x.dim() == 2 else data.save_grid(x, out)
    elif out.suffix and out.suffix != ".npz":
        raise ValueError(f"--out: {out} must end in .png or .npz, or be a folder")
    else:  # a folder or .npz: streamed batch by batch
        inference.write_samples(trainer, args.n, out, seed=args.seed, batch_size=args.batch_size,
                                progress=False if args.no_progress else None)
    print(f"fastwgan: wrote {args.n} samples to {out}", file=sys.stderr)
    return 0


def _evaluators(args, out: Path, x) -> tuple:
    """--eval-every K: the `fastwgan evaluate` metrics as a fit() evaluator (see fastwgan.evaluate)."""
    if not getattr(args, "eval_every", None):
        return ()
    from .evaluate import _kind, eval_callback

    return (eval_callback(args.data, args.eval_every, steps=args.steps, cache_dir=out / "eval",
                          train_data=x if _kind(args.data) == "images" else None),)


def cmd_evaluate(args) -> int:
    from . import evaluate

    extractor = None
    if args.inception:
        from .features import inception

        extractor = inception(args.inception)
    result = evaluate.evaluate_run(args.run, n=args.n, seed=args.seed, extractor=extractor,
                                   checkpoint=args.checkpoint)
    written = result.pop("written")
    print(json.dumps(result, indent=1) if args.json else evaluate.format_table(result))
    print(f"fastwgan: wrote {written}", file=sys.stderr)
    return 0


def cmd_score(args) -> int:
    from . import inference

    trainer, rc = load_trainer(args.checkpoint)
    x, names = inference.load_inputs(args.input, rc.get("data"))
    scores = inference.score(trainer, x, batch_size=args.batch_size)
    if args.out:
        inference.write_scores_csv(args.out, names, scores)
        print(f"fastwgan: wrote {len(names)} scores to {args.out}", file=sys.stderr)
    else:
        inference.write_scores(sys.stdout, names, scores)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate,
                "score": cmd_score}[args.command](args)
    except (ValueError, OSError, TypeError) as e:  # bad input: one clear line (the traceback with --debug)
        if args.debug:
            raise
        print(f"fastwgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
