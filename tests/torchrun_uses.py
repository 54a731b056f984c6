"""Small seeded trainers and data for tests/test_engine.py, and its torchrun script:

    torchrun --standalone --nproc-per-node 2 tests/torchrun_uses.py KIND OUT    (or: python tests/torchrun_uses.py ...)

trains the fast KIND trainer ("translate", "adapt", "dirtt" (adapt's DIRT-T refinement) or "encoder") for STEPS
steps on the same global batches, in one process or split over the ranks (gloo), and rank 0 writes the final
checkpoint to OUT.
"""

import sys

import torch
from torch import nn

import fastwgan as fw
from fastwgan.uses import adapt, anomaly, translate

BATCH = 8
STEPS = 3
N_CRITIC = 2
LR = 1e-3
LABELLED = ("adapt", "dirtt")  # the kinds whose source is labelled


def data(kind: str) -> tuple:
    """40 images per domain (a labelled source's labels after it)."""
    if kind == "translate":
        return fw.data.load("digits-train")[:40], fw.data.load("digits-m-train")[:40]
    if kind in LABELLED:
        s, y = fw.data.load("digits-train", channels=3, labels=True)
        return s[:40], y[:40], fw.data.load("digits-m-train")[:40]
    return (fw.data.load("digits-train")[:40],)


def trainer(kind: str, threads=1):
    """The fast trainer of ``kind``, eager (compile=False), its networks seeded."""
    torch.manual_seed(0)
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=BATCH, n_critic=N_CRITIC, lr_d=LR, lr_g=LR)
    if kind == "translate":
        g_st, g_ts = fw.models.translator(8, 1, 3, width=4, blocks=1), fw.models.translator(8, 3, 1, width=4, blocks=1)
        d_s = fw.models.mlp((1, 8, 8), 1, hidden=16, depth=1)[1]
        d_t = fw.models.mlp((3, 8, 8), 1, hidden=16, depth=1)[1]
        return translate.TranslationTrainer(g_st, g_ts, d_s, d_t, cfg, compile=False, threads=threads)
    if kind == "adapt":
        extractor = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU())
        critic = fw.models.mlp((16,), 1, hidden=16, depth=1)[1]
        # shift and photometric on: their per-image (B, 2) / (B, C) draws are sharded on their batch dim too
        trainer = adapt.AdaptTrainer(
            extractor, nn.Linear(16, 10), critic, cfg, compile=False, threads=threads, shift=True, photometric=True
        )
        return trainer
    if kind == "dirtt":  # no critic; its VAT directions (clf_steps, B, C H W) are sharded on their batch dim too
        extractor = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU())
        return adapt.AdaptTrainer(
            extractor, nn.Linear(16, 10), None, cfg, compile=False, threads=threads, method="dirtt"
        )
    G, D = fw.models.mlp((1, 8, 8), 8, hidden=16, depth=1)
    enc = anomaly.encoder_for(G.spec)
    ecfg = anomaly.EncoderConfig(batch_size=BATCH, lr=LR)
    return anomaly.EncoderTrainer(G, D, enc, ecfg, compile=False, threads=threads)


def main(kind: str, out: str) -> None:
    import os

    import torch.distributed as dist

    multi = "WORLD_SIZE" in os.environ
    if multi:
        dist.init_process_group("gloo")
    t = trainer(kind)
    d = data(kind)
    if kind in LABELLED:
        t.fit(d[0], d[2], STEPS, labels=d[1], log_every=1, progress=False)
    else:
        t.fit(*d, STEPS, log_every=1, progress=False)
    state = t.state_dict()  # every rank: the history's metrics are all-reduced
    if t.rank == 0:
        fw.checkpoint.save(state, out, t.step)
    if multi:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
