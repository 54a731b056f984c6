"""`fastwgan` command line: a thin shell over the Python API.

    fastwgan train  --data digits-train|PATH|toy:NAME --preset wgan-gp|wgan-clip|wgan-gp-toy --steps N --out DIR
    fastwgan train  --resume RUN --steps N     (N: the run's new total)
    fastwgan sample RUN --n N --out FILE.png|DIR|FILE.npz
    fastwgan evaluate RUN                      (writes RUN/metrics.json)
    fastwgan score RUN INPUT [--out scores.csv]
    fastwgan translate train --source A --target B --out RUN   (unpaired translation, fastwgan.translate)
    fastwgan translate apply --checkpoint RUN INPUT --out OUT [--direction s2t|t2s]
    fastwgan adapt --source A --target B --out RUN [--eval-data C]   (WDGRL, fastwgan.adapt)

Every command that reads a run takes it as the positional RUN (a run folder, its checkpoints/ or a step_N.json;
``--checkpoint RUN`` is the same). Errors are one line (exit 2); ``--debug`` anywhere shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import torch

from .cli_domains import add_parsers as _add_domain_parsers
from .cli_domains import cmd_adapt, cmd_translate
from .cli_runs import cmd_encode, cmd_evaluate, cmd_sample, cmd_score
from .config import PRESETS, TrainConfig
from .restore import build_trainer, load_trainer  # noqa: F401 (load_trainer: public via the CLI too)
from .threads import threads_arg

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
    "num_classes": "K classes for class-conditional training (default with --conditional: from the data's labels)",
    "ac_weight": "auxiliary-classifier loss weights (critic, generator), with --conditioning acgan",
    "augment": "DiffAugment of every critic input: comma-separated color, translation, cutout (e.g. "
    "'translation,cutout'); default none, the papers' setting",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where the help is, not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        triton = version("triton")
    except PackageNotFoundError:
        triton = "not installed"
    return f"fastwgan {__version__} (torch {torch.__version__}, triton {triton}, Python {sys.version.split()[0]})"


def _add_config_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = (), rename: dict | None = None) -> None:
    """One option per TrainConfig field, except ``skip``; ``rename``: {field: help} where a command gives a field
    another meaning (the two-domain commands' learning rates)."""
    g = p.add_argument_group("training config (override the preset; see fastwgan.TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = (rename or {}).get(f.name, FIELD_HELP[f.name])
        if f.name in ("betas", "ac_weight"):
            g.add_argument(flag, type=float, nargs=2, default=None, metavar=("A", "B"), help=text)
        else:
            typ = {"int": int, "float": float, "int | None": int}.get(
                f.type if isinstance(f.type, str) else f.type.__name__, str
            )
            g.add_argument(flag, type=typ, default=None, help=text)


DATA_HELP = (
    "'digits' (bundled UCI handwritten digits, 8x8; 'digits-train' / 'digits-heldout' is a fixed 1297 / 500 "
    "split, 'stacked-digits' three digits in three channels: 1000 modes; 'digits-m', '-train', '-heldout': "
    "the same digits blended with colour textures, 3x8x8), "
    "'toy:8gaussians|25gaussians|swissroll', "
    "or a path: image folder, MNIST IDX file (.gz ok), CIFAR-10 batch or folder, .npz/.npy"
)


def _run_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """The one way a command names the run it reads: positional RUN, or --checkpoint RUN (the older spelling)."""
    p.add_argument(
        "run", nargs="?", metavar="RUN", help=f"the run {what}: its folder, its checkpoints/ or one step_N.json of it"
    )
    p.add_argument("--checkpoint", default=None, metavar="RUN", help="the same as RUN")


def _positive(v: str) -> int:
    if v.lstrip("-").isdigit() and int(v) >= 1:
        return int(v)
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # options every command takes, before or after its name
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors"
    )
    p = _Parser(prog="fastwgan", description="Train Wasserstein GANs (WGAN, WGAN-GP) on images.")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(
        dest="command", required=True, metavar="{train,sample,evaluate,score,encode,translate,adapt}"
    )

    t = sub.add_parser(
        "train",
        parents=[common],
        help="train on a dataset and write a run folder",
        description="Train a WGAN and write a run folder: config.json, stats.jsonl, "
        "samples/*.png, plots/losses.png, checkpoints/. A run folder holds one run: "
        "an existing one is continued with --resume or replaced with --overwrite.",
    )
    t.add_argument("--data", default="digits-train", help=DATA_HELP + " (default: digits-train)")
    t.add_argument(
        "--stream",
        choices=("auto", "on", "off"),
        default="auto",
        help="an image folder: decode it in DataLoader workers while training instead of loading it "
        "whole (auto: when its decoded size exceeds --memory-budget)",
    )
    t.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        metavar="GB",
        help="decoded data up to this size is loaded whole (default: a quarter of physical memory)",
    )
    t.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decoding processes when streaming (default: CPU cores - 1, at most 4; 0 decodes in the training process)",
    )
    t.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="paper settings (default: wgan-gp; wgan-gp-toy for toy data)",
    )
    t.add_argument(
        "--exclude-class",
        default=None,
        metavar="K[,K...]",
        help="train without these classes of a labelled --data (e.g. digits-train): the normal data of "
        "an anomaly detector; `fastwgan score RUN digits-heldout --anomalous-class K` then measures "
        "it (leave-one-class-out)",
    )
    t.add_argument(
        "--steps",
        type=_positive,
        default=None,
        help="generator updates in total, counting those a resumed run has made (default 1000; with "
        "--resume the run's own target)",
    )
    t.add_argument("--out", default=None, help="run folder (default runs/<data>-<preset>); must be new or empty")
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out: the old run is moved aside (OUT.replaced-TIME) and deleted when "
        "the new run writes its first checkpoint, or moved back if it ends before",
    )
    t.add_argument(
        "--trainer",
        choices=("fast", "reference"),
        default="fast",
        help="fast: compiled steps with fused kernels (default); reference: the eager oracle",
    )
    t.add_argument("--no-compile", action="store_true", help="fast trainer without torch.compile (eager)")
    t.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue RUN (its folder, checkpoints/ or latest checkpoint) from its latest checkpoint, "
        "with its own config, to its own target (or --steps in total)",
    )
    t.add_argument(
        "--on-nonfinite",
        choices=("raise", "skip"),
        default="raise",
        help="NaN/inf loss, penalty or parameter: stop naming the step (raise) or undo the step (skip)",
    )
    t.add_argument("--ema-decay", type=float, default=None, help="sample from an EMA of the generator (fast)")
    t.add_argument(
        "--threads",
        type=threads_arg,
        default="auto",
        metavar="auto|N",
        help="CPU threads of the fast trainer: auto (default) measures and re-chooses when other "
        "processes compete for the cores; N fixes the count (bitwise-repeatable runs)",
    )
    m = t.add_argument_group("model")
    m.add_argument(
        "--model",
        choices=("auto", "mlp", "dcgan", "resnet"),
        default="auto",
        help="auto: DCGAN for 28/32/64 px images, an MLP otherwise (8x8 digits, 2-D toys)",
    )
    m.add_argument("--image-size", type=int, default=None, help="resize images to this square size")
    m.add_argument("--channels", type=int, choices=(1, 3), default=None, help="force 1 (gray) or 3 (RGB) channels")
    m.add_argument("--width", type=int, default=None, help="MLP hidden width / DCGAN base width / ResNet dim")
    m.add_argument(
        "--critic-norm",
        choices=("none", "layer", "batch"),
        default="none",
        help="critic normalisation (batch is refused with the gp / lp losses)",
    )
    m.add_argument("--toy-n", type=int, default=100_000, help="points drawn for toy data")
    m.add_argument(
        "--conditional",
        action="store_true",
        help="class-conditional: labels from the data (digits, IDX with its labels file, CIFAR-10, a "
        "folder of class subfolders, .npz with labels); G(z, y), D(x, y)",
    )
    m.add_argument(
        "--conditioning",
        choices=("projection", "acgan"),
        default="projection",
        help="conditional critic: projection (Miyato & Koyama 2018, default) or an auxiliary classifier "
        "head (acgan, weights --ac-weight)",
    )
    o = t.add_argument_group("outputs")
    o.add_argument("--log-every", type=int, default=10, help="steps between stats.jsonl lines")
    o.add_argument("--sample-every", type=int, default=None, help="steps between sample pictures (default steps/10)")
    o.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default: end)")
    o.add_argument("--keep-checkpoints", type=int, default=3, help="checkpoints kept")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="K",
        help="every K steps (and at the end) add the `fastwgan evaluate` metrics to stats.jsonl (eval_*)",
    )
    _add_config_options(t)

    s = sub.add_parser(
        "sample",
        parents=[common],
        help="generate samples from a trained run",
        description="Generate N samples from a run's latest checkpoint.",
    )
    _run_arguments(s, "to sample from")
    s.add_argument("--n", type=_positive, default=64, help="number of samples")
    s.add_argument(
        "--out",
        required=True,
        help="FILE.png: a grid (a scatter plot for toys); DIR: one PNG per sample (a new or empty folder); "
        "FILE.npz: an array",
    )
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="DIR already holds samples: replace them (a folder holding anything but PNGs is refused)",
    )
    s.add_argument(
        "--class",
        dest="cls",
        type=int,
        default=None,
        metavar="K",
        help="class-conditional runs: every sample of class K (default: classes in turn, i %% K)",
    )
    s.add_argument(
        "--per-class",
        type=_positive,
        default=None,
        metavar="N",
        help="class-conditional runs: N samples of every class (instead of --n); a .png grid gets one "
        "row per class, a folder one subfolder per class, a .npz `images` and `labels`",
    )
    s.add_argument(
        "--scale",
        type=_positive,
        default=None,
        help="FILE.png grids: enlarge each image this many times (default: 4 below 32 px, like the "
        "run's own sample grids, else 1)",
    )
    s.add_argument("--seed", type=int, default=None, help="noise seed (default: the run's seed + 1)")
    s.add_argument("--batch-size", type=int, default=1024, help="generator batch size")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser(
        "evaluate",
        parents=[common],
        help="compute the metrics that apply to a run (writes RUN/metrics.json)",
        description="Evaluate a run's latest checkpoint: toys: modes covered, high-quality fraction, "
        "sliced Wasserstein; digits: classifier FID/KID vs held-out digits next to "
        "real-vs-real; stacked-digits: modes of 1000 and KL from uniform. Writes "
        "RUN/metrics.json and prints a table.",
    )
    e.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help="the run to evaluate: its folder (latest checkpoint) or one step_N.json of it",
    )
    e.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="the data to evaluate against, as `train --data` takes it (default: the run's own data): " + DATA_HELP,
    )
    e.add_argument("--n", type=int, default=None, help="generated samples (default: per data kind)")
    e.add_argument("--seed", type=int, default=0, help="sample-noise seed")
    e.add_argument(
        "--inception",
        default=None,
        metavar="FILE",
        help="add FID/KID with this TorchScript feature extractor (e.g. NVlabs inception-2015-12-05.pt)",
    )
    e.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    e.add_argument(
        "--checkpoint",
        default=None,
        metavar="RUN|STEP_JSON",
        help="the same as RUN; with RUN too, a step_N.json of it to evaluate instead of the latest "
        "(a checkpoint's metrics go to RUN/eval/metrics_step_N.json)",
    )

    c = sub.add_parser(
        "score",
        parents=[common],
        help="anomaly scores for images (higher = more anomalous), as CSV",
        description="Score each input for anomaly, higher = more anomalous, by --method: fanogan "
        "(f-AnoGAN: G(E(x)) residuals; needs `fastwgan encode RUN` first), critic (minus "
        "the critic's output) or knn (distance to the nearest training images). Writes "
        "index,name,score rows (fanogan adds image,feature: the two residuals).",
        usage="fastwgan score [-h] RUN INPUT [--method fanogan|critic|knn] [--k N] [--class K] "
        "[--anomalous-class K[,K...] | --labels FILE] [--maps PNG] [--out CSV] [--batch-size N]",
    )
    _run_arguments(c, "whose critic scores")
    c.add_argument(
        "input",
        nargs="?",
        metavar="INPUT",
        help="what to score: any --data of `fastwgan train` (a built-in name such as digits-heldout "
        "or toy:8gaussians, an image folder, a .npz / .npy array, ...)",
    )
    c.add_argument("--out", default=None, help="CSV file (default: print to stdout)")
    c.add_argument(
        "--class",
        dest="cls",
        type=int,
        default=None,
        metavar="K",
        help="class-conditional runs: score every input as class K (default: the input's own labels)",
    )
    c.add_argument(
        "--method",
        choices=("fanogan", "critic", "knn"),
        default="critic",
        help="fanogan, critic (default) or knn; every method: higher = more anomalous",
    )
    c.add_argument("--k", type=_positive, default=1, help="knn: neighbours averaged (default 1)")
    c.add_argument(
        "--anomalous-class",
        default=None,
        metavar="K[,K...]",
        help="INPUT's classes that count as anomalies (INPUT must carry labels, e.g. digits-heldout): "
        "adds an `anomalous` column and prints the AUROC (leave-one-class-out: the class the run "
        "never saw)",
    )
    c.add_argument(
        "--labels",
        dest="truth",
        default=None,
        metavar="FILE",
        help="ground truth, 1 = anomalous, one per input (.npy, or text with one 0/1 per line): adds an "
        "`anomalous` column and prints the AUROC",
    )
    c.add_argument(
        "--maps",
        default=None,
        metavar="PNG",
        help="fanogan: also write a picture of inputs, reconstructions G(E(x)) and |x - G(E(x))| (the first 32 inputs)",
    )
    c.add_argument("--batch-size", type=int, default=1024, help="batch size")

    n = sub.add_parser(
        "encode",
        parents=[common],
        help="train f-AnoGAN's encoder on a run (for score --method fanogan)",
        description="Train the izi_f encoder E of f-AnoGAN (Schlegl et al. 2019) on a trained run: G "
        "and the critic frozen, the run's own training data (normal data only), loss "
        "mse(x, G(E(x))) + kappa mse(f(x), f(G(E(x)))). Written to RUN/encoder.",
    )
    _run_arguments(n, "whose GAN the encoder inverts")
    n.add_argument("--steps", type=_positive, default=2000, help="encoder updates in total (default 2000)")
    n.add_argument("--resume", action="store_true", help="continue RUN/encoder to --steps")
    n.add_argument("--overwrite", action="store_true", help="replace RUN/encoder with a new encoder")
    n.add_argument("--kappa", type=float, default=None, help="weight of the feature residual (default 1, the paper)")
    n.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-4)")
    n.add_argument("--batch-size", type=_positive, default=None, help="batch size (default 64)")
    n.add_argument("--seed", type=int, default=None, help="encoder initialisation and batch draws (default 0)")
    n.add_argument(
        "--trainer",
        choices=("fast", "reference"),
        default="fast",
        help="fast: flat buffer, fused Adam, compiled (default); reference: the eager twin",
    )
    n.add_argument("--no-compile", action="store_true", help="fast trainer without torch.compile")
    n.add_argument("--log-every", type=_positive, default=50)
    n.add_argument("--checkpoint-every", type=_positive, default=None)
    n.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_domain_parsers(sub, common, _add_config_options, DATA_HELP)
    return p


