"""f-AnoGAN's encoder pieces (Schlegl et al. 2019, the "izi_f" architecture; the method: ``fastwgan.uses.anomaly``): its
settings, the networks E and f (the critic's features), and the residuals the encoder's loss and the anomaly score
share.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """The izi_f encoder's training settings (module docstring for their sources)."""

    kappa: float = 1.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("kappa", "lr", "eps"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
                or (name != "kappa" and v == 0)
            ):
                raise ValueError(
                    f"EncoderConfig.{name}: must be a {'non-negative' if name == 'kappa' else 'positive'}"
                    f" finite number, got {v!r}"
                )
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"EncoderConfig.betas: must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("batch_size", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "batch_size" else 0):
                raise ValueError(
                    f"EncoderConfig.{name}: must be a "
                    f"{'positive' if name == 'batch_size' else 'non-negative'}"
                    f" integer, got {v!r}"
                )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


class Encoder(nn.Module):
    """E(x) = Linear(phi(x)) -> (B, latent_dim): a feature extractor (B, *shape) -> (B, F) and a linear head."""

    def __init__(self, features: nn.Module, width: int, latent_dim: int, data_shape):
        super().__init__()
        self.features, self.head = features, nn.Linear(width, latent_dim)
        self.latent_dim, self.data_shape = latent_dim, tuple(data_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class BodyFeatures(nn.Module):
    """A bundled critic body without its output layer: phi(x) (``fastwgan.gan.conditioning.body_features``)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*list(body)[:-1]) if isinstance(body, nn.Sequential) else body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1) if isinstance(self.body, nn.Sequential) else self.body.features(x)


def encoder_for(spec: dict, seed: int = 0) -> Encoder:
    """The bundled izi_f encoder for a bundled model pair: the critic's architecture (MLP, DCGAN or ResNet, freshly
    initialised; batch norm becomes layer norm, so a sample's code does not depend on its batch) with its output
    layer replaced by a Linear to the latent size.

    Args:
        spec: the generator's ``spec`` (``G.spec``; a run's config.json "model").
        seed: initialises the encoder's weights (torch's global generator is left as it was).
    """
    from ...gan.models import build

    spec = {k: v for k, v in spec.items() if k not in ("num_classes", "conditioning")}
    if spec.get("critic_norm") == "batch":
        spec["critic_norm"] = "layer"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, critic = build(**spec)
        feats = BodyFeatures(critic.body)
        with torch.no_grad():
            width = feats(torch.zeros(2, *spec["data_shape"])).shape[1]
        return Encoder(feats, width, spec["latent_dim"], spec["data_shape"])


def critic_features(critic: nn.Module, layer: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """f, the critic's features: ``critic.features`` for the bundled critics, or for a user's critic the output of
    the named submodule (read with a forward hook, flattened to (B, F)).

    Args:
        critic: the WGAN's critic.
        layer: the submodule name (``dict(critic.named_modules())``), e.g. "body.5"; None: ``critic.features``.
    """
    if layer is None:
        if not hasattr(critic, "features"):
            raise ValueError(
                "critic: it has no features(x) method; name the layer whose output is f "
                "(features_layer=NAME, one of critic.named_modules())"
            )
        return critic.features
    modules = dict(critic.named_modules())
    if layer not in modules:
        names = ", ".join(n for n in modules if n)
        raise ValueError(f"features_layer: the critic has no submodule {layer!r}; it has: {names}")
    module = modules[layer]

    def f(x: torch.Tensor) -> torch.Tensor:
        out = []
        handle = module.register_forward_hook(lambda m, inp, o: out.append(o))
        try:
            critic(x)
        finally:
            handle.remove()
        return out[0].flatten(1)

    return f


def residuals(x: torch.Tensor, x_rec: torch.Tensor, f_x: torch.Tensor, f_rec: torch.Tensor):
    """The izi_f residuals per sample: (mse over pixels of x - G(E(x)), mse over features of f(x) - f(G(E(x)))),
    each (B,). The encoder's loss is mean(img + kappa feat); the anomaly score is img + kappa feat."""
    img = (x - x_rec).square().flatten(1).mean(1)
    feat = (f_x - f_rec).square().flatten(1).mean(1)
    return img, feat
