"""``fastwgan sample`` and ``fastwgan evaluate``: their options, and generating from or measuring a trained run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from ..gan.restore import load_trainer, run_root
from .folders import run_arg
from .options import DATA_HELP, add_command, add_run_arguments, positive

#: The help of ``sample`` and of its options.
SAMPLE_HELP = {
    "help": "generate samples from a trained run",
    "description": "Generate N samples from a run's latest checkpoint.",
    "--n": "number of samples",
    "--out": "FILE.png: a grid (a scatter plot for toys); DIR: one PNG per sample (a new or empty folder); FILE.npz: "
    "an array",
    "--overwrite": "DIR already holds samples: replace them (a folder holding anything but PNGs is refused)",
    "--class": "class-conditional runs: every sample of class K (default: classes in turn, i %% K)",
    "--per-class": "class-conditional runs: N samples of every class (instead of --n); a .png grid gets one row per "
    "class, a folder one subfolder per class, a .npz `images` and `labels`",
    "--scale": "FILE.png grids: enlarge each image this many times (default: 4 below 32 px, like the run's own sample "
    "grids, else 1)",
    "--seed": "noise seed (default: the run's seed + 1)",
    "--batch-size": "generator batch size",
    "--no-progress": "no progress bar",
}
#: The help of ``evaluate`` and of its options.
EVALUATE_HELP = {
    "help": "compute the metrics that apply to a run (writes RUN/metrics.json)",
    "description": "Evaluate a run's latest checkpoint: toys: modes covered, high-quality fraction, sliced "
    "Wasserstein; digits: classifier FID/KID vs held-out digits next to real-vs-real; stacked-digits: modes of 1000 "
    "and KL from uniform. Writes RUN/metrics.json and prints a table.",
    "run": "the run to evaluate: its folder (latest checkpoint) or one step_N.json of it",
    "--data": "the data to evaluate against, as `train --data` takes it (default: the run's own data): " + DATA_HELP,
    "--n": "generated samples (default: per data kind)",
    "--seed": "sample-noise seed",
    "--inception": "add FID/KID with this TorchScript feature extractor (e.g. NVlabs inception-2015-12-05.pt)",
    "--json": "print the JSON instead of the table",
    "--checkpoint": "the same as RUN; with RUN too, a step_N.json of it to evaluate instead of the latest (a "
    "checkpoint's metrics go to RUN/eval/metrics_step_N.json)",
}


def add_parsers(sub) -> None:
    """The ``sample`` and ``evaluate`` sub-commands."""
    h = SAMPLE_HELP
    s = add_command(sub, "sample", h["help"], h["description"])
    add_run_arguments(s, "to sample from")
    s.add_argument("--n", type=positive, default=64, help=h["--n"])
    s.add_argument("--out", required=True, help=h["--out"])
    s.add_argument("--overwrite", action="store_true", help=h["--overwrite"])
    s.add_argument("--class", dest="cls", type=int, default=None, metavar="K", help=h["--class"])
    s.add_argument("--per-class", type=positive, default=None, metavar="N", help=h["--per-class"])
    s.add_argument("--scale", type=positive, default=None, help=h["--scale"])
    s.add_argument("--seed", type=int, default=None, help=h["--seed"])
    s.add_argument("--batch-size", type=int, default=1024, help=h["--batch-size"])
    s.add_argument("--no-progress", action="store_true", help=h["--no-progress"])

    h = EVALUATE_HELP
    e = add_command(sub, "evaluate", h["help"], h["description"])
    e.add_argument("run", nargs="?", metavar="RUN", help=h["run"])
    e.add_argument("--data", default=None, metavar="SOURCE", help=h["--data"])
    e.add_argument("--n", type=int, default=None, help=h["--n"])
    e.add_argument("--seed", type=int, default=0, help=h["--seed"])
    e.add_argument("--inception", default=None, metavar="FILE", help=h["--inception"])
    e.add_argument("--json", action="store_true", help=h["--json"])
    e.add_argument("--checkpoint", default=None, metavar="RUN|STEP_JSON", help=h["--checkpoint"])


def _sample_folder(out: Path, overwrite: bool) -> None:
    """A folder ``sample`` may write into: new or empty, or (``--overwrite``) holding only earlier samples (PNGs,
    class folders of PNGs), which are removed; old and new samples are never mixed."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out: {out} is a file; give a folder, FILE.png or FILE.npz")
    files = [p for p in out.rglob("*") if p.is_file()]
    if not files:
        return
    if not overwrite:
        raise ValueError(
            f"--out: {out} already holds {len(files)} files; give a new or empty folder, or --overwrite "
            "to replace the samples there"
        )
    foreign = [p for p in files if p.suffix.lower() != ".png"]
    if foreign:
        raise ValueError(
            f"--out: {out} holds files that are not samples (e.g. {foreign[0]}); --overwrite only "
            "replaces a folder of samples"
        )
    shutil.rmtree(out)


def cmd_sample(args) -> int:
    from .. import data
    from ..core import plots
    from .inference import write_samples

    run = run_arg(args)
    out = Path(args.out)
    if out.suffix and out.suffix not in (".png", ".npz"):
        raise ValueError(f"--out: {out} must end in .png or .npz, or be a folder")
    if args.scale is not None and out.suffix != ".png":
        raise ValueError("--scale enlarges the images of a FILE.png grid; --out is not a .png")
    if args.cls is not None and args.per_class is not None:
        raise ValueError("--class K samples one class, --per-class N every class: give one of them")
    if not out.suffix:
        _sample_folder(out, args.overwrite)
    trainer, rc = load_trainer(run)
    k = trainer.config.num_classes
    if k is None and (args.cls is not None or args.per_class is not None):
        raise ValueError(f"--class / --per-class: {run} is not a class-conditional run")
    n, labels, nrow = args.n, args.cls, None
    if args.per_class is not None:
        n, nrow = args.per_class * k, args.per_class
        labels = torch.arange(k).repeat_interleave(args.per_class)
    if out.suffix == ".png":  # one picture: the samples fit in memory by nature
        x = trainer.sample(n, seed=args.seed, batch_size=args.batch_size, labels=labels)
        if x.dim() == 2:
            plots.scatter(x, out, title=f"{n} samples")
        else:
            data.save_grid(x, out, nrow=nrow, scale=args.scale)  # None: small images enlarged like the run's grids
    else:  # a folder or .npz: streamed batch by batch
        write_samples(
            trainer,
            n,
            out,
            seed=args.seed,
            batch_size=args.batch_size,
            progress=False if args.no_progress else None,
            labels=labels,
            class_names=(rc.get("data") or {}).get("class_names"),
        )
    print(f"fastwgan: wrote {n} samples to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    from ..eval import evaluate

    if args.run and args.checkpoint:  # RUN and one step_N.json of it
        run, ckpt = args.run, args.checkpoint
    else:
        run, ckpt = run_arg(args, "fastwgan evaluate runs/digits-train-wgan-gp"), None
    if Path(run).is_file():  # a step_N.json given as the run: that checkpoint of its run
        run, ckpt = run_root(run), run
    extractor = None
    if args.inception:
        from ..eval.features import inception

        extractor = inception(args.inception)
    result = evaluate.evaluate_run(
        run, n=args.n, seed=args.seed, extractor=extractor, checkpoint=ckpt, source=args.data
    )
    written = result.pop("written")
    print(json.dumps(result, indent=1) if args.json else evaluate.format_table(result))
    print(f"fastwgan: wrote {written}", file=sys.stderr)
    return 0
