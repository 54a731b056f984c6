"""Anomaly scores, one convention (higher = more anomalous): f-AnoGAN's (an encoder trained by
``fastwgan.uses.anomaly.training``) and its two baselines, the critic's and the k nearest neighbours' (the package
docstring says each).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ...core import checkpoint
from ...core.images import as_float
from .encoder import EncoderConfig, critic_features, encoder_for
from .training import EncoderTrainer

METHODS = ("fanogan", "critic", "knn", "critic-knn")
#: critic-knn's neighbours and normalisation (ours, measured: the package docstring): the mean distance to the 5
#: nearest training images, the hidden activations concatenated as they are, the pixel distance added
CRITIC_KNN_K = 5
CRITIC_KNN_NORMALIZE = False
#: add the pixel k-NN distance, each space's distance in its own training unit (``self_scale``)
CRITIC_KNN_PIXELS = True
#: one space per feature map, each in its own training unit, instead of one concatenation (a candidate: measured)
CRITIC_KNN_PER_LAYER = False
SCALE_SAMPLE = 500  # the training images ``self_scale`` measures (evenly spaced in the first chunk)
ENCODER_DIR = "encoder"  # where `fastwgan encode` keeps the encoder inside a run folder


@torch.no_grad()
def knn_scores(train, x, k: int = 1, chunk: int = 1024, embed=None) -> torch.Tensor:
    """The mean L2 distance from each sample of ``x`` to its ``k`` nearest training images, in pixel space (images
    in [-1, 1]: the honest baseline) or in the space ``embed`` maps them to (``critic_knn_scores``). The training
    images are read once, in chunks: ``train`` is a tensor (N, *shape), or any iterable of such chunks (a
    DataLoader over a streamed folder, (x, y) batches too); memory holds one chunk of distances.

    Args:
        embed: None (pixels), or a callable from float images (B, *shape) in [-1, 1] to features (B, F).

    Returns:
        (len(x),) float64, higher = farther from every training image = more anomalous.
    """
    (d,), _ = _space_scores(train, x, k, chunk, _one_space(embed), scale=False)
    return d


def _one_space(embed):
    """``knn_scores``' ``embed`` (None: the pixels) as ``_space_scores`` takes it: a list of one space."""
    return lambda v: [v if embed is None else embed(v)]


