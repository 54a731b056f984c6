"""The two-domain commands: ``fastwgan translate train|apply`` (unpaired translation, ``fastwgan.translate``) and
``fastwgan adapt`` (WDGRL feature alignment, ``fastwgan.adapt``). ``fastwgan.cli`` builds the parser with
``add_parsers`` and dispatches to ``cmd_translate`` / ``cmd_adapt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .config import PRESETS, TrainConfig
from .threads import threads_arg

#: TrainConfig fields that only the GAN trainer reads: the two-domain commands do not offer them.
GAN_ONLY = ("latent_dim", "num_classes", "ac_weight", "augment", "dtype")
#: What lr_d / lr_g set in each two-domain command (TrainConfig's names are the GAN's).
LR_HELP = {
    "translate": ("learning rate of both critics D_s, D_t", "learning rate of both translators G_st, G_ts"),
    "adapt": ("learning rate of the domain critic", "learning rate of the feature extractor and classifier"),
}


def _common_training(p: argparse.ArgumentParser, default_steps: int) -> None:
    p.add_argument("--source", default=None, help="the source domain, as `train --data` takes it (e.g. digits-train)")
    p.add_argument("--target", default=None, help="the target domain (e.g. digits-m-train)")
    p.add_argument("--out", default=None, help="run folder (new or empty; --overwrite replaces a run there)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"steps in total (default {default_steps}; with --resume the run's own target)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue RUN to its own target (or --steps in total), with its own config and data",
    )
    p.set_defaults(default_steps=default_steps)
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="wgan-gp", help="the critics' settings (default wgan-gp)"
    )
    p.add_argument(
        "--trainer",
        choices=("fast", "reference"),
        default="fast",
        help="fast: flat buffers, fused optimizer, compiled updates (default); reference: the eager oracle",
    )
    p.add_argument("--no-compile", action="store_true", help="fast trainer without torch.compile")
    p.add_argument("--image-size", type=int, default=None, help="resize both domains to this square size")
    p.add_argument("--log-every", type=int, default=10, help="steps between stats.jsonl lines")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default: end)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=threads_arg,
        default="auto",
        metavar="auto|N",
        help="CPU threads of the fast trainer: auto (default) measures and re-chooses when other work "
        "competes for the cores; N fixes the count",
    )


def add_parsers(sub, common, add_config_options, data_help: str) -> None:
    """The ``translate`` and ``adapt`` sub-commands."""
    tr = sub.add_parser(
        "translate",
        parents=[common],
        help="unpaired image translation between two domains",
        description="CycleGAN with Wasserstein critics (fastwgan.translate): train G_st, G_ts and a "
        "critic per domain on two unpaired image sets, or apply a trained run.",
    )
    tsub = tr.add_subparsers(dest="action", required=True, metavar="{train,apply}")
    t = tsub.add_parser(
        "train",
        parents=[common],
        help="train a translation run",
        description="Train on --source and --target (" + data_help + "). Writes a run folder: "
        "config.json, stats.jsonl, samples/ (rows: source, G_st(source), "
        "G_ts(G_st(source)), then the same from the target), plots/, checkpoints/.",
    )
    _common_training(t, 2000)
    t.add_argument("--source-channels", type=int, choices=(1, 3), default=None, help="convert the source's channels")
    t.add_argument("--target-channels", type=int, choices=(1, 3), default=None, help="convert the target's channels")
    t.add_argument("--width", type=int, default=32, help="translator width (fastwgan.models.translator)")
    t.add_argument("--blocks", type=int, default=3, help="translator residual blocks")
    t.add_argument(
        "--critic",
        choices=("auto", "mlp", "dcgan"),
        default="auto",
        help="the critics: auto (DCGAN at 28/32/64 px, else an MLP), mlp, or dcgan (8, 16, 28, 32, 64 px)",
    )
    t.add_argument("--critic-width", type=int, default=None, help="critic MLP hidden width / DCGAN base width")
    t.add_argument("--cycle-weight", type=float, default=10.0, help="lambda_cyc (CycleGAN's 10)")
    t.add_argument(
        "--identity-weight",
        type=float,
        default=None,
        help="lambda_id (default 0.5 lambda_cyc when both domains have the same channels, else 0)",
    )
    t.add_argument("--sample-every", type=int, default=None, help="steps between sample grids (default steps/10)")
    add_config_options(t, skip=GAN_ONLY, rename=dict(zip(("lr_d", "lr_g"), LR_HELP["translate"])))
    a = tsub.add_parser(
        "apply",
        parents=[common],
        help="translate images with a trained run",
        description="Translate INPUT with a translation run's latest checkpoint.",
        usage="fastwgan translate apply [-h] RUN INPUT --out OUT [--direction s2t|t2s] [--batch-size N]",
    )
    a.add_argument("run", nargs="?", metavar="RUN", help="the translation run folder")
    a.add_argument("input", nargs="?", metavar="INPUT", help="images to translate, as `train --data` takes them")
    a.add_argument("--checkpoint", default=None, metavar="RUN", help="the same as RUN (the older spelling)")
    a.add_argument(
        "--out",
        required=True,
        help="FILE.png: a grid of inputs above their translations; DIR: one PNG per image; FILE.npz: uint8 images",
    )
    a.add_argument(
        "--direction",
        choices=("s2t", "t2s"),
        default="s2t",
        help="s2t: INPUT is from the source domain (G_st); t2s: from the target (G_ts)",
    )
    a.add_argument("--batch-size", type=int, default=1024)

    ad = sub.add_parser(
        "adapt",
        parents=[common],
        help="WDGRL domain adaptation of a classifier",
        description="Train a feature extractor and classifier on labelled --source images while a "
        "Wasserstein critic on the features aligns them with unlabelled --target images "
        "(fastwgan.adapt, WDGRL). Writes a run folder with the adapted classifier "
        "(classifier.safetensors) and, with --eval-data, its target accuracy "
        "(metrics.json).",
    )
    _common_training(ad, 1000)
    ad.add_argument("--channels", type=int, choices=(1, 3), default=None, help="convert both domains' channels")
    ad.add_argument("--weight", type=float, default=1.0, help="lambda: the Wasserstein term's weight (default 1)")
    ad.add_argument(
        "--eval-data",
        default=None,
        metavar="SOURCE",
        help="labelled target-domain images for evaluation only (e.g. digits-m-heldout): the adapted "
        "classifier's accuracy on them goes to metrics.json; the target's own labels are never read",
    )
    add_config_options(ad, skip=GAN_ONLY, rename=dict(zip(("lr_d", "lr_g"), LR_HELP["adapt"])))


def _config(args) -> TrainConfig:
    from dataclasses import fields

    over = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if "betas" in over:
        over["betas"] = tuple(over["betas"])
    return TrainConfig.preset(args.preset, **over)


def _load(source: str, what: str, *, image_size=None, channels=None, labels=False):
    from . import data

    if source is None:
        raise ValueError(f"--{what}: which data? (e.g. --{what} digits-train)")
    try:
        return data.load(source, image_size=image_size, channels=channels, labels=labels)
    except data.DataError as e:
        if labels and "label" in str(e):
            raise ValueError(f"--{what}: adaptation needs the source's labels, and {source} has none ({e})") from None
        raise


def _check_out(args, kind: str) -> Path:
    from .run import check_out

    if args.resume:
        from .run import read_config, resume_folder

        run = resume_folder(args.resume)
        if args.out and Path(args.out).resolve() != run.resolve():
            raise ValueError("--resume RUN continues RUN in its own folder; drop --out")
        if args.steps is None:  # the run's own target
            args.steps = int(read_config(run).get("steps") or args.default_steps)
        return run
    args.steps = args.steps or args.default_steps
    if not args.out:
        raise ValueError(f"--out: name the run folder (e.g. --out runs/{kind})")
    out = Path(args.out)
    check_out(out, overwrite=args.overwrite)
    return out


def _resumed(out: Path, kind: str) -> dict:
    """The config.json of the run ``--resume`` continues, refused unless it is a ``kind`` run."""
    from .run import read_config

    rc = read_config(out)
    if rc.get("kind") != kind:
        raise ValueError(f"--resume: {out} is not a{'n' if kind[0] in 'aeiou' else ''} {kind} run")
    return rc


def _finish(trainer, out: Path, what: str) -> int:
    if trainer.stopped_by:
        print(
            f"fastwgan {what}: stopped by {trainer.stopped_by} at step {trainer.step}; resume with: fastwgan {what} "
            f"--resume {out}",
            file=sys.stderr,
        )
        import signal

        return 128 + int(getattr(signal, trainer.stopped_by))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# translate
# ---------------------------------------------------------------------------------------------------------------
def cmd_translate(args) -> int:
    return _translate_train(args) if args.action == "train" else _translate_apply(args)


def _translate_train(args) -> int:
    from . import models, translate

    out = _check_out(args, "translate")
    if args.resume:
        rc = _resumed(out, "translation")
        d = rc["data"]
        xs = _load(d["source"], "source", image_size=d["image_size"], channels=d["source_channels"])
        xt = _load(d["target"], "target", image_size=d["image_size"], channels=d["target_channels"])
        trainer = translate.load_translation(out, compile=not args.no_compile, threads=args.threads)
        if args.trainer == "reference":
            raise ValueError(
                "--resume continues with the fast trainer (checkpoints of both twins interchange); drop --trainer"
            )
        run_config = None
    else:
        cfg = _config(args)
        xs = _load(args.source, "source", image_size=args.image_size, channels=args.source_channels)
        xt = _load(args.target, "target", image_size=args.image_size, channels=args.target_channels)
        for what, x in (("source", xs), ("target", xt)):
            if x.dim() != 4:
                raise ValueError(f"--{what}: translation takes images, got samples of shape {tuple(x.shape[1:])}")
        if xs.shape[2:] != xt.shape[2:]:
            raise ValueError(
                f"--source and --target: images must have one size, got {xs.shape[2]}x{xs.shape[3]} and "
                f"{xt.shape[2]}x{xt.shape[3]}; give --image-size"
            )
        size, cs, ct = xs.shape[2], xs.shape[1], xt.shape[1]
        if xs.shape[2] != xs.shape[3]:
            raise ValueError(
                f"--source: images are {xs.shape[2]}x{xs.shape[3]}; the translator takes square images "
                "(give --image-size)"
            )
        torch.manual_seed(cfg.seed)
        g_st = models.translator(size, cs, ct, width=args.width, blocks=args.blocks)
        g_ts = models.translator(size, ct, cs, width=args.width, blocks=args.blocks)
        d_s, d_t = (_critic((c, size, size), cfg, args.critic, args.critic_width) for c in (cs, ct))
        cls = translate.TranslationTrainer if args.trainer == "fast" else translate.ReferenceTranslationTrainer
        kw = {"compile": not args.no_compile, "threads": args.threads} if args.trainer == "fast" else {}
        trainer = cls(g_st, g_ts, d_s, d_t, cfg, args.cycle_weight, args.identity_weight, **kw)
        run_config = {
            "data": {
                "source": args.source,
                "target": args.target,
                "image_size": args.image_size,
                "source_channels": args.source_channels,
                "target_channels": args.target_channels,
                "source_shape": list(xs.shape),
                "target_shape": list(xt.shape),
            },
            "steps": args.steps,
        }
    print(
        f"fastwgan translate: {trainer.name} trainer, {trainer.config.loss} critics, {len(xs)} source images "
        f"{tuple(xs.shape[1:])} <-> {len(xt)} target images {tuple(xt.shape[1:])}, {args.steps} steps in total "
        f"-> {out}",
        file=sys.stderr,
    )
    trainer.fit(
        xs,
        xt,
        args.steps,
        out=out,
        overwrite=args.overwrite,
        log_every=args.log_every,
        sample_every=getattr(args, "sample_every", None),
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        run_config=run_config,
    )
    code = _finish(trainer, out, "translate train")
    if code == 0:
        print(json.dumps({"run": str(out), **(trainer.history[-1] if trainer.history else {})}))
    return code


def _critic(shape, cfg: TrainConfig, kind: str, width):
    from . import models

    kind = models.auto_kind(shape) if kind == "auto" else kind
    kw = {} if width is None else {"hidden" if kind == "mlp" else "width": width}
    return models.build(kind, shape, cfg.latent_dim, **kw)[1]


def _translate_apply(args) -> int:
    from . import data, translate
    from .run import read_config

    if args.checkpoint and args.input is None:  # `apply --checkpoint RUN INPUT`: the one positional is INPUT
        args.run, args.input = None, args.run
    if args.run and args.checkpoint and args.run != args.checkpoint:
        raise ValueError(f"the run is given twice ({args.run} and --checkpoint {args.checkpoint}): give RUN once")
    run = args.run or args.checkpoint
    if run is None or args.input is None:
        raise ValueError("give RUN and INPUT (e.g. `fastwgan translate apply runs/d2m digits-heldout --out t.png`)")
    rc = read_config(run)
    trainer = translate.load_translation(run)
    d = rc.get("data", {})
    side = "source" if args.direction == "s2t" else "target"
    x = _load(args.input, "input", image_size=d.get("image_size"), channels=d.get(f"{side}_channels"))
    y = trainer.translate(x, args.direction, batch_size=args.batch_size)  # (N, C', H, W) in [-1, 1]
    out = Path(args.out)
    if out.suffix == ".png":
        show = [data.to_float(x[:32]), y[:32]]
        rgb = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 and any(s.shape[1] == 3 for s in show) else r for r in show]
        data.save_grid(torch.cat(rgb), out, nrow=min(8, len(y)) if len(y) else 8, scale=None)
    elif out.suffix == ".npz":
        data.save_npz(data.to_uint8(y), out)
    elif not out.suffix:
        data.save_image_folder(data.to_uint8(y), out)
    else:
        raise ValueError(f"--out: {out} must end in .png or .npz, or be a folder")
    print(json.dumps({"input": args.input, "direction": args.direction, "n": len(y), "out": str(out)}))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# adapt
# ---------------------------------------------------------------------------------------------------------------
def cmd_adapt(args) -> int:
    from . import adapt, checkpoint

    out = _check_out(args, "adapt")
    if args.resume:
        rc = _resumed(out, "adaptation")
        d = rc["data"]
        cfg = TrainConfig.from_dict(rc["config"])
        args.weight, args.eval_data = rc["weight"], d.get("eval")
        image_size, channels, source, target = d["image_size"], d["channels"], d["source"], d["target"]
    else:
        cfg = _config(args)
        image_size, channels, source, target = args.image_size, args.channels, args.source, args.target
    xs, ys = _load(source, "source", image_size=image_size, channels=channels, labels=True)
    xt = _load(target, "target", image_size=image_size, channels=channels)
    if xs.dim() != 4 or xs.shape[1:] != xt.shape[1:]:
        raise ValueError(
            f"--source and --target: one image shape is needed, got {tuple(xs.shape[1:])} and "
            f"{tuple(xt.shape[1:])} (give --image-size / --channels)"
        )
    if xs.shape[2] != xs.shape[3] or xs.shape[2] % 2:
        raise ValueError(
            f"--source: the bundled networks take square images of an even size, got "
            f"{xs.shape[2]}x{xs.shape[3]} (give --image-size)"
        )
    k = int(ys.max()) + 1
    torch.manual_seed(cfg.seed)
    nets = adapt.digit_networks(xs.shape[1], num_classes=k, image_size=xs.shape[2])
    if args.trainer == "fast":
        trainer = adapt.AdaptTrainer(*nets, cfg, args.weight, compile=not args.no_compile, threads=args.threads)
    else:
        trainer = adapt.ReferenceAdaptTrainer(*nets, cfg, args.weight)
    if args.resume:
        trainer.load_state_dict(checkpoint.load(out))
    run_config = {
        "data": {
            "source": source,
            "target": target,
            "image_size": image_size,
            "channels": channels,
            "eval": args.eval_data,
            "shape": list(xs.shape[1:]),
        },
        "steps": args.steps,
    }
    print(
        f"fastwgan adapt: {trainer.name} trainer, {len(xs)} labelled source images ({k} classes) -> {len(xt)} "
        f"target images {tuple(xt.shape[1:])}, {args.steps} steps in total -> {out}",
        file=sys.stderr,
    )
    evaluators = ()
    if args.eval_data:  # the target accuracy at every log tick: stats.jsonl and the plot's third panel
        xe, ye = _load(args.eval_data, "eval-data", image_size=image_size, channels=channels, labels=True)
        evaluators = (lambda tr: {"target_accuracy": tr.accuracy(xe, ye)},)
    trainer.fit(
        xs,
        xt,
        args.steps,
        labels=ys,
        out=out,
        overwrite=args.overwrite,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        run_config=run_config,
        evaluators=evaluators,
    )
    code = _finish(trainer, out, "adapt")
    if code:
        return code
    from .checkpoint import atomic_save_tensors, atomic_write_json

    atomic_save_tensors(
        {k: v.contiguous() for k, v in trainer.model.state_dict().items()},
        out / "classifier.safetensors",
        metadata={"kind": "fastwgan-adapted-classifier", "step": str(trainer.step)},
    )
    metrics = {"step": trainer.step, "source_train_accuracy": trainer.accuracy(xs, ys)}
    if args.eval_data:
        metrics["target_accuracy"] = trainer.accuracy(xe, ye)
        metrics["eval_data"] = args.eval_data
    atomic_write_json(out / "metrics.json", metrics)
    print(json.dumps({"run": str(out), **metrics}))
    return 0
