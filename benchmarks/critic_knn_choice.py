"""How critic-knn's settings were chosen (issue 25): on ONE setting, never the test split. Digits, digit 3 left out
(all-vs-one), seed 0: 400 images of digits-train are held out as a validation set (their 3s the anomalies), a
WGAN-GP (the bundled MLPs of width 256, EMA 0.999, eager) trains on the other digits-train images without 3s, and at
steps 1000 and 2000 the validation AUROC ("anomalous scores higher") is printed for pixel kNN, the critic, and
kNN in the critic's feature space by layers (the penultimate activation, every hidden activation, those plus the
pixels, the pixels alone), raw, each layer L2-normalised per image, or each layer divided by its mean norm over
the training images, k 1 or 5.

    .venv/bin/python benchmarks/critic_knn_choice.py        (about 3 min on this 2-core CPU, 1 thread)

--all-digits: the same validation split with every digit left out in turn (all-vs-one), the critic of --model
(the benchmark's DCGAN of width 32 by default) read at steps 1000, 1500, 2000 through ``anomaly.critic_embedding``
(every hidden activation, as critic-knn does), L2-normalised or raw, with and without the pixels as one more
L2-normalised layer, and the raw critic distance plus the pixel one, each in its training unit (critic-knn's
``pixels=True``), and each hidden layer as a space of its own in its training unit, with and without the pixels
(``per_layer=True``), k 1 or 5; prints each digit's validation AUROCs and the mean over digits x checkpoints (a broader
check of the choice than the one digit above, still on training images only). ``--keep DIR`` saves each
checkpoint's critic, ``--from-critics DIR`` scores saved ones without training (the same numbers):

    .venv/bin/python benchmarks/critic_knn_choice.py --all-digits [--model dcgan --width 32] [--keep DIR]
"""

import argparse
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


def all_digits(model: str, width: int, seed: int = 0, keep: Path | None = None, reuse: Path | None = None) -> None:
    """--all-digits (module docstring); ``keep``: save each checkpoint's critic there; ``reuse``: read them from
    there instead of training (the same scores, no GAN steps)."""
    torch.set_num_threads(1)
    totals: dict[str, list[float]] = {}
    for digit in range(10):
        normal, xv, anom, gan = digits_validation_setting(digit, seed, model=model, width=width)

        def auroc(s):
            return metrics.auroc(s[anom], s[~anom])

        for step in (1000, 1500, 2000):
            path = f"digit{digit}_step{step}.pt"
            if reuse is not None:
                gan.critic.load_state_dict(torch.load(reuse / path))
            else:
                gan.fit(normal, step, progress=False)
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    torch.save(gan.critic.state_dict(), keep / path)
            res = {f"pixel knn k{k}": auroc(anomaly.knn_scores(normal, xv, k=k)) for k in (1, 5)}
            critic = gan.critic.eval()
            hidden = anomaly.critic_embedding(critic, normalize=True)  # explicit: the default changed to raw
            raw = anomaly.critic_embedding(critic, normalize=False)
            spaces = {
                "hidden l2": hidden,
                "hidden+pixels l2": lambda x: torch.cat([hidden(x), F.normalize(x.flatten(1).float(), dim=1)], 1),
                "hidden raw": raw,
            }
            for name, embed in spaces.items():
                for k in (1, 5):
                    res[f"{name} k{k}"] = auroc(anomaly.knn_scores(normal, xv, k=k, embed=embed))
            for k in (1, 5):  # the two k-NN distances, each in its own training unit, added
                d = anomaly.critic_knn_scores(critic, normal, xv, k, normalize=False, pixels=True)
                res[f"raw+pixel distances k{k}"] = auroc(d)
            for k in (1, 5):  # every layer a space of its own, each in its training unit, with and without the pixels
                for pix in (False, True):
                    d = anomaly.critic_knn_scores(critic, normal, xv, k, normalize=False, pixels=pix, per_layer=True)
                    res[f"per-layer{'+pixels' if pix else ''} k{k}"] = auroc(d)
            critic.train()
            for key, v in res.items():
                totals.setdefault(key, []).append(v)
            print(f"digit {digit} step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in res.items()), flush=True)
    print("mean over digits x checkpoints: " + ", ".join(f"{k} {sum(v) / len(v):.4f}" for k, v in totals.items()))


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--all-digits", action="store_true")
    a.add_argument("--model", default="dcgan", choices=("mlp", "dcgan"))
    a.add_argument("--width", type=int, default=32)
    a.add_argument("--keep", type=Path, default=None, help="--all-digits: save each checkpoint's critic here")
    a.add_argument("--from-critics", type=Path, default=None, help="--all-digits: score the critics --keep saved")
    args = a.parse_args()
    if args.all_digits:
        all_digits(args.model, args.width, keep=args.keep, reuse=args.from_critics)
    else:
        main()
