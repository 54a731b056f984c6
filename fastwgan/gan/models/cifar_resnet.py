"""The WGAN-GP paper's CIFAR-10 ResNet pair for 32 px images (Gulrajani et al. 2017, appendix; the authors'
gan_cifar_resnet.py): `resnet`, its residual blocks and their init; class-conditional with ``num_classes`` (the
contract is in ``fastwgan.gan.models``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..conditioning import ConditionalBatchNorm2d, ConditionalGenerator, call_with_labels
from .common import Generator, check_conditioning, check_critic_norm, make_critic, positive_int, tag_pair

__all__ = ["resnet", "OptimizedBlock"]


def _conv(cin: int, cout: int, k: int, he: bool = True) -> nn.Conv2d:
    """'same' conv initialised as the authors' lib.ops.conv2d: uniform, std sqrt(4 or 2 / (fan_in + fan_out))."""
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    std = math.sqrt((4.0 if he else 2.0) / (cin * k * k + cout * k * k))
    nn.init.uniform_(conv.weight, -std * math.sqrt(3.0), std * math.sqrt(3.0))
    nn.init.zeros_(conv.bias)
    return conv


def _glorot_linear(cin: int, cout: int) -> nn.Linear:
    lin = nn.Linear(cin, cout)
    std = math.sqrt(2.0 / (cin + cout))
    nn.init.uniform_(lin.weight, -std * math.sqrt(3.0), std * math.sqrt(3.0))
    nn.init.zeros_(lin.bias)
    return lin


class _ResBlock(nn.Module):
    """norm -> ReLU -> conv1 -> norm -> ReLU -> conv2, plus a shortcut (1x1 conv when resampling).

    resample "up" (generator): conv1 = nearest x2 then conv, shortcut = nearest x2 then 1x1 conv.
    resample "down" (critic): conv2 = conv then 2x2 mean pool, shortcut = 1x1 conv then mean pool.
    resample None: identity shortcut.
    num_classes (generator only): its batch norms are `ConditionalBatchNorm2d`s, called with y.
    """

    def __init__(self, dim: int, resample: str | None, norm: str, num_classes: int | None = None):
        super().__init__()
        self.resample = resample

        def make_norm() -> nn.Module:
            if norm == "batch" and num_classes is not None:
                return ConditionalBatchNorm2d(dim, num_classes)
            return {"batch": lambda: nn.BatchNorm2d(dim), "layer": lambda: nn.GroupNorm(1, dim), "none": nn.Identity}[
                norm
            ]()

        self.n1, self.n2 = make_norm(), make_norm()
        self.conv1, self.conv2 = _conv(dim, dim, 3), _conv(dim, dim, 3)
        self.shortcut = _conv(dim, dim, 1, he=False) if resample else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        up = nn.functional.interpolate
        if self.resample == "up":
            short = self.shortcut(up(x, scale_factor=2, mode="nearest"))
        elif self.resample == "down":
            short = nn.functional.avg_pool2d(self.shortcut(x), 2)
        else:
            short = x
        h = torch.relu(call_with_labels(self.n1, x, y))
        h = self.conv1(up(h, scale_factor=2, mode="nearest") if self.resample == "up" else h)
        h = self.conv2(torch.relu(call_with_labels(self.n2, h, y)))
        if self.resample == "down":
            h = nn.functional.avg_pool2d(h, 2)
        return short + h


