"""Why PixelDA-W stays near source only (issue 24), measured: one seed, one shift, the benchmark's settings
(``domain_digits.py``'s pixelda arm) or one change to them, trained in 500-step legs; after each leg one JSON line:
the critic's W-estimate (no labels: how far G's adaptations are from the target images, as the critic sees it), the
task classifier T's target-test accuracy and a target oracle's reading of G(held-out source) as their digits (both
for diagnosis only: nothing is chosen from them).

    variant  base     the benchmark's pixelda arm (package defaults, T warm-started for 20 epochs, compiled)
             notask   task_weight 0: G trains against the critic alone (does the adversarial game close at all?)
             lrg1e3   G's learning rate 1e-3 (the paper's base rate) instead of the WGAN-GP preset's 1e-4
             nobn     G without batch norm
             paperg   G at the paper's MNIST -> MNIST-M size: 64 filters, 6 residual blocks (ours: width 32, 3)

    .venv/bin/python benchmarks/pixelda_diagnosis.py 'digits->digits-m' --steps 5000 --variant base
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import domain_digits as dd  # noqa: E402

import fastwgan as fw  # noqa: E402
from fastwgan.core.run import environment  # noqa: E402
from fastwgan.eval import classifier  # noqa: E402
from fastwgan.uses import pixelda  # noqa: E402

VARIANTS = ("base", "notask", "lrg1e3", "nobn", "paperg")


def main(shift: str, steps: int, variant: str, seed: int = 0) -> None:
    torch.set_num_threads(1)
    xs, ys, xs_test, ys_test, xt, yt, xt_test, yt_test = dd.data(shift)
    c = xs.shape[1]
    oracle = classifier.train_classifier(xt, yt, epochs=20, seed=seed)
    torch.manual_seed(seed)
    size = {"width": 64, "blocks": 6} if variant == "paperg" else {}
    nets = pixelda.digit_networks(c, c, norm="none" if variant == "nobn" else "batch", **size)
    lr_g = {"lrg1e3": 1e-3}.get(variant, 1e-4)
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, batch_size=64, lr_g=lr_g)
    task = 0.0 if variant == "notask" else pixelda.TASK_WEIGHT
    tr = pixelda.PixelDATrainer(*nets, cfg, task_weight=task, pretrain_epochs=20, compile=True)
    print(json.dumps({"shift": shift, "variant": variant, "seed": seed, "environment": environment()}), flush=True)
    t0 = time.time()
    for k in range(500, steps + 1, 500):
        tr.fit(xs, xt, k, labels=ys, log_every=100, progress=False)
        last = tr.history[-5:]
        row = {
            "step": k,
            "w_estimate": last[-1]["w_estimate"],
            "w_estimate_mean5": sum(r["w_estimate"] for r in last) / len(last),
            "task_adapted": tr.history[-1]["task_adapted"],
            "target_acc": tr.accuracy(xt_test, yt_test),
            "oracle_on_G": classifier.accuracy(oracle, tr.adapt(xs_test, seed=seed), ys_test),
            "wall_s": time.time() - t0,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("shift", choices=dd.SHIFTS)
    a.add_argument("--steps", type=int, default=5000)
    a.add_argument("--variant", default="base", choices=VARIANTS)
    a.add_argument("--seed", type=int, default=0)
    args = a.parse_args()
    main(args.shift, args.steps, args.variant, args.seed)
