"""DiffAugment on little data, measured (issue 13): does augmenting every critic input help a WGAN-GP trained on
10% of the digits, and does it cost anything on 100%?

For each data fraction (10%: 130 digits of digits-train chosen with the seed; 100%: all 1297), each policy
(none, the paper's setting; the given DiffAugment policies) and each seed, an unconditional WGAN-GP (the bundled
digit MLPs, width 256, the fast trainer, EMA generator 0.999 for sampling, every arm alike) trains for the same
number of steps; every EVAL_EVERY steps its samples are scored with the classifier-FID against the 500 held-out
digits (`fastwgan.eval.evaluate.evaluate_trainer`: the evaluation digit classifier's features, 500 samples, a fixed
noise seed). Lower is better; two real sets of digits score `fid_classifier_real`.

    .venv/bin/python benchmarks/diffaugment_digits.py [--quick] [--json benchmarks/results/diffaugment_digits.json]
        [--plot docs/img/diffaugment_digits.png]      (--from-json FILE: the table and plot of a stored run)
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
from fastwgan.eval.evaluate import evaluate_trainer  # noqa: E402


def subset(x: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(len(x), generator=g)[: max(1, round(fraction * len(x)))]]


def run(fractions, policies, seeds, steps: int, every: int, width: int) -> dict:
    xt, _ = fw.data.digits_split("train")
    rows = []
    for fraction in fractions:
        for policy in policies:
            for seed in seeds:
                x = subset(xt, fraction, seed)
                cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, augment=policy)
                torch.manual_seed(seed)
                G, D = fw.models.mlp((1, 8, 8), cfg.latent_dim, hidden=width)
                trainer = fw.Trainer(G, D, cfg, ema_decay=0.999)
                t0 = time.perf_counter()
                curve = []
                while trainer.step < steps:
                    trainer.fit(x, add_steps=min(every, steps - trainer.step), progress=False)
                    m = evaluate_trainer(trainer, "digits-train", seed=0, cache_dir=REPO / "runs" / "eval")
                    curve.append(
                        {"step": trainer.step, "fid": m["fid_classifier"], "fid_real": m["fid_classifier_real"]}
                    )
                rows.append(
                    {
                        "fraction": fraction,
                        "images": len(x),
                        "policy": policy or "none",
                        "seed": seed,
                        "curve": curve,
                        "fid": curve[-1]["fid"],
                        "wall_s": time.perf_counter() - t0,
                    }
                )
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
    return {
        "rows": rows,
        "settings": {
            "fractions": fractions,
            "policies": [p or "none" for p in policies],
            "seeds": seeds,
            "steps": steps,
            "eval_every": every,
            "width": width,
        },
        "environment": environment(),
        "threads": torch.get_num_threads(),
    }


def _fids(result, fraction, policy, key="fid", step=None):
    rows = [r for r in result["rows"] if r["fraction"] == fraction and r["policy"] == policy]
    if step is None:
        return [r[key] for r in rows]
    return [next(c["fid"] for c in r["curve"] if c["step"] == step) for r in rows]


def table(result: dict) -> str:
    s = result["settings"]
    pols = s["policies"]
    lines = ["| data | " + " | ".join(f"`{p}`" for p in pols) + " |", "|---" * (len(pols) + 1) + "|"]
    for fraction in s["fractions"]:
        n = next(r["images"] for r in result["rows"] if r["fraction"] == fraction)
        cells = []
        for p in pols:
            v = _fids(result, fraction, p)
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.2f} ± {sd:.2f}")
        lines.append(f"| {100 * fraction:.0f}% ({n} digits) | " + " | ".join(cells) + " |")
    real = statistics.mean(c["fid_real"] for r in result["rows"] for c in r["curve"])
    lines.append(
        f"\nclassifier-FID against the 500 held-out digits after {s['steps']} steps, mean ± std over seeds "
        f"{s['seeds']}; two real sets of digits: {real:.2f}."
    )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    from fastwgan.core.plots import figure, save

    s = result["settings"]
    fig, axes = figure(len(s["fractions"]), (5 * len(s["fractions"]), 3.8))
    steps = [c["step"] for c in result["rows"][0]["curve"]]
    for ax, fraction in zip(axes, s["fractions"]):
        for p in s["policies"]:
            means = [statistics.mean(_fids(result, fraction, p, step=t)) for t in steps]
            ax.plot(steps, means, marker="o", ms=3, label=p)
        n = next(r["images"] for r in result["rows"] if r["fraction"] == fraction)
        ax.set_title(f"{100 * fraction:.0f}% of digits-train ({n} images)", fontsize=10)
        ax.set_xlabel("generator steps")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("classifier-FID vs held-out (lower is better)")
    axes[0].legend(title="DiffAugment", fontsize=8)
    fig.tight_layout()
    save(fig, path, dpi=110)


def _options(a) -> None:
    a.add_argument("--quick", action="store_true", help="a smoke run: one seed, 40 steps")
    a.add_argument("--steps", type=int, default=3000)
    a.add_argument("--eval-every", type=int, default=500)
    a.add_argument("--width", type=int, default=256)
    a.add_argument(
        "--policies",
        nargs="+",
        default=["", "translation,cutout", "color,translation,cutout"],
        help="'' is no augmentation",
    )
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0], help="parts of digits-train")


def _run(args) -> dict:
    steps, every, seeds = (40, 20, [0]) if args.quick else (args.steps, args.eval_every, args.seeds)
    return run(args.fractions, args.policies, seeds, steps, every, args.width)


def main(argv=None) -> int:
    return study_main(argv, __doc__, _options, _run, table, plot)


if __name__ == "__main__":
    sys.exit(main())
