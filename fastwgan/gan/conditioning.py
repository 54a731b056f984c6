"""Class conditioning for the bundled models (``fastwgan.gan.models``, ``num_classes=K``): conditional batch norm,
the conditional generator wrapper and the projection / AC-GAN critic. The contract and the references are in the
``fastwgan.gan.models`` docstring; ``models`` re-exports the public classes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ConditionalBatchNorm1d",
    "ConditionalBatchNorm2d",
    "CondSequential",
    "ConditionalGenerator",
    "ConditionalCritic",
    "body_features",
    "call_with_labels",
    "glorot_embedding",
    "split_critic_output",
]


def split_critic_output(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A critic's output as (score, logits): a critic with a classifier head returns the pair, any other critic
    its score alone (logits None). The trainers and ``critic_score`` read critics through this."""
    return out if isinstance(out, tuple) else (out, None)


class _ConditionalBatchNorm(nn.Module):
    _bn = nn.BatchNorm2d

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.num_features, self.num_classes = num_features, num_classes
        self.bn = self._bn(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)  # per-class gain, init 1
        self.shift = nn.Embedding(num_classes, num_features)  # per-class bias, init 0
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        view = (x.shape[0], self.num_features) + (1,) * (x.dim() - 2)  # (B, C) or (B, C, 1, 1)
        return self.bn(x) * self.gain(y).reshape(view) + self.shift(y).reshape(view)


class ConditionalBatchNorm2d(_ConditionalBatchNorm):
    """BatchNorm2d(affine=False), then a per-class gain and bias: `bn(x) * gain(y) + shift(y)`.

    Args:
        num_features: channels C of x (B, C, H, W).
        num_classes: K; `gain` and `shift` are nn.Embedding(K, C), initialised to 1 and 0.
    Called as `cbn(x, y)` with y (B,) int64; returns (B, C, H, W).
    """

    _bn = nn.BatchNorm2d


class ConditionalBatchNorm1d(_ConditionalBatchNorm):
    """BatchNorm1d(affine=False) on x (B, C), then a per-class gain and bias as `ConditionalBatchNorm2d`."""

    _bn = nn.BatchNorm1d


def call_with_labels(m: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """m(x, y) for a conditional batch norm, m(x) otherwise (a branch on module type: fine for torch.compile)."""
    return m(x, y) if isinstance(m, _ConditionalBatchNorm) else m(x)


class CondSequential(nn.Sequential):
    """nn.Sequential that hands y to its conditional batch norms."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for m in self:
            x = call_with_labels(m, x, y)
        return x


class ConditionalGenerator(nn.Module):
    """G(z, y): z (B, latent_dim), y (B,) int64 -> (B, *data_shape).

    `body(h, y)` hands y to its conditional batch norms; `embed` (MLP only, else None) is an
    nn.Embedding(K, latent_dim) whose row for y is concatenated to z, h = [z, embed(y)].
    """

    def __init__(
        self,
        body: nn.Module,
        latent_dim: int,
        data_shape: tuple[int, ...],
        num_classes: int,
        embed: nn.Embedding | None = None,
    ):
        super().__init__()
        self.body, self.latent_dim, self.data_shape, self.num_classes = body, latent_dim, data_shape, num_classes
        self.embed = embed

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = z if self.embed is None else torch.cat([z, self.embed(y)], dim=1)  # (B, latent_dim [+ E])
        return self.body(h, y).reshape(z.shape[0], *self.data_shape)


class ConditionalCritic(nn.Module):
    """Critic with class information: `body` as the unconditional critic's (same parameter names), plus a head.

    phi(x) = `features(x)` (B, F) is the body without its last linear layer psi = `head` (F -> 1).
    "projection": `embed` = nn.Embedding(K, F); D(x, y) = psi(phi(x)) + <embed(y), phi(x)> -> (B,). y is (B,) int64
    class ids, or (B, K) float class probabilities p, whose embedding is the mixture p @ embed.weight (a classifier's
    soft reading: ``fastwgan.uses.pixelda``'s class-aware critic).
    "acgan": `classifier` = nn.Linear(F, K); D(x, y=None) -> (psi(phi(x)) (B,), classifier(phi(x)) (B, K)).
    """

    def __init__(self, body: nn.Module, data_shape: tuple[int, ...], conditioning: str, extra: nn.Module):
        super().__init__()
        self.body, self.data_shape, self.conditioning = body, data_shape, conditioning
        if conditioning == "projection":
            self.embed = extra
        else:
            self.classifier = extra

    @property
    def head(self) -> nn.Linear:
        return self.body[-1] if isinstance(self.body, nn.Sequential) else self.body.output

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): (B, *data_shape) -> (B, F)."""
        return body_features(self.body, x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.features(x)  # (B, F)
        score = self.head(h).reshape(x.shape[0])  # (B,)
        if self.conditioning == "acgan":
            return score, self.classifier(h)  # (B,), (B, K)
        if y is None:
            raise ValueError("a projection critic needs the labels: call D(x, y)")
        e = y.to(h.dtype) @ self.embed.weight if y.is_floating_point() else self.embed(y)  # (B, F)
        return score + (e * h).sum(dim=1)  # (B,): + <embed(y), phi(x)>


def body_features(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """phi(x), a bundled critic body's features before its last (output) layer: (B, *data_shape) -> (B, F). A
    Sequential body runs all but its last module; other bodies define ``features``."""
    if not isinstance(body, nn.Sequential):
        return body.features(x)
    for m in list(body)[:-1]:
        x = m(x)
    return x.flatten(1)


def glorot_embedding(num_classes: int, features: int) -> nn.Embedding:
    """The projection embedding, Glorot uniform as in Miyato & Koyama's code."""
    embed = nn.Embedding(num_classes, features)
    nn.init.xavier_uniform_(embed.weight)
    return embed