def _config_from_args(args) -> TrainConfig:
    preset = args.preset or ("wgan-gp-toy" if args.data.startswith("toy:") else "wgan-gp")
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    for name in ("betas", "ac_weight"):
        if name in over:
            over[name] = tuple(over[name])
    return TrainConfig.preset(preset, **over), preset


def _load_data(args):
    """(samples, labels or None): labels when the run is class-conditional (--conditional or --num-classes).
    A streamed image folder (--stream) comes back as (ImageFolderDataset, None): its labels travel with it."""
    from . import data

    conditional = args.conditional or args.num_classes is not None
    streamed = _streamed_folder(args, conditional)
    if streamed is not None:
        if args.exclude_class is not None:
            raise ValueError(
                "--exclude-class selects from data loaded whole; this folder is streamed (--stream off "
                "loads it whole, or give a folder without those classes)"
            )
        return streamed, None
    if args.data.startswith("toy:"):
        if conditional:
            raise ValueError(
                f"--conditional: {args.data} has no labels (use labelled images: digits-train, an "
                "IDX file with its labels, CIFAR-10, a folder of class subfolders, .npz with labels)"
            )
        return data.toy(args.data[4:], n=args.toy_n, seed=0), None
    if args.exclude_class is not None:
        return without_classes(args.data, args.exclude_class, args.image_size, args.channels, conditional)
    if conditional:
        return data.load(args.data, image_size=args.image_size, channels=args.channels, labels=True)
    return data.load(args.data, image_size=args.image_size, channels=args.channels), None


