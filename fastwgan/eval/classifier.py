"""A small digit classifier for the bundled 8x8 digits, trained by fastwgan in seconds on the CPU.

It powers two metrics for the bundled data (fastwgan.eval.evaluate):
  * classifier FID: the Frechet distance in its 128-d penultimate features (generated vs held-out real digits);
  * the stacked-digits mode count: each channel of a (3, 8, 8) stacked image is classified, mode = 100 r + 10 g + b.

It trains on the `digits-train` split only (fastwgan.data.digits_split), so the 500 held-out digits are unseen by
the classifier and by a GAN trained on `digits-train`. Weights are cached as safetensors (in a run folder's
`eval/`), keyed by the architecture and training settings, so every run is judged by the same network.

`train_classifier` also trains it on 3-channel (N, 3, 8, 8) images (e.g. the textured "digits-m"): the first
convolution then takes 3 channels (``DigitClassifier(channels=3)``); the cached evaluation classifier is 1-channel.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..core.images import photometric_draw, photometric_images

__all__ = [
    "DigitClassifier",
    "train_classifier",
    "accuracy",
    "train_digit_classifier",
    "digit_classifier",
    "features",
    "predict",
    "predict_stacked",
]

FILE = "digit_classifier.safetensors"
EPOCHS = 40
SEED = 0


class DigitClassifier(nn.Module):
    """(N, channels, 8, 8) float digits in [-1, 1] -> (N, 10) logits; ``features`` gives the (N, 128) penultimate
    layer. ``channels`` (1 or 3, default 1) is what the first convolution takes; it is kept as ``self.channels``.
    ``num_classes`` and ``image_size`` (even) size the head and the 128-unit layer for other class counts and square
    sizes (the defaults are the bundled digits')."""

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size: int = 8):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"DigitClassifier: channels must be 1 or 3, got {channels!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2 or image_size % 2:
            raise ValueError(f"DigitClassifier: image_size must be an even integer >= 2, got {image_size!r}")
        self.channels = channels
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),  # (N, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),  # (N, 64, 8, 8)
            nn.MaxPool2d(2),
            nn.Flatten(),  # (N, 1024)
            nn.Linear(64 * (image_size // 2) ** 2, 128),
            nn.ReLU(),  # (N, 128) features
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _as_input(x: torch.Tensor, channels: int = 1, size: int = 8) -> torch.Tensor:
    """Digits as float32 [-1, 1] on the CPU, checked to be (N, channels, size, size)."""
    from ..data import to_float

    x = torch.as_tensor(x).detach().cpu()
    x = to_float(x) if x.dtype == torch.uint8 else x.float()
    if x.dim() != 4 or x.shape[1:] != (channels, size, size):
        raise ValueError(
            f"digit classifier: expected (N, {channels}, {size}, {size}) images for a {channels}-channel "
            f"classifier, got shape {tuple(x.shape)}"
        )
    return x


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts by up to one pixel (zero-filled, i.e. background -1): cheap augmentation for 1297 images."""
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=g))
    out = torch.full_like(x, -1.0)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def train_classifier(
    x,
    y,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    seed: int = SEED,
    batch_size: int = 64,
    shift: bool = True,
    photometric: bool = False,
    model: nn.Module | None = None,
) -> DigitClassifier:
    """Train a DigitClassifier on digits ``x`` (N, C, 8, 8), C = 1 or 3 (uint8 or float in [-1, 1]), with labels
    ``y`` (N,): Adam 1e-3, cross entropy, optionally random 1-pixel shifts (the classic augmentation). The model
    takes C channels (``DigitClassifier(channels=C)``); with C = 1 it is exactly the 1-channel classifier.

    Args:
        epochs: passes over x; steps: optimizer steps instead (whole epochs of reshuffled batches until then), for
            comparing training sets of different sizes at the same cost. Exactly one of them.
        seed: initialisation, batch order, shifts and photometric draws.
        photometric: a random polarity, gain and offset per image and channel on every batch (after the shift;
            ``fastwgan.core.images.photometric_images``): for a target domain whose colours or polarity the source never
            shows (digits -> digits-m), off by default (it costs the shifts between gray digit sets).
        model: train this module (images (N, C, H, W) -> logits, e.g. ``fastwgan.uses.adapt.digit_networks``'s
            extractor and classifier in an ``nn.Sequential``; any square size) instead of a new DigitClassifier.
    Returns:
        the model in eval mode.
    Raises:
        ValueError: x is not (N, 1, 8, 8) or (N, 3, 8, 8), or x and y differ in length.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("train_classifier: give exactly one of epochs and steps")
    shape = tuple(torch.as_tensor(x).shape)
    if len(shape) != 4 or shape[1] not in (1, 3) or (model is None and shape[2:] != (8, 8)):
        raise ValueError(f"train_classifier: expected (N, 1, 8, 8) or (N, 3, 8, 8) images, got shape {shape}")
    channels = shape[1]
    x, y = _as_input(x, channels, shape[2] if model is not None else 8), torch.as_tensor(y).long()
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"train_classifier: {len(x)} images and {len(y)} labels")
    g = torch.Generator().manual_seed(seed)
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # initialisation, without touching the caller's global RNG
            model = DigitClassifier(channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dev = next(model.parameters()).device  # a given model may live on an accelerator
    model.train()
    done, epoch = 0, 0
    while (epochs is not None and epoch < epochs) or (steps is not None and done < steps):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            if steps is not None and done == steps:
                break
            idx = perm[i : i + batch_size]
            xb = _shift(x[idx], g) if shift else x[idx]
            if photometric:
                xb = photometric_images(xb, *photometric_draw(len(xb), channels, g))
            loss = nn.functional.cross_entropy(model(xb.to(dev)).float(), y[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
        epoch += 1
    model.eval()
    return model


def accuracy(model: DigitClassifier, x, y) -> float:
    """The fraction of digits ``x`` (N, model.channels, 8, 8) that ``model`` classifies as ``y``."""
    return float((predict(model, x) == torch.as_tensor(y)).float().mean())


def train_digit_classifier(
    epochs: int | None = None, seed: int = SEED, batch_size: int = 64
) -> tuple[DigitClassifier, float]:
    """Train the classifier on `digits-train` (``train_classifier``: Adam 1e-3, cross entropy, 1-pixel shifts).

    Args:
        epochs: passes over the 1297 training digits (default EPOCHS); seed: initialisation and batch order.
    Returns:
        (model in eval mode, accuracy on the 500 held-out digits).
    """
    from ..data import digits_split

    model = train_classifier(
        *digits_split("train"), epochs=EPOCHS if epochs is None else epochs, seed=seed, batch_size=batch_size
    )
    return model, accuracy(model, *digits_split("heldout"))


def user_cache() -> Path | None:
    """The per-user cache of the evaluation classifier: $FASTWGAN_CACHE, else $XDG_CACHE_HOME/fastwgan or
    ~/.cache/fastwgan; None when the variable is set to an empty string (no user cache)."""
    env = os.environ.get("FASTWGAN_CACHE")
    if env is not None:
        return Path(env) if env else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastwgan"


def digit_classifier(cache_dir: str | Path | None = None) -> tuple[DigitClassifier, dict]:
    """The evaluation classifier: loaded from ``cache_dir/digit_classifier.safetensors`` or the user cache
    (``user_cache()``) when it is there and was trained with the same settings, else trained (deterministic, ~12 s)
    and saved to both, so every run, and every run of the tests, is judged by the same network trained once.

    Returns:
        (model in eval mode, info dict: held-out accuracy, epochs, seed).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    meta = {"arch": "conv32-conv64-fc128", "epochs": str(EPOCHS), "seed": str(SEED)}  # the cache key
    paths = [Path(d) / FILE for d in (cache_dir, user_cache()) if d is not None]
    for path in paths:
        if not path.exists():
            continue
        try:
            with safe_open(str(path), "pt") as f:
                stored = f.metadata() or {}
            if all(stored.get(k) == v for k, v in meta.items()):
                model = DigitClassifier()
                model.load_state_dict(load_file(str(path)))
                model.eval()
                info = {"heldout_accuracy": float(stored["heldout_accuracy"]), **meta, "cached": True}
                _save(model, info["heldout_accuracy"], meta, [p for p in paths if not p.exists()])
                return model, info
        except (OSError, ValueError, KeyError, RuntimeError):
            continue  # a corrupt or foreign cache file: train again and overwrite it
    model, acc = train_digit_classifier(EPOCHS, SEED)
    _save(model, acc, meta, paths)
    return model, {"heldout_accuracy": acc, **meta, "cached": False}


def _save(model: DigitClassifier, acc: float, meta: dict, paths: list[Path]) -> None:
    from safetensors.torch import save_file

    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_file(
                {k: v.contiguous() for k, v in model.state_dict().items()},
                str(tmp),
                metadata={**meta, "heldout_accuracy": json.dumps(acc)},
            )
            tmp.replace(path)
        except OSError:
            pass  # a cache that cannot be written (read-only home) only costs a retraining next time


@torch.no_grad()
def features(model: DigitClassifier, x, batch_size: int = 2048) -> torch.Tensor:
    """(N, model.channels, 8, 8) digits (uint8 or float in [-1, 1]) -> (N, 128) float features."""
    x = _as_input(x, model.channels)
    return (
        torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        if len(x)
        else torch.zeros(0, 128)
    )


@torch.no_grad()
def predict(model: DigitClassifier, x, batch_size: int = 2048) -> torch.Tensor:
    """(N, model.channels, 8, 8) digits (uint8 or float in [-1, 1]) -> (N,) int64 predicted labels."""
    x = _as_input(x, model.channels)
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def predict_stacked(model: DigitClassifier, x) -> torch.Tensor:
    """(N, 3, 8, 8) stacked digits -> (N,) int64 modes 100 * label(R) + 10 * label(G) + label(B)."""
    x = torch.as_tensor(x)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"predict_stacked: expected (N, 3, 8, 8) images, got shape {tuple(x.shape)}")
    labels = predict(model, x.reshape(-1, 1, *x.shape[2:])).reshape(-1, 3)  # channel-major per sample
    return (labels * torch.tensor([100, 10, 1])).sum(1)
