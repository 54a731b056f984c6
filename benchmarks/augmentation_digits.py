"""Data augmentation with a class-conditional WGAN-GP, measured (issue 12): does adding generated labelled digits
help a classifier trained on few real ones?

For n in {5, 10, 20, 50} labelled digits per class (drawn from digits-train with the seed) and 3 seeds, the small
digit classifier (fastwgan.eval.classifier: the recipe of the evaluation classifier) is trained four ways, each for the
same number of optimizer steps, and tested on the 500 held-out digits:

    (a) real        the n-per-class real digits
    (b) shifts      the same with random 1-pixel shifts (classic augmentation)
    (c) gan         the real digits + G_PER_CLASS generated digits per class from a conditional WGAN-GP trained
                    on the same n-per-class digits (real digits repeated to as many as the generated ones, so each
                    batch is half real, half generated in expectation)
    (d) gan+shifts  (c) with the shifts

    .venv/bin/python benchmarks/augmentation_digits.py [--quick] [--json benchmarks/results/augmentation_digits.json]
        [--plot docs/img/augmentation_digits.png]      (--from-json FILE: the table and plot of a stored run)

Prints a markdown table (mean +- std over seeds, and wall times) and writes the JSON and the plot.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _study import study_main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fastwgan as fw  # noqa: E402
from fastwgan.core.run import environment  # noqa: E402
from fastwgan.eval import classifier  # noqa: E402

WAYS = ("real", "shifts", "gan", "gan+shifts")


def subset(x, y, per_class: int, seed: int):
    """``per_class`` digits of every class, chosen with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat(
        [
            torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per_class]]
            for c in range(10)
        ]
    )
    return x[idx], y[idx]


def train_gan(x, y, steps: int, seed: int, width: int):
    """A conditional WGAN-GP (projection critic, the bundled MLPs, EMA generator) on (x, y); the fast trainer."""
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, num_classes=10)
    torch.manual_seed(seed)
    G, D = fw.models.mlp((1, 8, 8), cfg.latent_dim, hidden=width, num_classes=10)
    trainer = fw.Trainer(G, D, cfg, ema_decay=0.999)
    trainer.fit(x, steps, labels=y, progress=False)
    return trainer


def run(ns, seeds, gan_steps: int, gan_width: int, clf_steps: int, g_per_class: int) -> dict:
    xt, yt = fw.data.digits_split("train")
    xh, yh = fw.data.digits_split("heldout")
    rows = []
    for n in ns:
        for seed in seeds:
            xs, ys = subset(xt, yt, n, seed)
            t0 = time.perf_counter()
            gan = train_gan(xs, ys, gan_steps, seed, gan_width)
            gan_s = time.perf_counter() - t0
            yg = torch.arange(10).repeat_interleave(g_per_class)
            xg = fw.data.to_uint8(gan.sample(len(yg), seed=seed + 100, labels=yg))
            judge = classifier.digit_classifier(REPO / "runs" / "eval")[0]  # the evaluation classifier (cached)
            gan_cond = classifier.accuracy(judge, xg, yg)
            reps = max(1, len(yg) // len(ys))
            mixed = (torch.cat([xs.repeat(reps, 1, 1, 1), xg]), torch.cat([ys.repeat(reps), yg]))
            for way in WAYS:
                data = mixed if way.startswith("gan") else (xs, ys)
                t1 = time.perf_counter()
                model = classifier.train_classifier(*data, steps=clf_steps, seed=seed, shift=way.endswith("shifts"))
                acc = classifier.accuracy(model, xh, yh)
                rows.append(
                    {
                        "n_per_class": n,
                        "seed": seed,
                        "way": way,
                        "accuracy": acc,
                        "classifier_s": time.perf_counter() - t1,
                        "gan_s": gan_s if way.startswith("gan") else 0.0,
                        "gan_conditional_accuracy": gan_cond,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return {
        "rows": rows,
        "settings": {
            "ns": ns,
            "seeds": seeds,
            "gan_steps": gan_steps,
            "gan_width": gan_width,
            "clf_steps": clf_steps,
            "g_per_class": g_per_class,
        },
        "environment": environment(),
        "threads": torch.get_num_threads(),
    }


def table(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "| real digits per class | " + " | ".join(WAYS) + " | GAN training s | generated digits classified as asked |",
        "|---" * (len(WAYS) + 3) + "|",
    ]
    for n in result["settings"]["ns"]:
        cells = []
        for way in WAYS:
            accs = [r["accuracy"] for r in rows if r["n_per_class"] == n and r["way"] == way]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            cells.append(f"{100 * statistics.mean(accs):.1f} ± {100 * sd:.1f}")
        gan = [r for r in rows if r["n_per_class"] == n and r["way"] == "gan"]
        gan_s = statistics.mean(r["gan_s"] for r in gan)
        cond = statistics.mean(r["gan_conditional_accuracy"] for r in gan)
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {gan_s:.0f} | {100 * cond:.1f}% |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    from fastwgan.core.plots import figure, save

    ns = result["settings"]["ns"]
    fig, (ax,) = figure(1, (6, 4))
    for way in WAYS:
        means, sds = [], []
        for n in ns:
            accs = [r["accuracy"] for r in result["rows"] if r["n_per_class"] == n and r["way"] == way]
            means.append(100 * statistics.mean(accs))
            sds.append(100 * (statistics.stdev(accs) if len(accs) > 1 else 0.0))
        ax.errorbar(ns, means, yerr=sds, marker="o", capsize=3, label=way)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("real labelled digits per class")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("few labelled digits: + shifts, + conditional WGAN-GP samples", fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path, dpi=110)


def _options(a) -> None:
    a.add_argument("--quick", action="store_true", help="a smoke run: n=5, one seed, 50 GAN steps")
    a.add_argument("--gan-steps", type=int, default=2000)
    a.add_argument("--gan-width", type=int, default=256)
    a.add_argument("--clf-steps", type=int, default=800, help="classifier optimizer steps, every way alike")
    a.add_argument("--per-class", type=int, default=100, help="generated digits per class")


def _run(args) -> dict:
    ns, seeds, steps = ([5], [0], 50) if args.quick else ([5, 10, 20, 50], [0, 1, 2], args.gan_steps)
    return run(ns, seeds, steps, args.gan_width, args.clf_steps if not args.quick else 50, args.per_class)


def main(argv=None) -> int:
    return study_main(argv, __doc__, _options, _run, table, plot)


if __name__ == "__main__":
    sys.exit(main())