@torch.no_grad()
def _space_scores(train, x, k: int, chunk: int, embed, scale: bool, n: int = SCALE_SAMPLE):
    """One pass over the training images, any number of feature spaces: ``embed`` maps float images to a list of
    (B, F_s), one per space. Per space, the mean distance from each sample of ``x`` to its ``k`` nearest training
    images, and with ``scale`` the space's ``self_scale`` (the training images' own leave-one-out k-NN distance,
    over ``n`` evenly spaced images of the first chunk: they join the queries when that chunk arrives, at k + 1
    neighbours, the first being the image itself).

    Returns:
        ([per space: (len(x),) float64], [per space: its scale, a 0-d float64] or None)
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"knn: k must be a positive integer, got {k!r}")
    x = torch.as_tensor(x)
    kk = k + 1 if scale else k
    q = None  # per space, per query chunk: (q, F_s) features (x's chunks, then the scale sample's), made at chunk 1
    best = None  # per space, per query chunk: (q, <= kk) smallest distances so far, ascending
    seen, n_x = 0, len(range(0, len(x), chunk))
    for t in _chunks(train, chunk):
        if tuple(t.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(
                f"knn: inputs of shape {tuple(x.shape[1:])} but training images of shape {tuple(t.shape[1:])}"
            )
        seen += len(t)
        spaces = [h.flatten(1).double() for h in embed(as_float(t))]
        if q is None:
            feats = [
                [h.flatten(1).double() for h in embed(as_float(x[i : i + chunk]))] for i in range(0, len(x), chunk)
            ]
            q = [[f[s] for f in feats] for s in range(len(spaces))]
            if scale:  # the scale sample: evenly spaced images of this first chunk (its features), after x's chunks
                pick = torch.linspace(0, len(t) - 1, min(n, len(t))).long()
                for qs, ts in zip(q, spaces):
                    qs.append(ts[pick])
            best = [[None] * len(qs) for qs in q]
        for s, ts in enumerate(spaces):
            for i, qi in enumerate(q[s]):
                d = torch.cdist(qi, ts)  # (q, t)
                d = d if best[s][i] is None else torch.cat([best[s][i], d], 1)
                best[s][i] = d.topk(min(kk, d.shape[1]), dim=1, largest=False).values
    if seen < k:
        raise ValueError(f"knn: k={k} but only {seen} training images")
    if scale and seen < 2:
        raise ValueError(f"knn: the training images' own k-NN distance needs 2 training images or more, got {seen}")
    scores = [
        torch.cat([b[:, :k] for b in bs[:n_x]]).mean(1) if n_x else torch.zeros(0, dtype=torch.float64) for bs in best
    ]
    if not scale:
        return scores, None
    return scores, [bs[n_x].sum(1).mean() / (min(kk, seen) - 1) for bs in best]


def _chunks(train, chunk: int):
    """The training images in chunks: slices of a tensor, or the items of an iterable (of (x, y) batches: x)."""
    if isinstance(train, torch.Tensor):
        yield from (train[j : j + chunk] for j in range(0, len(train), chunk))
        return
    for t in train:
        yield t[0] if isinstance(t, (tuple, list)) else t


def self_scale(train, k: int, embed=None, n: int = SCALE_SAMPLE, chunk: int = 1024) -> torch.Tensor:
    """The typical k-NN distance among the training images themselves, in pixel space or ``embed``'s: the mean, over
    ``n`` evenly spaced images of the first training chunk, of the mean distance to their k nearest OTHER training
    images (leave-one-out; all of them when there are k or fewer). The unit in which ``critic_knn_scores`` adds
    spaces' distances."""
    first = next(iter(_chunks(train, chunk)), None)
    if first is None:
        raise ValueError("knn: no training images")
    _, (unit,) = _space_scores(train, first[:0], k, chunk, _one_space(embed), True, n)
    return unit


#: the activation modules whose outputs make critic-knn's default feature space
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Tanh)