class OptimizedBlock(nn.Module):
    """The critic's first block: conv -> ReLU -> conv -> mean pool, shortcut mean pool -> 1x1 conv; no norm."""

    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(cin, dim, 3), _conv(dim, dim, 3)
        self.shortcut = _conv(cin, dim, 1, he=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.shortcut(nn.functional.avg_pool2d(x, 2))
        h = nn.functional.avg_pool2d(self.conv2(torch.relu(self.conv1(x))), 2)
        return short + h


class _ResNetGeneratorBody(nn.Module):
    """With num_classes, every batch norm is a ConditionalBatchNorm2d and forward takes (z, y)."""

    def __init__(self, channels: int, latent_dim: int, dim: int, num_classes: int | None = None):
        super().__init__()
        self.dim = dim
        self.input = _glorot_linear(latent_dim, 4 * 4 * dim)
        self.blocks = nn.Sequential(*[_ResBlock(dim, "up", "batch", num_classes) for _ in range(3)])  # 4 -> 32
        self.norm = nn.BatchNorm2d(dim) if num_classes is None else ConditionalBatchNorm2d(dim, num_classes)
        self.output = _conv(dim, channels, 3, he=False)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.input(z).reshape(z.shape[0], self.dim, 4, 4)  # (B, dim, 4, 4)
        for block in self.blocks:  # 4 -> 8 -> 16 -> 32
            h = block(h, y)  # (B, dim, 32, 32)
        return torch.tanh(self.output(torch.relu(call_with_labels(self.norm, h, y))))  # (B, C, 32, 32)


class _ResNetCriticBody(nn.Module):
    def __init__(self, channels: int, dim: int, norm: str):
        super().__init__()
        self.blocks = nn.Sequential(
            OptimizedBlock(channels, dim),  # 32 -> 16
            _ResBlock(dim, "down", norm),  # 16 -> 8
            _ResBlock(dim, None, norm),
            _ResBlock(dim, None, norm),
        )
        self.output = _glorot_linear(dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.blocks(x)).mean(dim=(2, 3))  # (B, dim): global mean pool, phi(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))  # (B, 1)


def resnet(
    channels: int = 3,
    latent_dim: int = 128,
    dim: int = 128,
    critic_norm: str = "none",
    num_classes: int | None = None,
    conditioning: str = "projection",
) -> tuple[nn.Module, nn.Module]:
    """The WGAN-GP paper's CIFAR-10 ResNet pair for 32 px images.

    Generator: Linear(z -> dim*4*4), three up-sampling residual blocks (batch norm, ReLU, nearest x2 + 3x3 conv),
    batch norm, ReLU, 3x3 conv to `channels`, tanh. Critic: an optimised first down-sampling block (no norm),
    one down-sampling and two plain residual blocks (mean-pool shortcuts when down-sampling), ReLU, global mean
    pool, Linear(dim -> 1). Init as the authors' code (He / Glorot uniform, zero biases). Not bit-identical to it.

    Args:
        channels: 1 or 3.
        latent_dim: size of z (128 in the paper).
        dim: channels of every block (128 in the paper).
        critic_norm: "none" (the paper) | "layer" (GroupNorm(1, dim) in the critic's residual blocks) | "batch".
        num_classes: None (unconditional) or K >= 2: G(z, y) with every batch norm of the generator (in the blocks
            and the final one) a `ConditionalBatchNorm2d`; the critic is conditioned as below, phi(x) being the
            global mean pool after the last ReLU (F = dim).
        conditioning: with num_classes: "projection" (D(x, y) -> (B,), `D.embed` nn.Embedding(K, dim)) or
            "acgan" (D(x, y) -> ((B,), (B, K)), `D.classifier` nn.Linear(dim, K), Glorot uniform).
    Returns:
        (G, D): G(z) -> (B, channels, 32, 32), D(x) -> (B,); conditional: G(z, y), D(x, y).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    latent_dim, dim = positive_int("latent_dim", latent_dim), positive_int("dim", dim)
    critic_norm = check_critic_norm(critic_norm)
    num_classes, conditioning = check_conditioning(num_classes, conditioning)
    shape = (channels, 32, 32)
    if num_classes is None:
        G = Generator(_ResNetGeneratorBody(channels, latent_dim, dim), latent_dim, shape)
    else:
        G = ConditionalGenerator(
            _ResNetGeneratorBody(channels, latent_dim, dim, num_classes), latent_dim, shape, num_classes
        )
    D = make_critic(
        _ResNetCriticBody(channels, dim, critic_norm), shape, dim, num_classes, conditioning, classifier=_glorot_linear
    )
    spec = dict(kind="resnet", data_shape=list(shape), latent_dim=latent_dim, critic_norm=critic_norm, dim=dim)
    return tag_pair(G, D, spec, num_classes, conditioning)
