"""Writes the run folders of tests/test_old_runs.py with fastwgan as it was at commit 1531d0c (before the one-engine
restructure, issue 23), and what that code computed from them (expected.safetensors). Kept for the record: run it
again only to add a run written by the CURRENT version, never to refresh these (they are the old format's proof).

    cd tests/data/old_runs && OMP_NUM_THREADS=1 python make.py
"""

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
FW = [sys.executable, "-m", "fastwgan"]
COMMON = ["--no-compile", "--log-every", "1", "--no-progress"]


def sh(*args):
    subprocess.run([*FW, *args], check=True, cwd=HERE)


def small_adapt_networks():
    """extractor (3x8x8 -> 16 features), classifier (10 classes), critic (fastwgan's MLP on the features), seeded."""
    from torch import nn

    from fastwgan.gan.models import mlp

    torch.manual_seed(0)
    _, critic = mlp((16,), latent_dim=1, hidden=16, depth=2)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU()), nn.Linear(16, 10), critic


def main():
    for d in ("gan", "translate", "adapt"):
        shutil.rmtree(HERE / d, ignore_errors=True)
    sh(
        "train",
        "--data",
        "digits-train",
        "--steps",
        "6",
        "--checkpoint-every",
        "3",
        "--batch-size",
        "8",
        "--width",
        "16",
        "--model",
        "mlp",
        "--threads",
        "1",
        "--out",
        "gan",
        *COMMON,
    )
    sh("encode", "gan", "--steps", "4", "--checkpoint-every", "2", "--batch-size", "8", *COMMON)
    sh(
        "translate",
        "train",
        "--source",
        "digits-train",
        "--target",
        "digits-m-train",
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--threads",
        "1",
        "--width",
        "8",
        "--blocks",
        "1",
        "--critic",
        "mlp",
        "--critic-width",
        "16",
        "--batch-size",
        "8",
        "--out",
        "translate",
        *COMMON,
    )
    import fastwgan as fw
    from fastwgan.data import load
    from fastwgan.uses import adapt, anomaly, translate

    # adaptation from Python (the CLI's networks make 2 MB checkpoints): small networks, seeded
    src, y = load("digits-train", channels=3, labels=True)
    tgt = load("digits-m-train")
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8)
    nets = small_adapt_networks()
    adapt.AdaptTrainer(*nets, cfg, compile=False).fit(
        src, tgt, 4, labels=y, out=HERE / "adapt", checkpoint_every=2, log_every=1, progress=False
    )
    for d in ("gan", "translate", "adapt"):  # pictures are not read back: keep the folder small
        for sub in ("samples", "plots"):
            shutil.rmtree(HERE / d / sub, ignore_errors=True)
    (HERE / "adapt" / "classifier.safetensors").unlink(missing_ok=True)

    heldout = load("digits-heldout")[:32]
    trainer, _ = fw.load_trainer(HERE / "gan", threads=1)
    enc = anomaly.load_encoder(HERE / "gan", trainer)
    tr = translate.load_translation(HERE / "translate", threads=1)
    at = adapt.AdaptTrainer(*small_adapt_networks(), cfg, compile=False)
    at.load_state_dict(fw.checkpoint.load(HERE / "adapt"))
    expected = {
        "gan_sample": trainer.sample(16, seed=5),
        "gan_critic": trainer.critic_score(heldout),
        "encoder_score": enc.score(heldout)["score"],
        "translate_s2t": tr.translate(heldout[:8]),
        "adapt_predict": at.predict(load("digits-m-heldout")[:32]),
    }
    save_file({k: v.contiguous() for k, v in expected.items()}, HERE / "expected.safetensors")


if __name__ == "__main__":
    main()
