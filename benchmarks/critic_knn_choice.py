"""How critic-knn's settings were chosen (issue 25): on ONE setting, never the test split. Digits, digit 3 left out
(all-vs-one), seed 0: 400 images of digits-train are held out as a validation set (their 3s the anomalies), a
WGAN-GP (the bundled MLPs of width 256, EMA 0.999, eager) trains on the other digits-train images without 3s, and at
steps 1000 and 2000 the validation AUROC ("anomalous scores higher") is printed for pixel kNN, the critic, and
kNN in the critic's feature space by layers (the penultimate activation, every hidden activation, those plus the
pixels, the pixels alone), raw, each layer L2-normalised per image, or each layer divided by its mean norm over
the training images, k 1 or 5.

    .venv/bin/python benchmarks/critic_knn_choice.py        (about 3 min on this 2-core CPU, 1 thread)
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from _study import digits_validation_setting

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastwgan as fw  # noqa: E402
from fastwgan.eval import metrics  # noqa: E402
from fastwgan.uses import anomaly  # noqa: E402

LAYERS = {"penultimate": (6,), "hidden": (2, 4, 6), "hidden+pixels": (0, 2, 4, 6), "pixels": (0,)}


def feature_maps(body, x, layers):
    """The outputs of the MLP critic body's modules ``layers`` (0: the flattened pixels), each (N, F)."""
    out, h = [], fw.data.to_float(x)
    with torch.no_grad():
        for i, m in enumerate(body):
            h = m(h)
            if i in layers:
                out.append(h.flatten(1))
    return out


def scaled(hs, train_hs, norm: str):
    """Feature maps made comparable across layers: "raw" as they are, "l2" each row of each layer to unit L2 norm,
    "layer" each layer divided by its mean row norm over the training images (layers weigh alike, a sample's own
    magnitude kept)."""
    if norm == "l2":
        return [F.normalize(h, dim=1) for h in hs]
    if norm == "layer":
        return [h / t.norm(dim=1).mean() for h, t in zip(hs, train_hs)]
    return hs


def main(digit: int = 3, seed: int = 0) -> None:
    torch.set_num_threads(1)
    normal, xv, anom, gan = digits_validation_setting(digit, seed)

    def auroc(s):
        return round(metrics.auroc(s[anom], s[~anom]), 4)

    for step in (1000, 2000):
        gan.fit(normal, step, progress=False)
        res = {"pixel knn": auroc(anomaly.knn_scores(normal, xv)), "critic": auroc(-gan.critic_score(xv).double())}
        for name, layers in LAYERS.items():
            ft, fv = feature_maps(gan.critic.body, normal, layers), feature_maps(gan.critic.body, xv, layers)
            for norm in ("raw", "l2", "layer"):
                a, b = (scaled(fs, ft, norm) for fs in (ft, fv))
                d = torch.cdist(torch.cat(b, 1).double(), torch.cat(a, 1).double())
                for k in (1, 5):
                    key = f"{name} {norm} k{k}"
                    res[key] = auroc(d.topk(k, dim=1, largest=False).values.mean(1))
        print(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