def class_list(text: str, flag: str) -> list[int]:
    """'3' or '3,5' -> [3] / [3, 5] (the class options of train and score)."""
    try:
        ks = [int(k) for k in str(text).split(",") if k.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 0:
        raise ValueError(f"{flag}: expected class ids such as 3 or 3,5, got {text!r}")
    return ks


def without_classes(source: str, exclude: str, image_size, channels, conditional: bool):
    """--exclude-class: a labelled source without some classes, as (x, labels or None)."""
    from . import data

    ks = class_list(exclude, "--exclude-class")
    if source.startswith("toy:"):
        raise ValueError(f"--exclude-class: {source} has no classes")
    try:
        x, y = data.load(source, image_size=image_size, channels=channels, labels=True)
    except data.DataError as e:
        raise ValueError(f"--exclude-class: {source} carries no class labels ({e})") from None
    missing = [k for k in ks if not bool((y == k).any())]
    if missing:
        raise ValueError(
            f"--exclude-class: {source} has no images of class {missing[0]} (its classes: {sorted(set(y.tolist()))})"
        )
    keep = ~torch.isin(y, torch.tensor(ks))
    if not bool(keep.any()):
        raise ValueError(f"--exclude-class {exclude}: nothing of {source} is left to train on")
    return x[keep], (y[keep] if conditional else None)


def _streamed_folder(args, labels: bool):
    """The folder as an ImageFolderDataset when it is to be streamed (--stream on, or auto and larger than the
    budget), else None (loaded whole)."""
    from . import data, streaming

    path = Path(args.data)
    folder = (
        not args.data.startswith("toy:")
        and not data.is_named(args.data)
        and path.is_dir()
        and not data.is_cifar_dir(path)
    )
    if args.stream == "off" or (not folder and args.stream == "auto"):
        return None
    if not folder:
        raise ValueError(f"--stream on: streaming decodes image folders; {args.data} is not one (it is loaded whole)")
    if args.memory_budget is not None and args.memory_budget <= 0:
        raise ValueError(f"--memory-budget: expected a positive size in GB, got {args.memory_budget:g}")
    ds = streaming.ImageFolderDataset(path, image_size=args.image_size, channels=args.channels, labels=labels)
    budget = streaming.memory_budget() if args.memory_budget is None else int(args.memory_budget * 2**30)
    return ds if args.stream == "on" or ds.nbytes > budget else None


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
    given += ["conditional"] if args.conditional else []
    if given or args.preset or args.width is not None or args.image_size or args.channels:
        raise ValueError(
            "--resume continues a run with its own config, model and data; drop "
            f"{', '.join('--' + g.replace('_', '-') for g in given) or 'the model/data options'}"
        )
    rc = read_config(args.resume)
    try:
        cfg = TrainConfig.from_dict(rc["config"])
        d = rc["data"]
        args.data, args.image_size, args.channels, args.toy_n = d["source"], d["image_size"], d["channels"], d["toy_n"]
        args.exclude_class = d.get("exclude_class")
        args.conditional = bool(d.get("labels"))
        args.stream = "on" if d.get("streamed") else "off"  # the way the run read its data
        args.trainer, args.ema_decay = rc.get("trainer", "fast"), rc.get("ema_decay")
        return cfg, rc["model"], rc
    except KeyError as e:
        raise ValueError(f"--resume: {args.resume}/config.json has no {e} entry (not a fastwgan train run?)") from None


def _sample_shape(x) -> tuple[int, ...]:
    """The shape of one training sample: a tensor's rows, or a streamed folder's decoded images."""
    from .streaming import ImageFolderDataset

    return tuple(x.shape) if isinstance(x, ImageFolderDataset) else tuple(x.shape[1:])


def cmd_train(args) -> int:
    import os

    from . import checkpoint, models
    from .guards import DivergenceError
    from .run import check_out, run_step
    from .streaming import ImageFolderDataset, folder_loader

    # Everything that can be refused is checked here, before the banner and before any file is written.
    if args.resume:
        from .run import resume_folder

        args.resume = str(resume_folder(args.resume))
        if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ValueError(f"--resume continues {args.resume} in its own folder; drop --out {args.out}")
        if args.overwrite:
            raise ValueError("--overwrite starts a new run and --resume continues one: give one of them")
        cfg, spec, rc = _resume_args(args)
        preset, out = rc.get("preset"), Path(args.resume)
        at = run_step(out)
        if not at:
            raise ValueError(f"--resume: {out} has no checkpoint to continue from")
        if args.steps is None:  # the run's own target (runs written before fastwgan recorded it: the old default)
            args.steps = int(rc.get("steps") or 1000)
            if args.steps <= at:
                raise ValueError(
                    f"--resume: {out} already reached its target of {args.steps} steps; give a new "
                    f"total, e.g. --steps {2 * args.steps}"
                )
        if args.steps <= at:
            raise ValueError(
                f"--resume: {out} is already at step {at} and --steps is the run's total; ask for more "
                f"than {at} (e.g. --steps {at + args.steps})"
            )
        x, labels = _load_data(args)
        streamed = isinstance(x, ImageFolderDataset)
        names = rc["data"].get("class_names")
    else:
        args.steps = args.steps or 1000
        cfg, preset = _config_from_args(args)
        name = args.data[4:] if args.data.startswith("toy:") else Path(args.data).stem
        out = Path(args.out or f"runs/{name}-{preset}")
        at = check_out(out, overwrite=args.overwrite)
        x, labels = _load_data(args)
        streamed = isinstance(x, ImageFolderDataset)
        all_labels = x.labels if streamed else labels  # a streamed folder's labels travel with its batches
        extra, names = {}, None
        if all_labels is not None:
            from .data import class_names

            names = class_names(args.data)
            k = cfg.num_classes or (len(names) if names else int(all_labels.max()) + 1)
            cfg = cfg.replace(num_classes=k)
            names = names or [str(c) for c in range(k)]  # the ids as names when the data has none
            extra.update(num_classes=k, conditioning=args.conditioning)
        if args.width is not None:
            kind = args.model if args.model != "auto" else models.auto_kind(_sample_shape(x))
            extra[{"mlp": "hidden", "dcgan": "width", "resnet": "dim"}[kind]] = args.width
        spec = dict(
            kind=args.model,
            data_shape=list(_sample_shape(x)),
            latent_dim=cfg.latent_dim,
            critic_norm=args.critic_norm,
            **extra,
        )
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers: expected 0 or more decoding processes, got {args.workers}")
    workers = args.workers if args.workers is not None else min(4, max(0, (os.cpu_count() or 1) - 1))
    cfg = _init_distributed(cfg)
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
            out=out,
            overwrite=args.overwrite,
            log_every=args.log_every,
            sample_every=args.sample_every,
            checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints,
            progress=False if args.no_progress else None,
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
    if trainer.stopped_by:
        if trainer.rank == 0:
            print(
                f"fastwgan train: stopped by {trainer.stopped_by} at step {trainer.step}; checkpoint written to "
                f"{out / 'checkpoints'}. Resume with: fastwgan train --resume {out}",
                file=sys.stderr,
            )
        import signal

        return 128 + int(getattr(signal, trainer.stopped_by))
    last = trainer.history[-1] if trainer.history else {}
    if trainer.rank == 0:
        print(json.dumps({"run": str(out), **last}))
    return 0


def _evaluators(args, out: Path, x) -> tuple:
    """--eval-every K: the `fastwgan evaluate` metrics as a fit() evaluator (see fastwgan.evaluate)."""
    if not getattr(args, "eval_every", None):
        return ()
    from .evaluate import data_kind, eval_callback

    return (
        eval_callback(
            args.data,
            args.eval_every,
            steps=args.steps,
            cache_dir=out / "eval",
            train_data=x if data_kind(args.data) == "images" else None,
        ),
    )


def _ranks_finish_together() -> None:
    """Under torchrun, after a command ended normally on every rank: a barrier before the process group is torn
    down. Rank 0 writes the run folder's last files after the last collective, so the other ranks used to destroy
    their gloo process group and exit first, and 1 run in ~13 aborted at exit ("terminate called without an active
    exception", SIGABRT on rank 1 after rank 0 had finished: tests/test_reliability.py's torchrun test, measured with
    a busy process on one core)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The library's notes (logger "fastwgan": a run folder moved aside, stats lines dropped) as 'fastwgan: ...'
    # lines on stderr, for this command only.
    log = logging.getLogger("fastwgan")
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter("fastwgan: %(message)s"))
    log.addHandler(notes)
    level, log.level = log.level, (logging.DEBUG if args.debug else logging.INFO)
    try:
        code = {
            "train": cmd_train,
            "sample": cmd_sample,
            "evaluate": cmd_evaluate,
            "score": cmd_score,
            "encode": cmd_encode,
            "translate": cmd_translate,
            "adapt": cmd_adapt,
        }[args.command](args)
        _ranks_finish_together()
        return code
    except (ValueError, OSError, TypeError) as e:  # bad input: one clear line (the traceback with --debug)
        if args.debug:
            raise
        print(f"fastwgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (which stops cleanly itself): one line
        if args.debug:
            raise
        print(
            f"fastwgan {args.command}: interrupted (Ctrl-C); a run keeps what its last checkpoint holds",
            file=sys.stderr,
        )
        return 130
    finally:
        log.removeHandler(notes)
        log.setLevel(level)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
