"""``fastwgan train``: its options, and training a GAN into a run folder (a new run, one replaced with --overwrite,
or one continued with --resume)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from ..core.config import PRESETS, TrainConfig
from ..gan.restore import build_trainer
from . import options
from .distributed import init_distributed
from .folders import stopped, training_folder
from .train_data import load_data, sample_shape

#: The help of ``train`` and of its options.
HELP = {
    "help": "train on a dataset and write a run folder",
    "description": "Train a WGAN and write a run folder: config.json, stats.jsonl, samples/*.png, plots/losses.png, "
    "checkpoints/. A run folder holds one run: an existing one is continued with --resume or replaced with "
    "--overwrite.",
    "--data": options.DATA_HELP + " (default: digits-train)",
    "--stream": "an image folder: decode it in DataLoader workers while training instead of loading it whole (auto: "
    "when its decoded size exceeds --memory-budget)",
    "--memory-budget": "decoded data up to this size is loaded whole (default: a quarter of physical memory)",
    "--workers": "decoding processes when streaming (default: CPU cores - 1, at most 4; 0 decodes in the training "
    "process)",
    "--preset": "paper settings (default: wgan-gp; wgan-gp-toy for toy data)",
    "--exclude-class": "train without these classes of a labelled --data (e.g. digits-train): the normal data of an "
    "anomaly detector; `fastwgan score RUN digits-heldout --anomalous-class K` then measures it (leave-one-class-out)",
    "--out": "run folder (default runs/<data>-<preset>); must be new or empty",
    "--steps": "generator updates in total, counting those a resumed run has made (default 1000; with --resume the "
    "run's own target)",
    "--overwrite": "replace the run in --out: the old run is moved aside (OUT.replaced-TIME) and deleted when the new "
    "run writes its first checkpoint, or moved back if it ends before",
    "--resume": "continue RUN (its folder, checkpoints/ or latest checkpoint) from its latest checkpoint, with its own "
    "config, to its own target (or --steps in total)",
    "--on-nonfinite": "NaN/inf loss, penalty or parameter: stop naming the step (raise) or undo the step (skip)",
    "--ema-decay": "sample from an EMA of the generator (fast)",
    "--model": "auto: DCGAN for 28/32/64 px images, an MLP otherwise (8x8 digits, 2-D toys)",
    "--image-size": "resize images to this square size",
    "--channels": "force 1 (gray) or 3 (RGB) channels",
    "--width": "MLP hidden width / DCGAN base width / ResNet dim",
    "--critic-norm": "critic normalisation (batch is refused with the gp / lp losses)",
    "--toy-n": "points drawn for toy data",
    "--conditional": "class-conditional: labels from the data (digits, IDX with its labels file, CIFAR-10, a folder "
    "of class subfolders, .npz with labels); G(z, y), D(x, y)",
    "--conditioning": "conditional critic: projection (Miyato & Koyama 2018, default) or an auxiliary classifier head "
    "(acgan, weights --ac-weight)",
    "--sample-every": "steps between sample pictures (default steps/10)",
    "--keep-checkpoints": "checkpoints kept",
    "--eval-every": "every K steps (and at the end) add the `fastwgan evaluate` metrics to stats.jsonl (eval_*)",
}


def add_parser(sub) -> None:
    """The ``train`` sub-command."""
    h = HELP
    t = options.add_command(sub, "train", h["help"], h["description"])
    t.add_argument("--data", default="digits-train", help=h["--data"])
    t.add_argument("--stream", choices=("auto", "on", "off"), default="auto", help=h["--stream"])
    t.add_argument("--memory-budget", type=float, default=None, metavar="GB", help=h["--memory-budget"])
    t.add_argument("--workers", type=int, default=None, metavar="N", help=h["--workers"])
    t.add_argument("--preset", choices=sorted(PRESETS), default=None, help=h["--preset"])
    t.add_argument("--exclude-class", default=None, metavar="K[,K...]", help=h["--exclude-class"])
    options.add_folder_options(t, h)
    options.add_trainer_options(t, "compiled steps with fused kernels")
    t.add_argument("--on-nonfinite", choices=("raise", "skip"), default="raise", help=h["--on-nonfinite"])
    t.add_argument("--ema-decay", type=float, default=None, help=h["--ema-decay"])
    options.add_threads_option(t)
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=("auto", "mlp", "dcgan", "resnet"), default="auto", help=h["--model"])
    m.add_argument("--image-size", type=int, default=None, help=h["--image-size"])
    m.add_argument("--channels", type=int, choices=(1, 3), default=None, help=h["--channels"])
    m.add_argument("--width", type=int, default=None, help=h["--width"])
    m.add_argument("--critic-norm", choices=("none", "layer", "batch"), default="none", help=h["--critic-norm"])
    m.add_argument("--toy-n", type=int, default=100_000, help=h["--toy-n"])
    m.add_argument("--conditional", action="store_true", help=h["--conditional"])
    m.add_argument("--conditioning", choices=("projection", "acgan"), default="projection", help=h["--conditioning"])
    o = t.add_argument_group("outputs")
    options.add_progress_options(o)
    o.add_argument("--sample-every", type=int, default=None, help=h["--sample-every"])
    o.add_argument("--keep-checkpoints", type=int, default=3, help=h["--keep-checkpoints"])
    o.add_argument("--eval-every", type=int, default=None, metavar="K", help=h["--eval-every"])
    options.add_config_options(t)


def _refuse_new_run_options(args) -> None:
    """--resume continues a run with its own config, model and data: the options of a new run are refused."""
    given = [*options.given_config_options(args), *(["conditional"] if args.conditional else [])]
    if given or args.preset or args.width is not None or args.image_size or args.channels:
        raise ValueError(
            "--resume continues a run with its own config, model and data; drop "
            f"{', '.join('--' + g.replace('_', '-') for g in given) or 'the model/data options'}"
        )


def _resumed_args(args, run: Path, rc: dict) -> tuple[TrainConfig, dict]:
    """The config and model of the run in ``run`` (``rc``: its config.json), and its data spec into ``args`` (read
    as the run read it)."""
    try:
        cfg = TrainConfig.from_dict(rc["config"])
        d = rc["data"]
        args.data, args.image_size, args.channels, args.toy_n = d["source"], d["image_size"], d["channels"], d["toy_n"]
        args.exclude_class = d.get("exclude_class")
        args.conditional = bool(d.get("labels"))
        args.stream = "on" if d.get("streamed") else "off"  # the way the run read its data
        args.trainer, args.ema_decay = rc.get("trainer", "fast"), rc.get("ema_decay")
        return cfg, rc["model"]
    except KeyError as e:
        raise ValueError(f"--resume: {run / 'config.json'} has no {e} entry (not a fastwgan train run?)") from None


def _new_run(args, x, labels, cfg: TrainConfig) -> tuple[TrainConfig, dict, list[str] | None]:
    """A new run's config (its classes counted), model spec and class names, from the data and the options."""
    from ..data.streaming import ImageFolderDataset
    from ..gan import models

    all_labels = x.labels if isinstance(x, ImageFolderDataset) else labels  # a streamed folder's travel with it
    extra, names = {}, None
    if all_labels is not None:
        from ..data import class_names

        names = class_names(args.data)
        k = cfg.num_classes or (len(names) if names else int(all_labels.max()) + 1)
        cfg = cfg.replace(num_classes=k)
        names = names or [str(c) for c in range(k)]  # the ids as names when the data has none
        extra.update(num_classes=k, conditioning=args.conditioning)
    if args.width is not None:
        kind = args.model if args.model != "auto" else models.auto_kind(sample_shape(x))
        extra[{"mlp": "hidden", "dcgan": "width", "resnet": "dim"}[kind]] = args.width
    spec = dict(
        kind=args.model, data_shape=list(sample_shape(x)), latent_dim=cfg.latent_dim, critic_norm=args.critic_norm
    )
    return cfg, {**spec, **extra}, names


