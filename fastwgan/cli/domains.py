"""The two-domain commands: ``fastwgan translate train|apply`` (unpaired translation, ``fastwgan.uses.translate``):
its options (``add_parsers``) and the command (``cmd_translate``), and what ``fastwgan adapt``
(``fastwgan.cli.adapt``) shares with it (``common_training``, ``load_domain``, ``GAN_ONLY``, ``LR_HELP``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..core.config import PRESETS, TrainConfig
from .folders import read_run, run_arg, stopped, training_folder
from .options import (
    DATA_HELP,
    add_command,
    add_config_options,
    add_folder_options,
    add_progress_options,
    add_threads_option,
    add_trainer_options,
    config_from_args,
    fit_options,
)

#: TrainConfig fields that only the GAN trainer reads: the two-domain commands do not offer them.
GAN_ONLY = ("latent_dim", "num_classes", "ac_weight", "augment", "dtype")
#: What lr_d / lr_g set in each two-domain command (TrainConfig's names are the GAN's).
LR_HELP = {
    "translate": ("learning rate of both critics D_s, D_t", "learning rate of both translators G_st, G_ts"),
    "adapt": ("learning rate of the domain critic", "learning rate of the feature extractor and classifier"),
}
#: The help of the options both training commands take ("{steps}": the command's default --steps).
TRAINING_HELP = {
    "--source": "the source domain, as `train --data` takes it (e.g. digits-train)",
    "--target": "the target domain (e.g. digits-m-train)",
    "--out": "run folder (new or empty; --overwrite replaces a run there)",
    "--steps": "steps in total (default {steps}; with --resume the run's own target)",
    "--overwrite": "replace the run in --out",
    "--resume": "continue RUN to its own target (or --steps in total), with its own config and data",
    "--preset": "the critics' settings (default wgan-gp)",
    "--image-size": "resize both domains to this square size",
    "--resize": "how --image-size resizes: bilinear (default), area, or box (MNIST's 20x20 digit box, area-resized, "
    "ink stretched to 255: brings MNIST to the bundled digits' layout; fastwgan.data.load)",
}
#: The help of ``translate``, ``translate train`` and their options.
TRANSLATE_HELP = {
    "help": "unpaired image translation between two domains",
    "description": "CycleGAN with Wasserstein critics (fastwgan.uses.translate): train G_st, G_ts and a critic per "
    "domain "
    "on two unpaired image sets, or apply a trained run.",
    "train": "train a translation run",
    "train description": "Train on --source and --target (" + DATA_HELP + "). Writes a run folder: config.json, "
    "stats.jsonl, samples/ (rows: source, G_st(source), G_ts(G_st(source)), then the same from the target), plots/, "
    "checkpoints/.",
    "--source-channels": "convert the source's channels",
    "--target-channels": "convert the target's channels",
    "--width": "translator width (fastwgan.gan.models.translator)",
    "--blocks": "translator residual blocks",
    "--critic": "the critics: auto (DCGAN at 28/32/64 px, else an MLP), mlp, or dcgan (8, 16, 28, 32, 64 px)",
    "--critic-width": "critic MLP hidden width / DCGAN base width",
    "--cycle-weight": "lambda_cyc (CycleGAN's 10)",
    "--identity-weight": "lambda_id (default 0.5 lambda_cyc when both domains have the same channels, else 0)",
    "--sample-every": "steps between sample grids (default steps/10)",
}
#: The help of ``translate apply`` and of its options.
APPLY_HELP = {
    "help": "translate images with a trained run",
    "description": "Translate INPUT with a translation run's latest checkpoint.",
    "usage": "fastwgan translate apply [-h] RUN INPUT --out OUT [--direction s2t|t2s] [--batch-size N]",
    "run": "the translation run folder",
    "input": "images to translate, as `train --data` takes them",
    "--checkpoint": "the same as RUN (the older spelling)",
    "--out": "FILE.png: a grid of inputs above their translations; DIR: one PNG per image; FILE.npz: uint8 images",
    "--direction": "s2t: INPUT is from the source domain (G_st); t2s: from the target (G_ts)",
}


def common_training(p: argparse.ArgumentParser, default_steps: int) -> None:
    h = {k: v.format(steps=default_steps) for k, v in TRAINING_HELP.items()}
    p.add_argument("--source", default=None, help=h["--source"])
    p.add_argument("--target", default=None, help=h["--target"])
    add_folder_options(p, h)
    p.set_defaults(default_steps=default_steps)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help=h["--preset"])
    add_trainer_options(p, "flat buffers, fused optimizer, compiled updates")
    p.add_argument("--image-size", type=int, default=None, help=h["--image-size"])
    p.add_argument("--resize", choices=("bilinear", "area", "box"), default="bilinear", help=h["--resize"])
    add_progress_options(p)
    add_threads_option(p)


def add_parsers(sub) -> None:
    """The ``translate`` sub-commands."""
    h = TRANSLATE_HELP
    tr = add_command(sub, "translate", h["help"], h["description"])
    tsub = tr.add_subparsers(dest="action", required=True, metavar="{train,apply}")
    t = add_command(tsub, "train", h["train"], h["train description"])
    common_training(t, 2000)
    t.add_argument("--source-channels", type=int, choices=(1, 3), default=None, help=h["--source-channels"])
    t.add_argument("--target-channels", type=int, choices=(1, 3), default=None, help=h["--target-channels"])
    t.add_argument("--width", type=int, default=32, help=h["--width"])
    t.add_argument("--blocks", type=int, default=3, help=h["--blocks"])
    t.add_argument("--critic", choices=("auto", "mlp", "dcgan"), default="auto", help=h["--critic"])
    t.add_argument("--critic-width", type=int, default=None, help=h["--critic-width"])
    t.add_argument("--cycle-weight", type=float, default=10.0, help=h["--cycle-weight"])
    t.add_argument("--identity-weight", type=float, default=None, help=h["--identity-weight"])
    t.add_argument("--sample-every", type=int, default=None, help=h["--sample-every"])
    add_config_options(t, skip=GAN_ONLY, rename=dict(zip(("lr_d", "lr_g"), LR_HELP["translate"])))

    h = APPLY_HELP
    a = add_command(tsub, "apply", h["help"], h["description"], usage=h["usage"])
    a.add_argument("run", nargs="?", metavar="RUN", help=h["run"])
    a.add_argument("input", nargs="?", metavar="INPUT", help=h["input"])
    a.add_argument("--checkpoint", default=None, metavar="RUN", help=h["--checkpoint"])
    a.add_argument("--out", required=True, help=h["--out"])
    a.add_argument("--direction", choices=("s2t", "t2s"), default="s2t", help=h["--direction"])
    a.add_argument("--batch-size", type=int, default=1024)


def load_domain(source: str, what: str, *, image_size=None, channels=None, labels=False, resize="bilinear"):
    from .. import data

    if source is None:
        raise ValueError(f"--{what}: which data? (e.g. --{what} digits-train)")
    try:
        return data.load(source, image_size=image_size, channels=channels, labels=labels, resize=resize)
    except data.DataError as e:
        if labels and "label" in str(e):
            raise ValueError(f"--{what}: adaptation needs the source's labels, and {source} has none ({e})") from None
        raise


# ---------------------------------------------------------------------------------------------------------------
# translate
# ---------------------------------------------------------------------------------------------------------------
def cmd_translate(args) -> int:
    return _translate_train(args) if args.action == "train" else _translate_apply(args)


def _translate_train(args) -> int:
    from ..gan import models
    from ..uses import translate

    out, rc, _ = training_folder(args, "translation", args.default_steps)
    if args.resume:
        d = rc["data"]
        size = {"image_size": d["image_size"], "resize": d.get("resize", "bilinear")}  # resize: since issue 24
        xs = load_domain(d["source"], "source", channels=d["source_channels"], **size)
        xt = load_domain(d["target"], "target", channels=d["target_channels"], **size)
        trainer = translate.load_translation(out, compile=not args.no_compile, threads=args.threads)
        if args.trainer == "reference":
            raise ValueError(
                "--resume continues with the fast trainer (checkpoints of both twins interchange); drop --trainer"
            )
        run_config = None
    else:
        cfg = config_from_args(args, args.preset or "wgan-gp")
        size = {"image_size": args.image_size, "resize": args.resize}
        xs = load_domain(args.source, "source", channels=args.source_channels, **size)
        xt = load_domain(args.target, "target", channels=args.target_channels, **size)
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
                "resize": args.resize,
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
    trainer.fit(xs, xt, args.steps, **fit_options(args, out), sample_every=args.sample_every, run_config=run_config)
    code = stopped(trainer, out, "translate train")
    if code == 0:
        print(json.dumps({"run": str(out), **(trainer.history[-1] if trainer.history else {})}))
    return code


def _critic(shape, cfg: TrainConfig, kind: str, width):
    from ..gan import models

    kind = models.auto_kind(shape) if kind == "auto" else kind
    kw = {} if width is None else {"hidden" if kind == "mlp" else "width": width}
    return models.build(kind, shape, cfg.latent_dim, **kw)[1]


def _translate_apply(args) -> int:
    from .. import data
    from ..uses import translate

    example = "fastwgan translate apply runs/d2m digits-heldout --out t.png"
    run = run_arg(args, example)
    if args.input is None:
        raise ValueError(f"give INPUT, the images to translate (e.g. `{example}`)")
    rc = read_run(run, "translation", "translate apply")
    trainer = translate.load_translation(run)
    d = rc.get("data", {})
    side = "source" if args.direction == "s2t" else "target"
    x = load_domain(
        args.input,
        "input",
        image_size=d.get("image_size"),
        channels=d.get(f"{side}_channels"),
        resize=d.get("resize", "bilinear"),
    )
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