def critic_layers(critic: nn.Module, layers: str | list[str] | None = None):
    """x -> the list of a critic's feature maps, each (B, F_l), computed without gradient.

    layers None: the output of every activation module (``ACTIVATIONS``) that ``critic.features(x)`` runs through (the
    bundled critics: each hidden layer, the last one being f-AnoGAN's f), or ``critic.features(x)`` alone when it
    runs through none. A name or a list of names: those submodules' outputs in a plain ``critic(x)`` (a user's
    critic; read with forward hooks).

    A class-conditional bundled critic (projection, ``fastwgan.gan.conditioning``) has class-free features phi(x):
    the label only enters through <embed(y), phi(x)>, so no class is needed (or guessed)."""
    if layers is None:
        features = critic_features(critic)  # names the problem when the critic has no features()
        modules = [m for _, m in critic.named_modules() if isinstance(m, ACTIVATIONS)]
        run = features
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        for n in names:
            critic_features(critic, n)  # names a missing submodule
        found = dict(critic.named_modules())
        modules, run, features = [found[n] for n in names], critic, None

    @torch.no_grad()
    def f(x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        handles = [m.register_forward_hook(lambda m, i, o: out.append(o.flatten(1))) for m in modules]
        try:
            last = run(x)
        finally:
            for h in handles:
                h.remove()
        return out if out or features is None else [last.flatten(1)]

    return f


def critic_embedding(critic, layers=None, normalize: bool = CRITIC_KNN_NORMALIZE, device=None, split: bool = False):
    """The critic's feature space as an ``embed`` for ``knn_scores``: the feature maps of ``critic_layers``, each row
    of each scaled to unit L2 norm when ``normalize`` (so every layer weighs alike), concatenated (``split``: the
    list of them, one space per layer); computed on ``device`` (default: the critic's), returned on the CPU."""
    f = critic_layers(critic, layers)
    if device is None:
        device = next(critic.parameters()).device

    def embed(x: torch.Tensor):
        hs = [h.float() for h in f(x.to(device))]
        if normalize:
            hs = [torch.nn.functional.normalize(h, dim=1) for h in hs]
        return [h.cpu() for h in hs] if split else torch.cat(hs, 1).cpu()

    return embed


def critic_knn_scores(
    critic,
    train,
    x,
    k: int = CRITIC_KNN_K,
    *,
    layers: str | list[str] | None = None,
    normalize: bool = CRITIC_KNN_NORMALIZE,
    pixels: bool = CRITIC_KNN_PIXELS,
    per_layer: bool = CRITIC_KNN_PER_LAYER,
    chunk: int = 1024,
) -> torch.Tensor:
    """critic-knn: the mean distance from each sample of ``x`` to its ``k`` nearest training images in the critic's
    feature space (``critic_embedding``), the training images streamed once, in chunks, as ``knn_scores`` does.
    With ``pixels``, plus the same distance in pixel space; with ``per_layer``, each feature map is a space of its
    own instead of one concatenation. Where there are two spaces or more, each one's distance is divided by its
    ``self_scale`` (the training images' own k-NN distance there) before they are added, so that no space's units
    decide.

    Returns:
        (len(x),) float64, higher = more anomalous.
    """
    was_training = critic.training
    critic.eval()
    try:
        features = critic_embedding(critic, layers, normalize, split=True)

        def embed(v: torch.Tensor) -> list[torch.Tensor]:
            hs = features(v)
            return (hs if per_layer else [torch.cat(hs, 1)]) + ([v] if pixels else [])

        several = pixels or per_layer  # (one feature map and no pixels: one space, scaled or not the same ranking)
        ds, units = _space_scores(train, x, k, chunk, embed, scale=several)
        return sum(d / u for d, u in zip(ds, units)) if several else ds[0]
    finally:
        critic.train(was_training)


def score(
    method: str,
    x,
    *,
    trainer=None,
    encoder_trainer=None,
    train=None,
    labels=None,
    k: int | None = None,
    batch_size: int = 1024,
    features_layer: str | None = None,
) -> dict[str, torch.Tensor]:
    """Anomaly scores of (N, *shape) images, higher = more anomalous, by ``method``:
    "fanogan" (``encoder_trainer.score``: score, image, feature), "critic" (minus ``trainer.critic_score``;
    ``labels`` for a class-conditional run), "knn" (``knn_scores`` against ``train``, k default 1) or
    "critic-knn" (``critic_knn_scores`` of ``trainer.critic`` against ``train``, k default ``CRITIC_KNN_K``;
    ``features_layer`` names a user critic's feature layer).

    Returns:
        {"score": (N,) float64, ...} with the method's parts as extra entries.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "fanogan":
        if encoder_trainer is None:
            raise ValueError("method 'fanogan' needs a trained encoder (fastwgan encode RUN, or EncoderTrainer)")
        return encoder_trainer.score(x, batch_size=batch_size)
    if method in ("critic", "critic-knn") and trainer is None:
        raise ValueError(f"method {method!r} needs the trainer")
    if method == "critic":
        return {"score": -trainer.critic_score(x, batch_size=batch_size, labels=labels).double()}
    if train is None:
        raise ValueError(f"method {method!r} needs the training images (train=)")
    if method == "knn":
        return {"score": knn_scores(train, x, k=1 if k is None else k, chunk=batch_size)}
    k = CRITIC_KNN_K if k is None else k
    return {"score": critic_knn_scores(trainer.critic, train, x, k, layers=features_layer, chunk=batch_size)}


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
