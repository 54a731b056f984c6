"""The MLP and DCGAN pairs: `mlp` (the WGAN-GP toy nets, any data shape) and `dcgan` (square images of 8, 16, 28,
32 or 64 px), each with its class-conditional variant (``num_classes``); the contract is in ``fastwgan.gan.models``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..conditioning import ConditionalBatchNorm1d, ConditionalBatchNorm2d, ConditionalGenerator, CondSequential
from .common import (
    Generator,
    check_conditioning,
    check_critic_norm,
    check_data_shape,
    make_critic,
    positive_int,
    tag_pair,
)

__all__ = ["mlp", "dcgan", "DCGAN_SIZES", "DCGAN_AUTO_SIZES"]

# image size -> spatial size of the first feature map (doubled per stage)
DCGAN_SIZES = {8: 2, 16: 4, 28: 7, 32: 4, 64: 4}
DCGAN_AUTO_SIZES = (28, 32, 64)  # the sizes kind "auto" builds DCGAN for (smaller images: an MLP)


# ----------------------------------------------------------------------------------------------------------------
# MLP: the WGAN-GP toy nets (512 wide, 3 hidden ReLU layers); images are flattened.
# ----------------------------------------------------------------------------------------------------------------
def mlp(
    data_shape,
    latent_dim: int,
    hidden: int = 512,
    depth: int = 3,
    critic_norm: str = "none",
    output: str | None = None,
    num_classes: int | None = None,
    conditioning: str = "projection",
) -> tuple[nn.Module, nn.Module]:
    """ReLU MLP generator and critic with `depth` hidden layers of width `hidden`.

    Args:
        data_shape: shape of one sample, e.g. (2,) for toys or (1, 8, 8) for digits.
        latent_dim: size of z.
        critic_norm: "none" | "layer" (nn.LayerNorm over features) | "batch" (nn.BatchNorm1d), after each hidden
            linear layer of the critic.
        output: generator output "linear" | "tanh"; default linear for 1-D data_shape (toys), tanh otherwise.
        num_classes: None (unconditional) or K >= 2: G(z, y) concatenates `G.embed(y)` (nn.Embedding(K,
            latent_dim)) to z, so its first Linear takes 2 * latent_dim inputs; the critic is conditioned as below,
            phi(x) being the last hidden layer's ReLU output (F = hidden).
        conditioning: with num_classes: "projection" (D(x, y) -> (B,), `D.embed` nn.Embedding(K, hidden)) or
            "acgan" (D(x, y) -> ((B,), (B, K)), `D.classifier` nn.Linear(hidden, K)).
    Returns:
        (G, D): G(z) -> (B, *data_shape), D(x) -> (B,); conditional: G(z, y), D(x, y) as above.
    """
    shape, latent_dim = check_data_shape(data_shape), positive_int("latent_dim", latent_dim)
    hidden, depth = positive_int("hidden", hidden), positive_int("depth", depth)
    critic_norm = check_critic_norm(critic_norm)
    num_classes, conditioning = check_conditioning(num_classes, conditioning)
    output = output if output is not None else ("linear" if len(shape) == 1 else "tanh")
    if output not in ("linear", "tanh"):
        raise ValueError(f"output must be 'linear' or 'tanh', got {output!r}")
    n = math.prod(shape)
    g_in = latent_dim if num_classes is None else 2 * latent_dim  # z, or [z, embed(y)] with E = latent_dim

    g, d = [], [nn.Flatten()]
    for i in range(depth):
        g += [nn.Linear(g_in if i == 0 else hidden, hidden), nn.ReLU()]
        d.append(nn.Linear(n if i == 0 else hidden, hidden))
        if critic_norm == "layer":
            d.append(nn.LayerNorm(hidden))
        elif critic_norm == "batch":
            d.append(nn.BatchNorm1d(hidden))
        d.append(nn.ReLU())
    g.append(nn.Linear(hidden, n))
    if output == "tanh":
        g.append(nn.Tanh())
    d.append(nn.Linear(hidden, 1))
    spec = dict(
        kind="mlp",
        data_shape=list(shape),
        latent_dim=latent_dim,
        critic_norm=critic_norm,
        hidden=hidden,
        depth=depth,
        output=output,
    )
    if num_classes is None:
        G = Generator(nn.Sequential(*g), latent_dim, shape)
    else:
        G = ConditionalGenerator(
            CondSequential(*g), latent_dim, shape, num_classes, embed=nn.Embedding(num_classes, latent_dim)
        )
    D = make_critic(nn.Sequential(*d), shape, hidden, num_classes, conditioning)
    return tag_pair(G, D, spec, num_classes, conditioning)


# ----------------------------------------------------------------------------------------------------------------
# DCGAN (Radford et al. 2016), with the WGAN-GP code's linear first generator layer so 28 px works (7 -> 14 -> 28).
# ----------------------------------------------------------------------------------------------------------------
def _critic_norm_2d(kind: str, c: int) -> list[nn.Module]:
    if kind == "layer":
        return [nn.GroupNorm(1, c)]  # LayerNorm over (C, H, W) per sample, per-channel affine
    if kind == "batch":
        return [nn.BatchNorm2d(c)]
    return []


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN init: conv / linear weights N(0, 0.02), norm weights N(1, 0.02), all biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


class _Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


def dcgan(
    image_size: int,
    channels: int,
    latent_dim: int,
    width: int = 64,
    critic_norm: str = "none",
    num_classes: int | None = None,
    conditioning: str = "projection",
) -> tuple[nn.Module, nn.Module]:
    """DCGAN generator and critic for square images.

    Generator: Linear(z -> c0*s0*s0) + BatchNorm + ReLU, then stride-2 ConvTranspose(4x4) stages that double the
    size and halve the channels (BatchNorm + ReLU), the last one to `channels` with tanh. s0 = 7 for 28 px
    (7 -> 14 -> 28), 4 for 16, 32 and 64 px, 2 for 8 px; c0 = width * 2^(stages - 1).
    Critic: the mirror image: stride-2 Conv(4x4) stages with LeakyReLU(0.2) (normalised per `critic_norm` except
    the first), then Linear(c0*s0*s0 -> 1).

    Args:
        image_size: 28, 32 or 64 (DCGAN's sizes; kind "auto" builds these), or 8 or 16 (two stages: e.g. a
            convolutional critic for 8x8 digits).
        channels: 1 or 3.
        latent_dim: size of z.
        width: channels of the widest-resolution feature map (64 in DCGAN).
        critic_norm: "none" | "layer" (GroupNorm(1, C)) | "batch".
        num_classes: None (unconditional) or K >= 2: G(z, y) with every batch norm of the generator a
            `ConditionalBatchNorm1d` / `ConditionalBatchNorm2d`; the critic is conditioned as below, phi(x) being the
            flattened last conv stage (F = c0*s0*s0, the input of the final Linear).
        conditioning: with num_classes: "projection" (D(x, y) -> (B,), `D.embed` nn.Embedding(K, F)) or "acgan"
            (D(x, y) -> ((B,), (B, K)), `D.classifier` nn.Linear(F, K), DCGAN init).
    Returns:
        (G, D): G(z) -> (B, channels, image_size, image_size), D(x) -> (B,); conditional: G(z, y), D(x, y).
    """
    if image_size not in DCGAN_SIZES:
        raise ValueError(f"image_size must be one of {sorted(DCGAN_SIZES)} for dcgan, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    latent_dim, width = positive_int("latent_dim", latent_dim), positive_int("width", width)
    critic_norm = check_critic_norm(critic_norm)
    num_classes, conditioning = check_conditioning(num_classes, conditioning)
    s0 = DCGAN_SIZES[image_size]
    stages = int(math.log2(image_size // s0))  # 2 for 28, 3 for 32, 4 for 64
    chans = [width * 2 ** (stages - 1 - i) for i in range(stages)] + [channels]  # e.g. 32 px: 4w, 2w, w, C
    if num_classes is None:
        bn1d, bn2d = nn.BatchNorm1d, nn.BatchNorm2d
    else:

        def bn1d(c: int) -> nn.Module:
            return ConditionalBatchNorm1d(c, num_classes)

        def bn2d(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, num_classes)

    g: list[nn.Module] = [
        nn.Linear(latent_dim, chans[0] * s0 * s0, bias=False),
        bn1d(chans[0] * s0 * s0),
        nn.ReLU(),
        _Reshape(chans[0], s0, s0),
    ]
    for i in range(stages):
        last = i == stages - 1
        g.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=last))
        g += [nn.Tanh()] if last else [bn2d(chans[i + 1]), nn.ReLU()]

    d: list[nn.Module] = []
    rev = chans[::-1]  # C, w, 2w, ...
    for i in range(stages):
        norm = _critic_norm_2d(critic_norm, rev[i + 1]) if i > 0 else []
        d += [nn.Conv2d(rev[i], rev[i + 1], 4, 2, 1, bias=not norm), *norm, nn.LeakyReLU(0.2)]
    d += [nn.Flatten(), nn.Linear(chans[0] * s0 * s0, 1)]

    shape = (channels, image_size, image_size)
    if num_classes is None:
        G = Generator(nn.Sequential(*g), latent_dim, shape)
    else:
        G = ConditionalGenerator(CondSequential(*g), latent_dim, shape, num_classes)
    D = make_critic(nn.Sequential(*d), shape, chans[0] * s0 * s0, num_classes, conditioning)
    _dcgan_init(G)  # conditional batch norms keep their own init (gain 1, shift 0): no affine, no `bias`
    _dcgan_init(D)  # also the AC classifier (a Linear); the projection embedding is not touched
    spec = dict(kind="dcgan", data_shape=list(shape), latent_dim=latent_dim, critic_norm=critic_norm, width=width)
    return tag_pair(G, D, spec, num_classes, conditioning)
