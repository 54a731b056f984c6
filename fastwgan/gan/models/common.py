"""What every bundled model shares: the Critic / Generator wrappers, the argument checks, the spec tagging and the
readers of a model (`has_batch_norm`, `is_conditional`, `critic_has_classifier`).

The model contract (shapes, critic normalisation, class conditioning) is in the ``fastwgan.gan.models`` docstring.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..conditioning import ConditionalCritic, body_features, glorot_embedding

__all__ = [
    "CRITIC_NORMS",
    "CONDITIONINGS",
    "KINDS",
    "Critic",
    "Generator",
    "has_batch_norm",
    "is_conditional",
    "critic_has_classifier",
    "positive_int",
    "check_critic_norm",
    "check_conditioning",
    "check_data_shape",
    "tag_pair",
    "make_critic",
]

CRITIC_NORMS = ("none", "layer", "batch")
CONDITIONINGS = ("projection", "acgan")
KINDS = ("mlp", "dcgan", "resnet", "auto")


def has_batch_norm(module: nn.Module) -> bool:
    """True if any submodule is a batch norm (BatchNorm1d/2d/3d, SyncBatchNorm): it breaks the per-sample GP."""
    return any(isinstance(m, _BatchNorm) for m in module.modules())  # a ConditionalBatchNorm holds a _BatchNorm


def is_conditional(module: nn.Module) -> bool:
    """True for a generator or critic built with `num_classes` (read from its spec; False without a spec)."""
    spec = getattr(module, "spec", None)
    return isinstance(spec, dict) and spec.get("num_classes") is not None


def critic_has_classifier(module: nn.Module) -> bool:
    """True for a model of an AC-GAN pair (spec conditioning "acgan"): its critic returns (score, logits)."""
    return is_conditional(module) and module.spec.get("conditioning") == "acgan"


# ----------------------------------------------------------------------------------------------------------------
# Argument checks: ValueError naming the argument.
# ----------------------------------------------------------------------------------------------------------------
def positive_int(name: str, v) -> int:
    """`v` if it is a positive int (not a bool), else a ValueError naming `name`."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return v


def check_critic_norm(v: str) -> str:
    """`v` if it is one of `CRITIC_NORMS`, else a ValueError naming critic_norm."""
    if v not in CRITIC_NORMS:
        raise ValueError(f"critic_norm must be one of {CRITIC_NORMS}, got {v!r}")
    return v


def check_conditioning(num_classes, conditioning) -> tuple[int | None, str]:
    """(num_classes, conditioning) checked: num_classes None or an int >= 2, conditioning one of `CONDITIONINGS`
    ("acgan" only with num_classes)."""
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(f"num_classes must be None or an int >= 2, got {num_classes!r}")
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
    if num_classes is None and conditioning != "projection":
        raise ValueError(f"conditioning={conditioning!r} needs num_classes (a class-conditional model)")
    return num_classes, conditioning


def check_data_shape(data_shape) -> tuple[int, ...]:
    """The shape of one sample as a tuple of positive ints (an int n is (n,)), else a ValueError."""
    shape = (data_shape,) if isinstance(data_shape, int) and not isinstance(data_shape, bool) else data_shape
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"data_shape must be an int or a sequence of positive ints, got {data_shape!r}") from None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"data_shape must be a non-empty sequence of positive ints, got {data_shape!r}")
    return shape


def tag_pair(
    G: nn.Module, D: nn.Module, spec: dict, num_classes: int | None = None, conditioning: str = "projection"
) -> tuple[nn.Module, nn.Module]:
    """Set `G.spec` and `D.spec` to copies of `spec` (plus num_classes and conditioning for a conditional pair, so
    `build(**spec)` rebuilds it) and return (G, D)."""
    if num_classes is not None:  # unconditional specs stay exactly as they were
        spec = dict(spec, num_classes=num_classes, conditioning=conditioning)
    G.spec, D.spec = dict(spec), dict(spec)
    return G, D


class Critic(nn.Module):
    """Wraps a body ending in one output unit; returns (B,)."""

    def __init__(self, body: nn.Module, data_shape: tuple[int, ...]):
        super().__init__()
        self.body, self.data_shape = body, data_shape

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the features before the output layer, (B, *data_shape) -> (B, F) (f-AnoGAN's f)."""
        return body_features(self.body, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).reshape(x.shape[0])  # (B, 1) -> (B,)


class Generator(nn.Module):
    """Wraps a body from z (B, latent_dim); reshapes its output to (B, *data_shape)."""

    def __init__(self, body: nn.Module, latent_dim: int, data_shape: tuple[int, ...]):
        super().__init__()
        self.body, self.latent_dim, self.data_shape = body, latent_dim, data_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).reshape(z.shape[0], *self.data_shape)


def make_critic(
    body: nn.Module,
    shape: tuple[int, ...],
    features: int,
    num_classes: int | None,
    conditioning: str,
    classifier=nn.Linear,
) -> nn.Module:
    """The unconditional Critic, or a ConditionalCritic with its head (`classifier(F, K)` builds the AC head)."""
    if num_classes is None:
        return Critic(body, shape)
    extra = (
        glorot_embedding(num_classes, features) if conditioning == "projection" else classifier(features, num_classes)
    )
    return ConditionalCritic(body, shape, conditioning, extra)
