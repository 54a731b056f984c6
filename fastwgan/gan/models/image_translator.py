"""The image-to-image ``translator`` of unpaired translation (``fastwgan.uses.translate``): CycleGAN's residual
encoder-decoder scaled down for 8 to 64 px, the `Translator` wrapper that carries its spec, and `TRANSLATOR_SIZES`.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import positive_int

__all__ = ["Translator", "translator", "TRANSLATOR_SIZES"]

TRANSLATOR_SIZES = (8, 64)  # the image sizes the bundled translator is built for (inclusive)


class _TranslatorBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))): CycleGAN's residual block (3x3 convs, reflection padding)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c, affine=True),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Translator(nn.Module):
    """(B, channels_in, S, S) images in [-1, 1] -> (B, channels_out, S, S) images in [-1, 1] (``translator``)."""

    def __init__(self, body: nn.Module, spec: dict):
        super().__init__()
        self.body, self.spec = body, dict(spec)
        self.channels_in, self.channels_out = spec["channels_in"], spec["channels_out"]
        self.data_shape = (spec["channels_out"], spec["image_size"], spec["image_size"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def translator(image_size: int, channels_in: int, channels_out: int, width: int = 32, blocks: int = 3) -> Translator:
    """A small residual encoder-decoder for unpaired translation: CycleGAN's generator (Zhu et al. 2017, after
    Johnson et al. 2016) scaled down for 8 to 64 px images.

        conv3x3(width) -> IN -> ReLU                                  (B, width, S, S)
        d x [conv3x3 stride 2, channels x2 -> IN -> ReLU]             (B, width 2^d, S / 2^d, S / 2^d)
        ``blocks`` residual blocks                                    same
        d x [nearest x2 upsample, conv3x3, channels / 2 -> IN -> ReLU]  (B, width, S, S)
        conv3x3(channels_out) -> tanh                                 (B, channels_out, S, S)

    d = 1 below 32 px, 2 from 32 px; IN is instance norm with a learned affine (per sample, so a batch never mixes
    and the generator has no running statistics). The spec (``Translator.spec``) rebuilds it:
    ``translator(**spec)``.

    Args:
        image_size: S, 8..64, divisible by 2^d.
        channels_in, channels_out: the source's and the target's channels (1 or 3 each; may differ).
        width: channels of the first layer.
        blocks: residual blocks at the lowest resolution.
    """
    for name, v in (
        ("image_size", image_size),
        ("channels_in", channels_in),
        ("channels_out", channels_out),
        ("width", width),
        ("blocks", blocks),
    ):
        positive_int(name, v)
    lo, hi = TRANSLATOR_SIZES
    d = 1 if image_size < 32 else 2
    if not lo <= image_size <= hi or image_size % 2**d:
        raise ValueError(f"translator: image_size must be in {lo}..{hi} and divisible by {2**d}, got {image_size}")
    for name, v in (("channels_in", channels_in), ("channels_out", channels_out)):
        if v not in (1, 3):
            raise ValueError(f"translator: {name} must be 1 or 3, got {v}")
    layers: list[nn.Module] = [
        nn.Conv2d(channels_in, width, 3, padding=1),
        nn.InstanceNorm2d(width, affine=True),
        nn.ReLU(),
    ]
    c = width
    for _ in range(d):
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c, affine=True), nn.ReLU()]
        c *= 2
    layers += [_TranslatorBlock(c) for _ in range(blocks)]
    for _ in range(d):
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c, c // 2, 3, padding=1),
            nn.InstanceNorm2d(c // 2, affine=True),
            nn.ReLU(),
        ]
        c //= 2
    layers += [nn.Conv2d(c, channels_out, 3, padding=1), nn.Tanh()]
    spec = {
        "image_size": image_size,
        "channels_in": channels_in,
        "channels_out": channels_out,
        "width": width,
        "blocks": blocks,
    }
    return Translator(nn.Sequential(*layers), spec)
