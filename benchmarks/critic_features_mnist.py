"""Why critic-knn loses to the pixel nearest neighbour on MNIST-5k one-vs-rest (issue 25), measured on a
VALIDATION split of mnist-5k-train, never on mnist-5k-heldout.

800 images of mnist-5k-train (generator seed 123) are held out as validation; a WGAN-GP (seed 0, EMA 0.999,
compiled) trains on the normal part of the other 3200 (one-vs-rest: digit d only; all-vs-one: all but d) with the
bundled MLPs (width 256, the benchmark's) or DCGAN networks (width 32), and at steps 0 (the untrained networks:
the control for what GAN training adds), 1000 and 2000 the validation AUROC ("anomalous scores higher") is printed
for:

    pixel             kNN (k 1) in pixel space: the baseline
    critic            minus the critic's output
    critic-knn        anomaly.critic_knn_scores at its defaults (every hidden activation, each L2-normalised, k 1)
    hidden raw        the same layers, not normalised
    first / last      the first / the last hidden activation alone, L2-normalised
    hidden+pixels     critic-knn's layers and the normalised pixels as one more layer
    pixel+G, G only   pixel kNN against the training images plus 4x as many EMA-generator samples, or the samples
                      alone (does the GAN fill in the normal data?)

    .venv/bin/python benchmarks/critic_features_mnist.py one-vs-rest 3 mlp
    .venv/bin/python benchmarks/critic_features_mnist.py one-vs-rest 3 dcgan    (~6 min for MLP, ~10 for DCGAN,
                                                                                on this 2-core CPU, 1 thread)
    .venv/bin/python benchmarks/critic_features_mnist.py one-vs-rest 3 mlp --augment translation,cutout
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from _study import validation_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastwgan as fw  # noqa: E402
from fastwgan.eval import metrics  # noqa: E402
from fastwgan.uses import anomaly  # noqa: E402

WIDTH = {"mlp": {"hidden": 256}, "dcgan": {"width": 32}}


def layer_embedding(critic, pick=None, normalize=True, pixels=False):
    """An ``embed`` for knn_scores: the critic's hidden activations (``pick``: the indices kept), each
    L2-normalised when ``normalize``, with the normalised pixels as one more layer when ``pixels``."""
    layers = anomaly.critic_layers(critic)

    def embed(x):
        hs = layers(x)
        hs = [hs[i] for i in pick] if pick is not None else hs
        hs = [F.normalize(h.float(), dim=1) if normalize else h.float() for h in hs]
        if pixels:
            hs.append(F.normalize(x.flatten(1).float(), dim=1))
        return torch.cat(hs, 1)

    return embed


def main(protocol: str, digit: int, model: str, steps=(0, 1000, 2000), augment: str = "", seed: int = 0) -> None:
    torch.set_num_threads(1)
    x, y = fw.data.load("mnist-5k-train", labels=True)
    normal, xv, anom = validation_split(x, y, digit, protocol, 800)
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, augment=augment)
    torch.manual_seed(seed)
    G, D = fw.models.build(model, tuple(x.shape[1:]), cfg.latent_dim, **WIDTH[model])
    gan = fw.Trainer(G, D, cfg, ema_decay=0.999, device_data_bytes=0)

    def auroc(s):
        return round(metrics.auroc(s[anom], s[~anom]), 4)

    for step in steps:
        if step:  # 0: the untrained networks, the control for what training adds
            gan.fit(normal, step, progress=False)
        critic = gan.critic.eval()
        samples = fw.data.to_uint8(gan.sample(4 * len(normal), seed=1))
        res = {
            "pixel": auroc(anomaly.knn_scores(normal, xv)),
            "critic": auroc(-gan.critic_score(xv).double()),
            "critic-knn": auroc(anomaly.critic_knn_scores(critic, normal, xv)),
        }
        for name, kw in {
            "hidden raw": dict(normalize=False),
            "first": dict(pick=[0]),
            "last": dict(pick=[-1]),
            "hidden+pixels": dict(pixels=True),
        }.items():
            res[name] = auroc(anomaly.knn_scores(normal, xv, embed=layer_embedding(critic, **kw)))
        res["pixel+G"] = auroc(anomaly.knn_scores(torch.cat([normal, samples]), xv))
        res["G only"] = auroc(anomaly.knn_scores(samples, xv))
        critic.train()
        head = {"protocol": protocol, "digit": digit, "model": model, "augment": augment, "step": step}
        print(json.dumps({**head, **res}), flush=True)


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("protocol", choices=("one-vs-rest", "all-vs-one"))
    a.add_argument("digit", type=int)
    a.add_argument("model", choices=tuple(WIDTH))
    a.add_argument("--steps", type=int, nargs="+", default=[0, 1000, 2000], help="the GAN steps to measure at")
    a.add_argument("--augment", default="", help="DiffAugment policies for the critic (e.g. translation,cutout)")
    args = a.parse_args()
    main(args.protocol, args.digit, args.model, args.steps, args.augment)
