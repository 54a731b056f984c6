"""The options several commands share, and what they become: ``COMMON`` (every command's) and ``add_command``; the
TrainConfig fields (and the config they give); the run a command reads (RUN or --checkpoint RUN); a training
command's folder, trainer, progress and thread options (and the ``fit`` keywords they give); the help on data
sources; the positive-integer type."""

from __future__ import annotations

import argparse
import dataclasses

from ..core.config import TrainConfig
from ..core.threads import threads_arg

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

#: The TrainConfig fields that take two numbers.
PAIRS = ("betas", "ac_weight")

#: The options every command takes, before or after its name.
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors")

DATA_HELP = (
    "'digits' (bundled UCI handwritten digits, 8x8; 'digits-train' / 'digits-heldout' is a fixed 1297 / 500 "
    "split, 'stacked-digits' three digits in three channels: 1000 modes; 'digits-m', '-train', '-heldout': "
    "the same digits blended with colour textures, 3x8x8), "
    "'toy:8gaussians|25gaussians|swissroll', "
    "or a path: image folder, MNIST IDX file (.gz ok), CIFAR-10 batch or folder, .npz/.npy"
)


def add_command(sub, name: str, help: str, description: str, **kw) -> argparse.ArgumentParser:
    """A sub-command of ``sub`` (a parser's subparsers) that takes the ``COMMON`` options."""
    return sub.add_parser(name, parents=[COMMON], help=help, description=description, **kw)


def add_config_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = (), rename: dict | None = None) -> None:
    """One option per TrainConfig field, except ``skip``; ``rename``: {field: help} where a command gives a field
    another meaning (the two-domain commands' learning rates)."""
    g = p.add_argument_group("training config (override the preset; see fastwgan.TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = (rename or {}).get(f.name, FIELD_HELP[f.name])
        if f.name in PAIRS:
            g.add_argument(flag, type=float, nargs=2, default=None, metavar=("A", "B"), help=text)
        else:
            typ = {"int": int, "float": float, "int | None": int}.get(
                f.type if isinstance(f.type, str) else f.type.__name__, str
            )
            g.add_argument(flag, type=typ, default=None, help=text)


def given_config_options(args) -> dict:
    """{field: value} of the TrainConfig options given on the command line (the pairs as tuples)."""
    over = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    return {k: tuple(v) if k in PAIRS else v for k, v in over.items() if v is not None}


def config_from_args(args, preset: str) -> TrainConfig:
    """The ``preset`` with the TrainConfig options given on the command line over it."""
    return TrainConfig.preset(preset, **given_config_options(args))


def add_run_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """The one way a command names the run it reads: positional RUN, or --checkpoint RUN (the older spelling)."""
    p.add_argument(
        "run", nargs="?", metavar="RUN", help=f"the run {what}: its folder, its checkpoints/ or one step_N.json of it"
    )
    p.add_argument("--checkpoint", default=None, metavar="RUN", help="the same as RUN")


def positive(v: str) -> int:
    """argparse type: an integer >= 1."""
    if v.lstrip("-").isdigit() and int(v) >= 1:
        return int(v)
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}")


def add_folder_options(p: argparse.ArgumentParser, help: dict) -> None:
    """--out, --steps (a total), --overwrite and --resume RUN, with their ``help`` {flag: text}: where a training
    command writes and how far (``fastwgan.cli.folders.training_folder`` applies them)."""
    p.add_argument("--out", default=None, help=help["--out"])
    p.add_argument("--steps", type=positive, default=None, help=help["--steps"])
    p.add_argument("--overwrite", action="store_true", help=help["--overwrite"])
    p.add_argument("--resume", default=None, metavar="RUN", help=help["--resume"])


def add_trainer_options(p: argparse.ArgumentParser, fast: str, reference: str = "the eager oracle") -> None:
    """--trainer fast|reference (``fast``, ``reference``: what each is) and --no-compile."""
    trainers = f"fast: {fast} (default); reference: {reference}"
    p.add_argument("--trainer", choices=("fast", "reference"), default="fast", help=trainers)
    p.add_argument("--no-compile", action="store_true", help="fast trainer without torch.compile (eager)")


def add_progress_options(p: argparse.ArgumentParser, log_every: int = 10) -> None:
    """What a training loop reports and keeps: --log-every, --checkpoint-every, --no-progress."""
    p.add_argument("--log-every", type=positive, default=log_every, help="steps between stats.jsonl lines")
    p.add_argument("--checkpoint-every", type=positive, default=None, help="steps between checkpoints (default: end)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def fit_options(args, out) -> dict:
    """The keywords of a trainer's ``fit`` that the folder and progress options give: the run folder ``out``,
    --overwrite, --log-every, --checkpoint-every, --no-progress."""
    progress = False if args.no_progress else None
    return dict(
        out=out,
        overwrite=args.overwrite,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        progress=progress,
    )


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """--threads auto|N: the fast trainers' CPU threads (``fastwgan.core.threads``)."""
    p.add_argument(
        "--threads",
        type=threads_arg,
        default="auto",
        metavar="auto|N",
        help="CPU threads of the fast trainer: auto (default) measures and re-chooses when other "
        "processes compete for the cores; N fixes the count (bitwise-repeatable runs)",
    )