def cmd_train(args) -> int:
    from ..core import checkpoint
    from ..core.guards import DivergenceError
    from ..data.streaming import ImageFolderDataset, folder_loader

    # Everything that can be refused is checked here, before the banner and before any file is written.
    if args.resume:
        _refuse_new_run_options(args)
        out, rc, at = training_folder(args, None, 1000)
        cfg, spec = _resumed_args(args, out, rc)
        preset = rc.get("preset")
        x, labels = load_data(args)
        names = rc["data"].get("class_names")
    else:
        preset = args.preset or ("wgan-gp-toy" if args.data.startswith("toy:") else "wgan-gp")
        cfg = options.config_from_args(args, preset)
        name = args.data[4:] if args.data.startswith("toy:") else Path(args.data).stem
        out, _, at = training_folder(args, None, 1000, default_out=f"runs/{name}-{preset}")
        x, labels = load_data(args)
        cfg, spec, names = _new_run(args, x, labels, cfg)
    streamed = isinstance(x, ImageFolderDataset)
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers: expected 0 or more decoding processes, got {args.workers}")
    workers = args.workers if args.workers is not None else min(4, max(0, (os.cpu_count() or 1) - 1))
    cfg = init_distributed(cfg)
    trainer = build_trainer(
        cfg, spec, args.trainer, compile=not args.no_compile, ema_decay=args.ema_decay, threads=args.threads
    )
    if streamed:
        if getattr(args, "eval_every", None):
            raise ValueError(
                "--eval-every: evaluation reads the whole training set, which is streamed here (larger "
                "than --memory-budget); evaluate the run afterwards (`fastwgan evaluate RUN --data ...`)"
            )
        rows = range(min(2, len(x)))  # the models are checked on two decoded images; fit checks every batch
        trainer.check_data(
            torch.stack([x[i][0] if x.labels is not None else x[i] for i in rows]),
            None if x.labels is None else torch.as_tensor(x.labels[: len(rows)]),
        )
    else:
        trainer.check_data(x, labels)
    spec = trainer.generator.spec  # resolved ("auto" -> its kind): `fastwgan sample` rebuilds the models from it
    if args.resume:
        trainer.load_state_dict(checkpoint.load(out))
    shape = [len(x), *x.shape] if streamed else list(x.shape)
    run_config = {
        "preset": preset,
        "model": spec,
        "steps": args.steps,
        "ema_decay": args.ema_decay,
        "data": {
            "source": args.data,
            "image_size": args.image_size,
            "channels": args.channels,
            "toy_n": args.toy_n,
            "exclude_class": args.exclude_class,
            "shape": shape,
            "dtype": "torch.uint8" if streamed else str(x.dtype),
            "labels": cfg.conditional,
            "class_names": names,
            "streamed": streamed,
        },
    }
    if trainer.rank == 0:
        what = f"resuming at step {trainer.step}" if args.resume else "training"
        where = f"{out} (replacing the run there at step {at})" if at is not None and not args.resume else out
        cond = "" if not cfg.conditional else f"class-conditional ({cfg.num_classes} classes, {spec['conditioning']}), "
        how = f", streamed from disk by {workers} worker(s)" if streamed else ""
        print(
            f"fastwgan: {what}: {trainer.name} trainer, {cond}{cfg.loss} loss, {shape[0]} samples of shape "
            f"{tuple(shape[1:])}{how}, {sum(p.numel() for p in trainer.critic.parameters())} critic / "
            f"{sum(p.numel() for p in trainer.generator.parameters())} generator parameters, "
            f"{args.steps} steps in total -> {where}",
            file=sys.stderr,
        )
    if streamed:
        x = folder_loader(
            x,
            cfg.batch_size // trainer.world_size,
            workers=workers,
            device=trainer.device,
            seed=cfg.seed,
            world_size=trainer.world_size,
            rank=trainer.rank,
        )
    try:
        trainer.fit(
            x,
            args.steps,
            labels=labels,
            **options.fit_options(args, out),
            sample_every=args.sample_every,
            keep_checkpoints=args.keep_checkpoints,
            run_config=run_config,
            on_nonfinite=args.on_nonfinite,
            evaluators=_evaluators(args, out, x),
        )
    except DivergenceError as e:
        try:
            kept = f"; the last good checkpoint is {checkpoint.resolve(out)}"
        except (OSError, ValueError):
            kept = "; no checkpoint was written before it"
        raise ValueError(f"{e}{kept} (--on-nonfinite skip undoes bad steps instead)") from None
    code = stopped(trainer, out, "train")
    if code == 0 and trainer.rank == 0:
        print(json.dumps({"run": str(out), **(trainer.history[-1] if trainer.history else {})}))
    return code


def _evaluators(args, out: Path, x) -> tuple:
    """--eval-every K: the `fastwgan evaluate` metrics as a fit() evaluator (see fastwgan.eval.evaluate)."""
    if not getattr(args, "eval_every", None):
        return ()
    from ..eval.evaluate import data_kind, eval_callback

    return (
        eval_callback(
            args.data,
            args.eval_every,
            steps=args.steps,
            cache_dir=out / "eval",
            train_data=x if data_kind(args.data) == "images" else None,
        ),
    )
