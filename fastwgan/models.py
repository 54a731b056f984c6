"""Generators and critics: MLP, DCGAN (28/32/64 px) and the WGAN-GP paper's CIFAR-10 ResNet (32 px); and the
image-to-image ``translator`` of unpaired translation (``fastwgan.translate``).

Contract: a generator maps z (B, latent_dim) to (B, *data_shape); a critic maps (B, *data_shape) to (B,), one
score per sample. Image generators end in tanh (data in [-1, 1], see `fastwgan.data.to_float`).

Critic normalisation (`critic_norm`):
    "none"   no normalisation (the WGAN-GP paper's choice for its unconditional CIFAR-10 ResNet)
    "layer"  per-sample layer norm: `nn.LayerNorm(features)` in MLPs, `nn.GroupNorm(1, C)` in conv nets, i.e. mean
             and variance over (C, H, W) of each sample with a per-channel affine, as the WGAN-GP code's layernorm.
             Each score depends on its own sample only, which the gradient penalty needs.
    "batch"  batch norm: allowed for the weight-clipping loss only; the trainer refuses it for GP (`has_batch_norm`).

Every factory returns (G, D) and sets `G.spec` = `D.spec` = a JSON-serialisable dict with `build(**spec)`
rebuilding the same architecture (checkpoints store it).

Class-conditional models (`num_classes=K`, K >= 2; with the default `num_classes=None` every model is exactly the
unconditional one: same modules, parameter names and initialisation in the same RNG order). y is (B,) int64 in
[0, K).
    Generator  G(z, y) -> (B, *data_shape). Where the generator has batch norm (dcgan, resnet) every BatchNorm2d /
               BatchNorm1d becomes a `ConditionalBatchNorm2d` / `ConditionalBatchNorm1d`: batch norm without affine,
               then a per-class gain (init 1) and bias (init 0) looked up in two nn.Embedding(K, C) (de Vries et
               al. 2017). The MLP generator (no norm) concatenates a learned nn.Embedding(K, latent_dim) of y to z.
    Critic     phi(x) (B, F) is the feature vector before the critic's last linear layer psi (F -> 1).
               conditioning="projection" (Miyato & Koyama 2018): D(x, y) = psi(phi(x)) + <embed(y), phi(x)> -> (B,),
                   embed an nn.Embedding(K, F) (Glorot uniform init, as the authors' code).
               conditioning="acgan" (Odena et al. 2017): D(x, y) -> (score (B,), logits (B, K)), score = psi(phi(x)),
                   logits from an extra linear head nn.Linear(F, K) on phi(x); y is accepted and ignored (may be None).
The conditioning adds no batch norm to a critic, so a "none"/"layer" critic stays per-sample (the penalty needs
that); `critic_norm` rules are unchanged. The forwards use no control flow on tensor values, so they trace under
`torch.func` (functional_call, grad w.r.t. x with y fixed) and `torch.compile(fullgraph=True)`. Conditional specs
add "num_classes" and "conditioning"; unconditional specs do not have them. `is_conditional` and
`critic_has_classifier` read the spec.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .conditioning import (
    ConditionalBatchNorm1d,
    ConditionalBatchNorm2d,
    ConditionalCritic,
    ConditionalGenerator,
    CondSequential,
    body_features,
    call_with_labels,
    glorot_embedding,
)

__all__ = [
    "Generator",
    "Critic",
    "ConditionalGenerator",
    "ConditionalCritic",
    "ConditionalBatchNorm1d",
    "ConditionalBatchNorm2d",
    "CRITIC_NORMS",
    "CONDITIONINGS",
    "KINDS",
    "DCGAN_SIZES",
    "mlp",
    "dcgan",
    "resnet",
    "build",
    "auto_kind",
    "has_batch_norm",
    "is_conditional",
    "critic_has_classifier",
    "Translator",
    "translator",
    "TRANSLATOR_SIZES",
]

CRITIC_NORMS = ("none", "layer", "batch")
CONDITIONINGS = ("projection", "acgan")
KINDS = ("mlp", "dcgan", "resnet", "auto")
# image size -> spatial size of the first feature map (doubled per stage)
DCGAN_SIZES = {8: 2, 16: 4, 28: 7, 32: 4, 64: 4}
DCGAN_AUTO_SIZES = (28, 32, 64)  # the sizes kind "auto" builds DCGAN for (smaller images: an MLP)


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
def _pos_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return v


def _norm(v: str) -> str:
    if v not in CRITIC_NORMS:
        raise ValueError(f"critic_norm must be one of {CRITIC_NORMS}, got {v!r}")
    return v


def _conditioning(num_classes, conditioning) -> tuple[int | None, str]:
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(f"num_classes must be None or an int >= 2, got {num_classes!r}")
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
    if num_classes is None and conditioning != "projection":
        raise ValueError(f"conditioning={conditioning!r} needs num_classes (a class-conditional model)")
    return num_classes, conditioning


def _shape(data_shape) -> tuple[int, ...]:
    shape = (data_shape,) if isinstance(data_shape, int) and not isinstance(data_shape, bool) else data_shape
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"data_shape must be an int or a sequence of positive ints, got {data_shape!r}") from None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"data_shape must be a non-empty sequence of positive ints, got {data_shape!r}")
    return shape


def _tag(
    G: nn.Module, D: nn.Module, spec: dict, num_classes: int | None = None, conditioning: str = "projection"
) -> tuple[nn.Module, nn.Module]:
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


def _critic(
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
    shape, latent_dim = _shape(data_shape), _pos_int("latent_dim", latent_dim)
    hidden, depth, critic_norm = _pos_int("hidden", hidden), _pos_int("depth", depth), _norm(critic_norm)
    num_classes, conditioning = _conditioning(num_classes, conditioning)
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
    D = _critic(nn.Sequential(*d), shape, hidden, num_classes, conditioning)
    return _tag(G, D, spec, num_classes, conditioning)


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
    latent_dim, width, critic_norm = _pos_int("latent_dim", latent_dim), _pos_int("width", width), _norm(critic_norm)
    num_classes, conditioning = _conditioning(num_classes, conditioning)
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
    D = _critic(nn.Sequential(*d), shape, chans[0] * s0 * s0, num_classes, conditioning)
    _dcgan_init(G)  # conditional batch norms keep their own init (gain 1, shift 0): no affine, no `bias`
    _dcgan_init(D)  # also the AC classifier (a Linear); the projection embedding is not touched
    spec = dict(kind="dcgan", data_shape=list(shape), latent_dim=latent_dim, critic_norm=critic_norm, width=width)
    return _tag(G, D, spec, num_classes, conditioning)


# ----------------------------------------------------------------------------------------------------------------
# ResNet of the WGAN-GP paper's CIFAR-10 experiment (Gulrajani et al. 2017, appendix; gan_cifar_resnet.py).
# ----------------------------------------------------------------------------------------------------------------
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


class _OptimizedBlock(nn.Module):
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
            _OptimizedBlock(channels, dim),  # 32 -> 16
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
    latent_dim, dim, critic_norm = _pos_int("latent_dim", latent_dim), _pos_int("dim", dim), _norm(critic_norm)
    num_classes, conditioning = _conditioning(num_classes, conditioning)
    shape = (channels, 32, 32)
    if num_classes is None:
        G = Generator(_ResNetGeneratorBody(channels, latent_dim, dim), latent_dim, shape)
    else:
        G = ConditionalGenerator(
            _ResNetGeneratorBody(channels, latent_dim, dim, num_classes), latent_dim, shape, num_classes
        )
    D = _critic(
        _ResNetCriticBody(channels, dim, critic_norm), shape, dim, num_classes, conditioning, classifier=_glorot_linear
    )
    spec = dict(kind="resnet", data_shape=list(shape), latent_dim=latent_dim, critic_norm=critic_norm, dim=dim)
    return _tag(G, D, spec, num_classes, conditioning)


# ----------------------------------------------------------------------------------------------------------------
# One entry point from a JSON-able spec.
# ----------------------------------------------------------------------------------------------------------------
def auto_kind(data_shape) -> str:
    """The kind "auto" picks: "dcgan" for (C, S, S) with C in 1, 3 and S in 28, 32, 64, else "mlp"."""
    shape = _shape(data_shape)
    image = len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2]
    return "dcgan" if image and shape[1] in DCGAN_AUTO_SIZES else "mlp"


def build(
    kind: str,
    data_shape,
    latent_dim: int,
    critic_norm: str = "none",
    num_classes: int | None = None,
    conditioning: str = "projection",
    **kw,
) -> tuple[nn.Module, nn.Module]:
    """Build (G, D) by name; `build(**G.spec)` rebuilds any pair made here.

    Args:
        kind: "mlp" | "dcgan" | "resnet" | "auto" (dcgan for (C, S, S) data with C in 1, 3 and S in 28, 32, 64;
            mlp otherwise, e.g. 8x8 digits or 2-D toys).
        data_shape: shape of one sample.
        latent_dim: size of z.
        critic_norm: "none" | "layer" | "batch".
        num_classes: None (unconditional: G(z), D(x)) or K >= 2 (class-conditional: G(z, y), D(x, y)).
        conditioning: with num_classes: "projection" (D(x, y) -> (B,)) or "acgan" (D(x, y) -> ((B,), (B, K))).
        **kw: the model's own options: mlp: hidden, depth, output; dcgan: width; resnet: dim.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    shape = _shape(data_shape)
    image = len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2]
    if kind == "auto":
        kind = auto_kind(shape)
    allowed = {"mlp": {"hidden", "depth", "output"}, "dcgan": {"width"}, "resnet": {"dim"}}[kind]
    unknown = set(kw) - allowed
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for kind {kind!r}; allowed: {sorted(allowed)}")
    cond = dict(num_classes=num_classes, conditioning=conditioning)
    if kind == "mlp":
        return mlp(shape, latent_dim, critic_norm=critic_norm, **cond, **kw)
    if not image:
        raise ValueError(f"data_shape must be (C, S, S) with C in 1, 3 for kind {kind!r}, got {data_shape!r}")
    if kind == "dcgan":
        return dcgan(shape[1], shape[0], latent_dim, critic_norm=critic_norm, **cond, **kw)
    if shape[1] != 32:
        raise ValueError(f"data_shape must be (C, 32, 32) for kind 'resnet', got {data_shape!r}")
    return resnet(shape[0], latent_dim, critic_norm=critic_norm, **cond, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Translator: the generator of unpaired image-to-image translation (fastwgan.translate).
# ----------------------------------------------------------------------------------------------------------------
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
        _pos_int(name, v)
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
