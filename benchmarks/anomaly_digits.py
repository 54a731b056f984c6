"""Anomaly scoring with the critic, measured: a run trained on `digits-train` WITHOUT one class scores the held-out
normal digits (the other nine classes, never trained on) and every digit of the left-out class; AUROC of
"normal scores higher". A pixel-space baseline (minus the distance to the nearest training digit) is printed
beside it, so the number has context.

    # 1. the training set without class K (here 0), then train on it with the CLI
    python benchmarks/anomaly_digits.py prepare --left-out 0 --out runs/eval/digits-train-no0.npz
    fastwgan train --data runs/eval/digits-train-no0.npz --preset wgan-gp --width 256 --ema-decay 0.999 \
        --steps 3000 --out runs/eval/anomaly0
    # 2. score with `fastwgan score` and compute the AUROC
    python benchmarks/anomaly_digits.py measure --run runs/eval/anomaly0 --left-out 0
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fastwgan import data, inference, metrics
from fastwgan.cli import main as cli


def prepare(left_out: int, out: Path) -> None:
    x, y = data.digits_split("train")
    keep = (y != left_out).numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, images=x.numpy()[keep], labels=y.numpy()[keep])
    print(f"wrote {keep.sum()} training digits without class {left_out} to {out}")


def measure(run: Path, left_out: int, checkpoint: str | None = None) -> dict:
    xh, yh = data.digits_split("heldout")
    xt, yt = data.digits_split("train")
    normal = xh[yh != left_out]  # held-out digits of the nine trained classes
    anomal = torch.cat([xh[yh == left_out], xt[yt == left_out]])  # the left-out class: never seen
    work = run / "eval" / "anomaly"
    work.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, x in (("normal", normal), ("anomalous", anomal)):
        np.save(work / f"{name}.npy", x.numpy())
        assert cli(["score", "--checkpoint", checkpoint or str(run), str(work / f"{name}.npy"),
                    "--out", str(work / f"{name}.csv")]) == 0
        scores[name] = inference.read_scores_csv(work / f"{name}.csv")[1]
    # baseline: minus the L2 distance to the nearest training image (the nine classes), in [-1, 1] pixels
    train = data.to_float(xt[yt != left_out]).flatten(1)

    def nn_score(x):
        return -torch.cdist(data.to_float(x).flatten(1), train).min(1).values

    result = {
        "run": str(run), "checkpoint": checkpoint or "latest", "left_out": left_out,
        "n_normal": len(normal), "n_anomalous": len(anomal),
        "auroc_critic": metrics.auroc(scores["normal"], scores["anomalous"]),
        "auroc_nearest_neighbour_baseline": metrics.auroc(nn_score(normal), nn_score(anomal)),
        "mean_score_normal": float(scores["normal"].mean()), "mean_score_anomalous": float(scores["anomalous"].mean()),
    }
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--left-out", type=int, default=0)
    a.add_argument("--out", type=Path, default=Path("runs/eval/digits-train-no0.npz"))
    b = sub.add_parser("measure")
    b.add_argument("--run", type=Path, required=True)
    b.add_argument("--left-out", type=int, default=0)
    b.add_argument("--checkpoint", default=None, help="a step_N.json inside the run (default: latest)")
    args = p.parse_args()
    if args.cmd == "prepare":
        prepare(args.left_out, args.out)
    else:
        print(json.dumps(measure(args.run, args.left_out, args.checkpoint), indent=1))
    sys.exit(0)
