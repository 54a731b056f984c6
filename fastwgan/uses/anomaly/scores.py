"""Anomaly scores, one convention (higher = more anomalous): f-AnoGAN's (an encoder trained by
``fastwgan.uses.anomaly.training``) and its two baselines, the critic's and the k nearest neighbours' (the package
docstring says each).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...core import checkpoint
from ...core.images import as_float
from .encoder import EncoderConfig, encoder_for
from .training import EncoderTrainer

METHODS = ("fanogan", "critic", "knn")
ENCODER_DIR = "encoder"  # where `fastwgan encode` keeps the encoder inside a run folder


@torch.no_grad()
def knn_scores(train, x, k: int = 1, chunk: int = 1024) -> torch.Tensor:
    """The honest baseline: the mean L2 distance (pixels in [-1, 1]) from each sample of ``x`` to its ``k``
    nearest training images. The training images are read once, in chunks: ``train`` is a tensor (N, *shape), or
    any iterable of such chunks (a DataLoader over a streamed folder); memory holds one chunk of distances.

    Returns:
        (len(x),) float64, higher = farther from every training image = more anomalous.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"knn: k must be a positive integer, got {k!r}")
    x = torch.as_tensor(x)
    chunks = (train[j : j + chunk] for j in range(0, len(train), chunk)) if isinstance(train, torch.Tensor) else train
    q = [as_float(x[i : i + chunk]).flatten(1).double() for i in range(0, len(x), chunk)]  # (q, D) each
    best = [None] * len(q)  # per query chunk: (q, <= k) smallest distances so far
    seen = 0
    for t in chunks:
        t = t[0] if isinstance(t, (tuple, list)) else t  # (x, y) batches: the images
        if tuple(t.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(
                f"knn: inputs of shape {tuple(x.shape[1:])} but training images of shape {tuple(t.shape[1:])}"
            )
        seen += len(t)
        t = as_float(t).flatten(1).double()
        for i, qi in enumerate(q):
            d = torch.cdist(qi, t)  # (q, t)
            d = d if best[i] is None else torch.cat([best[i], d], 1)
            best[i] = d.topk(min(k, d.shape[1]), dim=1, largest=False).values
    if seen < k:
        raise ValueError(f"knn: k={k} but only {seen} training images")
    return torch.cat([b.mean(1) for b in best]) if best else torch.zeros(0, dtype=torch.float64)


def score(
    method: str, x, *, trainer=None, encoder_trainer=None, train=None, labels=None, k: int = 1, batch_size: int = 1024
) -> dict[str, torch.Tensor]:
    """Anomaly scores of (N, *shape) images, higher = more anomalous, by ``method``:
    "fanogan" (``encoder_trainer.score``: score, image, feature), "critic" (minus ``trainer.critic_score``;
    ``labels`` for a class-conditional run) or "knn" (``knn_scores`` against ``train``).

    Returns:
        {"score": (N,) float64, ...} with the method's parts as extra entries.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "fanogan":
        if encoder_trainer is None:
            raise ValueError("method 'fanogan' needs a trained encoder (fastwgan encode RUN, or EncoderTrainer)")
        return encoder_trainer.score(x, batch_size=batch_size)
    if method == "critic":
        if trainer is None:
            raise ValueError("method 'critic' needs the trainer")
        return {"score": -trainer.critic_score(x, batch_size=batch_size, labels=labels).double()}
    if train is None:
        raise ValueError("method 'knn' needs the training images (train=)")
    return {"score": knn_scores(train, x, k=k)}


def load_encoder(run, trainer, *, compile: bool = False) -> EncoderTrainer:
    """The encoder ``fastwgan encode`` trained in run folder ``run`` (RUN/encoder), on ``trainer``'s networks.

    Raises:
        ValueError naming the ``fastwgan encode`` command when there is none, or when the run's GAN has moved on
        since (the encoder inverts one generator).
    """
    d = Path(run) / ENCODER_DIR
    if not (d / "checkpoints").is_dir():
        raise ValueError(f"{run} has no encoder: train one with `fastwgan encode {run}` (f-AnoGAN needs it)")
    info = json.loads((d / "config.json").read_text())
    if info.get("gan_step") is not None and info["gan_step"] != trainer.step:
        raise ValueError(
            f"{run}: the encoder inverts the GAN at step {info['gan_step']}, but the run is at step "
            f"{trainer.step}: retrain it with `fastwgan encode {run} --overwrite`"
        )
    state = checkpoint.load(d)
    cfg = EncoderConfig(**{**state["config"], "betas": tuple(state["config"]["betas"])})
    et = EncoderTrainer(
        trainer.sampling_generator(),
        trainer.critic,
        encoder_for(info["model"]),
        cfg,
        compile=compile,
        features_layer=info.get("features_layer"),
        device=trainer.device,
    )
    et.load_state_dict(state)
    return et
