"""Generators and critics: MLP, DCGAN (28/32/64 px) and the WGAN-GP paper's CIFAR-10 ResNet (32 px); and the
image-to-image ``translator`` of unpaired translation (``fastwgan.uses.translate``).

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

Modules: `common` (the Critic / Generator wrappers, argument checks, spec tagging, `has_batch_norm` and the spec
readers), `mlp_dcgan` (`mlp`, `dcgan`), `cifar_resnet` (`resnet`), `image_translator` (`translator`); this package
re-exports their public names and holds `build` and `auto_kind`. The conditional parts live in
``fastwgan.gan.conditioning``.
"""

from __future__ import annotations

from torch import nn

from ..conditioning import ConditionalBatchNorm1d, ConditionalBatchNorm2d, ConditionalCritic, ConditionalGenerator
from .cifar_resnet import resnet
from .common import (
    CONDITIONINGS,
    CRITIC_NORMS,
    KINDS,
    Critic,
    Generator,
    check_data_shape,
    critic_has_classifier,
    has_batch_norm,
    is_conditional,
)
from .image_translator import TRANSLATOR_SIZES, Translator, translator
from .mlp_dcgan import DCGAN_AUTO_SIZES, DCGAN_SIZES, dcgan, mlp

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


def auto_kind(data_shape) -> str:
    """The kind "auto" picks: "dcgan" for (C, S, S) with C in 1, 3 and S in 28, 32, 64, else "mlp"."""
    shape = check_data_shape(data_shape)
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
    shape = check_data_shape(data_shape)
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
