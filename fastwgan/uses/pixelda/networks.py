"""PixelDA's networks: the full-resolution residual generator G(x_s, z) of Bousmalis et al. (2017), and the bundled
digit trio (generator, critic, task classifier) that ``digit_networks`` builds.
"""

from __future__ import annotations

import torch
from torch import nn

NOISE_DIM = 10  # the paper's z: 10-d, U[-1, 1]
NORMS = ("batch", "none")
SKIP_SCALE = 0.98  # the skip's x -> atanh(0.98 x): finite at x = +-1 (+-2.3), so G(x, z) = 0.98 x at the start


class _ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))): the paper's generator block (3x3 convs, full resolution; the convs have no
    bias with batch norm)."""

    def __init__(self, c: int, norm: str):
        super().__init__()

        bn = norm == "batch"

        def conv_norm() -> list[nn.Module]:
            # no conv bias before batch norm: BN removes it, its gradient is rounding noise that Adam amplifies
            return [nn.Conv2d(c, c, 3, padding=1, bias=not bn), nn.BatchNorm2d(c) if bn else nn.Identity()]

        self.body = nn.Sequential(*conv_norm(), nn.ReLU(), *conv_norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PixelDAGenerator(nn.Module):
    """G(x_s, z): (B, channels_in, S, S) source images in [-1, 1] and (B, noise_dim) noise -> (B, channels_out, S,
    S) adapted images in [-1, 1], at full resolution (no down-sampling):

        z -> Linear(noise_dim, K S S) -> (B, K, S, S)                    K = noise_channels extra channels
        concat(x_s, that) -> conv3x3(width) -> ReLU                       (B, width, S, S)
        ``blocks`` residual blocks (conv-BN-ReLU-conv-BN, + x)            same
        conv3x3(channels_out) -> tanh                                     (B, channels_out, S, S)
        skip (default): tanh(atanh(0.98 x_s) + conv3x3(channels_out)), the conv zero-initialised, x_s repeated
            to channels_out when it has 1 channel: G starts as (nearly) the identity (ours; package docstring)

    The paper's MNIST -> MNIST-M generator: 64 filters, 6 residual blocks, z 10-d uniform; ``digit_networks``'
    defaults are smaller (ours, for 8x8 digits on a CPU). The paper feeds z as one channel (``noise_channels`` 1,
    the default); more give G room to carry a look (a colour, a texture) to every pixel (32-d noise into 8
    channels measured on the digit shifts: no gain, docs/domain-adaptation.md). ``norm="none"`` drops the
    batch norm. ``spec`` rebuilds it: ``PixelDAGenerator(**spec)`` (specs saved before ``noise_channels``: 1).
    """

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        image_size: int,
        width: int = 32,
        blocks: int = 3,
        noise_dim: int = NOISE_DIM,
        norm: str = "batch",
        skip: bool = True,
        noise_channels: int = 1,
    ):
        super().__init__()
        for name, v in (
            ("channels_in", channels_in),
            ("channels_out", channels_out),
            ("image_size", image_size),
            ("width", width),
            ("noise_dim", noise_dim),
            ("noise_channels", noise_channels),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PixelDAGenerator: {name} must be a positive integer, got {v!r}")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
            raise ValueError(f"PixelDAGenerator: blocks must be a non-negative integer, got {blocks!r}")
        if norm not in NORMS:
            raise ValueError(f"PixelDAGenerator: norm must be one of {NORMS}, got {norm!r}")
        if not isinstance(skip, bool):
            raise ValueError(f"PixelDAGenerator: skip must be True or False, got {skip!r}")
        if skip and channels_in not in (1, channels_out):
            raise ValueError(
                f"PixelDAGenerator: skip adds the source image to the output: channels_in must be 1 or channels_out "
                f"({channels_out}), got {channels_in}; set skip=False"
            )
        self.spec = {
            "channels_in": channels_in,
            "channels_out": channels_out,
            "image_size": image_size,
            "width": width,
            "blocks": blocks,
            "noise_dim": noise_dim,
            "norm": norm,
            "skip": skip,
            "noise_channels": noise_channels,
        }
        self.noise_dim, self.image_size, self.noise_channels = noise_dim, image_size, noise_channels
        self.noise = nn.Linear(noise_dim, noise_channels * image_size * image_size)
        self.head = nn.Sequential(nn.Conv2d(channels_in + noise_channels, width, 3, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(*[_ResidualBlock(width, norm) for _ in range(blocks)])
        self.skip, self.channels_out = skip, channels_out
        if skip:
            # the global skip: out = tanh(atanh(0.98 x) + conv(h)), the last conv zero: G starts as the identity
            self.tail = nn.Conv2d(width, channels_out, 3, padding=1)
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        else:
            self.tail = nn.Sequential(nn.Conv2d(width, channels_out, 3, padding=1), nn.Tanh())

    def body(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """tail(blocks(head(concat(x, noise channels)))): the output before the global skip."""
        s = self.image_size
        n = self.noise(z).view(-1, self.noise_channels, s, s)  # (B, K, S, S): the noise as K extra channels
        return self.tail(self.blocks(self.head(torch.cat([x, n], 1))))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = self.body(x, z)
        if not self.skip:
            return out
        base = torch.atanh(SKIP_SCALE * x).expand(-1, self.channels_out, -1, -1)  # (B, C_out, S, S)
        return torch.tanh(base + out)


def digit_classifier(channels: int, num_classes: int = 10, image_size: int = 8) -> nn.Module:
    """``fastwgan.eval.classifier.DigitClassifier(channels, num_classes, image_size)`` (at 8 px and 10 classes its
    trained weights load), carrying the ``spec`` that ``load_pixelda`` rebuilds it from."""
    from ...eval.classifier import DigitClassifier

    model = DigitClassifier(channels, num_classes, image_size)
    model.spec = {"channels": channels, "num_classes": num_classes, "image_size": image_size}
    return model


def digit_networks(
    channels_s: int,
    channels_t: int,
    num_classes: int = 10,
    image_size: int = 8,
    width: int = 32,
    blocks: int = 3,
    noise_dim: int = NOISE_DIM,
    norm: str = "batch",
    skip: bool = True,
    noise_channels: int = 1,
    class_critic: bool = False,
):
    """The bundled PixelDA networks for small images. Seed torch before calling.

    generator: ``PixelDAGenerator(channels_s, channels_t, image_size, width, blocks, noise_dim, norm, skip,
        noise_channels)`` (width 32 and 3 blocks: ours, sized to train in minutes on a 2-core CPU; the paper's are
        64 and 6).
    critic: fastwgan's DCGAN critic on target images (``fastwgan.gan.models.build("dcgan", ...)``, no
        normalisation, as WGAN-GP needs) where DCGAN has the size (8, 16, 28, 32, 64), else the MLP critic; with
        ``class_critic``, made class-aware (``class_aware``) for the trainers' ``class_critic=True``.
    classifier: ``digit_classifier(channels_t, num_classes, image_size)`` (DigitClassifier).
    Each carries a ``spec`` (``load_pixelda`` rebuilds them from it).

    Returns:
        (generator, critic, classifier)
    """
    from ...gan.models import DCGAN_SIZES, build

    gen = PixelDAGenerator(channels_s, channels_t, image_size, width, blocks, noise_dim, norm, skip, noise_channels)
    kind = "dcgan" if image_size in DCGAN_SIZES and channels_t in (1, 3) else "mlp"
    _, critic = build(kind, (channels_t, image_size, image_size), latent_dim=1)
    if class_critic:
        critic = class_aware(critic, num_classes)
    return gen, critic, digit_classifier(channels_t, num_classes, image_size)


def class_aware(critic: nn.Module, num_classes: int) -> nn.Module:
    """A bundled unconditional critic (``fastwgan.gan.models.build``) as fastwgan's projection critic D(x, p) on
    the same body, for ``class_critic=True``: D(x, p) = psi(phi(x)) + <p E, phi(x)>, p (B, K) the task classifier's
    class probabilities. The body keeps its parameters as drawn (so a run pairs with the unconditional one) and E
    starts at zero, drawing nothing from torch's generator: the critic starts as the unconditional one (ours, as
    measured with ``benchmarks/pixelda_diagnosis.py --variant condgp``; Miyato & Koyama draw E Glorot uniform). Its
    ``spec`` is the conditional critic's, which ``load_pixelda`` rebuilds."""
    from ...gan.conditioning import ConditionalCritic

    spec = getattr(critic, "spec", None)
    body = getattr(critic, "body", None)
    if spec is None or spec.get("num_classes") is not None or not isinstance(body, nn.Sequential):
        raise ValueError("class_aware: expects an unconditional critic from fastwgan.gan.models.build")
    features = body[-1].in_features
    embed = nn.Embedding(num_classes, features, _weight=torch.zeros(num_classes, features))
    out = ConditionalCritic(body, tuple(spec["data_shape"]), "projection", embed)
    out.spec = {**spec, "num_classes": num_classes, "conditioning": "projection"}
    return out
