"""Why f-AnoGAN is weak on some digits (issue 25), measured on a VALIDATION split, never the test split.

Digits, all-vs-one, the digits where f-AnoGAN scored lowest on the benchmark (1, 3, 9), seed 0: 400 images of
digits-train are held out as validation (their d's the anomalies), the MLP-256 WGAN-GP (EMA 0.999, eager, as the
benchmark's) trains 2000 steps on the other digits-train images without d, then izi_f encoders are trained on the
same normal images under variants and every score is read as AUROC ("anomalous scores higher") on the validation
split:

    default      EMA generator, 1000 encoder steps, kappa 1 (the benchmark's)
    steps4000    4000 encoder steps
    raw_g        the raw generator instead of the EMA one
    kappa0       kappa 0 (image residual only in the loss)
and, from each encoder, the score's parts: "image" (mse_img), "feature" (mse_feat), their sum (the score), and the
image residual divided by the image's ink (the mean of (x + 1) / 2), to test whether thin digits hide in a small
residual. Also: the AUROC of low ink alone, the pixel kNN and the mean residuals of normal and anomalous images.

    .venv/bin/python benchmarks/fanogan_diagnosis.py          (about 10 min on this 2-core CPU, 1 thread)
"""

import json
import sys
from pathlib import Path

import torch
from _study import digits_validation_setting

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastwgan as fw  # noqa: E402
from fastwgan.eval import metrics  # noqa: E402
from fastwgan.uses import anomaly  # noqa: E402

VARIANTS = {
    "default": dict(steps=1000, ema=True, kappa=1.0),
    "steps4000": dict(steps=4000, ema=True, kappa=1.0),
    "raw_g": dict(steps=1000, ema=False, kappa=1.0),
    "kappa0": dict(steps=1000, ema=True, kappa=0.0),
}


def one(digit: int, seed: int = 0) -> dict:
    normal, xv, anom, gan = digits_validation_setting(digit, seed)
    gan.fit(normal, 2000, progress=False)

    def auroc(s):
        return round(metrics.auroc(s[anom], s[~anom]), 4)

    ink = ((fw.data.to_float(xv) + 1) / 2).flatten(1).mean(1).double()
    out = {"digit": digit, "pixel knn": auroc(anomaly.knn_scores(normal, xv)), "low ink": auroc(-ink)}
    for name, v in VARIANTS.items():
        g = gan.sampling_generator() if v["ema"] else gan.generator
        et = anomaly.EncoderTrainer(
            g,
            gan.critic,
            anomaly.encoder_for(gan.generator.spec, seed=seed),
            anomaly.EncoderConfig(kappa=v["kappa"], seed=seed),
        )
        et.fit(normal, v["steps"], progress=False)
        s = et.score(xv)
        out[name] = {
            "score": auroc(s["image"] + s["feature"]),
            "image": auroc(s["image"]),
            "feature": auroc(s["feature"]),
            "image/ink": auroc(s["image"] / ink),
            "image normal": round(s["image"][~anom].mean().item(), 4),
            "image anomalous": round(s["image"][anom].mean().item(), 4),
        }
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    for d in (1, 3, 9):
        one(d)
