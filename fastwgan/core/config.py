"""Training configuration: one frozen, validated dataclass and the papers' presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

LOSSES = ("clip", "gp", "lp")
OPTIMIZERS = ("rmsprop", "adam")
DTYPES = ("float32", "bfloat16")
AUGMENTS = ("color", "translation", "cutout")  # DiffAugment's policies, in the order they are applied

# The presets are the papers' Algorithm 1 values (DESIGN.md section 1). Anything can be overridden.
PRESETS: dict[str, dict[str, Any]] = {
    # Arjovsky et al. 2017, Algorithm 1: RMSprop(5e-5), clip c = 0.01, n_critic = 5, m = 64.
    "wgan-clip": dict(
        loss="clip",
        optimizer="rmsprop",
        lr_d=5e-5,
        lr_g=5e-5,
        clip_value=0.01,
        n_critic=5,
        batch_size=64,
        latent_dim=100,
    ),
    # Gulrajani et al. 2017, Algorithm 1: Adam(1e-4, betas (0, 0.9)), lambda = 10, n_critic = 5, m = 64.
    "wgan-gp": dict(
        loss="gp",
        optimizer="adam",
        lr_d=1e-4,
        lr_g=1e-4,
        betas=(0.0, 0.9),
        gp_weight=10.0,
        n_critic=5,
        batch_size=64,
        latent_dim=128,
    ),
    # The WGAN-GP authors' own 2-D toy script: lambda 0.1 ("smaller lambda seems to help for toy tasks"),
    # Adam(1e-4, betas (0.5, 0.9)), batch 256, 2-D noise, n_critic 5.
    "wgan-gp-toy": dict(
        loss="gp",
        optimizer="adam",
        lr_d=1e-4,
        lr_g=1e-4,
        betas=(0.5, 0.9),
        gp_weight=0.1,
        n_critic=5,
        batch_size=256,
        latent_dim=2,
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines the WGAN algorithm of a run. Validated on construction.

    Fields:
        loss: "clip" (WGAN weight clipping), "gp" (WGAN-GP two-sided penalty (||g|| - 1)^2) or "lp"
            (Petzka et al. 2018 one-sided penalty max(0, ||g|| - 1)^2).
        n_critic: critic updates per generator update.
        lr_d, lr_g: learning rates of the critic and the generator.
        optimizer: "rmsprop" (PyTorch RMSprop, alpha = rmsprop_alpha, no momentum) or "adam" (betas).
        betas: Adam's (beta1, beta2).
        rmsprop_alpha: RMSprop's smoothing constant (PyTorch's default 0.99).
        opt_eps: the optimizers' epsilon.
        clip_value: c, the critic parameters are clamped to [-c, c] after every critic update ("clip" loss).
        gp_weight: lambda, the penalty weight ("gp" and "lp" losses).
        batch_size: m, samples per critic and generator update.
        latent_dim: size of the generator's noise z ~ N(0, I).
        seed: seeds the trainer's noise generator (see ``fastwgan.core.rng``); model init is the caller's.
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
        dtype: "float32", or "bfloat16" autocast for the networks (fast trainer; penalty and optimizers in fp32).
        num_classes: K for class-conditional training (``fit(..., labels=)``; the models are called ``G(z, y)``
            and ``D(x, y)``), None (default) for unconditional.
        ac_weight: (critic, generator) weights of the auxiliary-classifier cross-entropy, used when the critic
            has a classifier head (returns ``(score, logits)``): the critic's on real samples, the generator's on
            its fakes. Default (1.0, 0.1): Gulrajani et al. 2017's conditional CIFAR-10 model.
        augment: DiffAugment (Zhao et al. 2020) policies applied to every critic input, comma-separated from
            "color", "translation", "cutout" (stored in that order, the order they apply); "" (default, the
            papers' setting) augments nothing. See ``fastwgan.ops.augment``.
    """

    loss: str = "gp"
    n_critic: int = 5
    lr_d: float = 1e-4
    lr_g: float = 1e-4
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.0, 0.9)
    rmsprop_alpha: float = 0.99
    opt_eps: float = 1e-8
    clip_value: float = 0.01
    gp_weight: float = 10.0
    batch_size: int = 64
    latent_dim: int = 128
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    num_classes: int | None = None
    ac_weight: tuple[float, float] = (1.0, 0.1)
    augment: str = ""

    def __post_init__(self):
        for name in ("betas", "ac_weight"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        k = self.num_classes
        _check(k is None or (_is_int(k) and k >= 2), "num_classes", f"must be None or an integer >= 2, got {k!r}")
        a = self.ac_weight
        _check(
            isinstance(a, tuple) and len(a) == 2 and all(_is_real(x) and x >= 0 for x in a),
            "ac_weight",
            f"must be two non-negative numbers (critic, generator), got {a!r}",
        )
        _check(self.loss in LOSSES, "loss", f"must be one of {LOSSES}, got {self.loss!r}")
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.dtype in DTYPES, "dtype", f"must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("n_critic", "batch_size", "latent_dim"):
            v = getattr(self, name)
            _check(_is_int(v) and v >= 1, name, f"must be a positive integer, got {v!r}")
        _check(_is_int(self.seed) and self.seed >= 0, "seed", f"must be a non-negative integer, got {self.seed!r}")
        for name in ("lr_d", "lr_g", "opt_eps"):
            v = getattr(self, name)
            _check(_is_real(v) and v > 0, name, f"must be a positive finite number, got {v!r}")
        _check(
            _is_real(self.clip_value) and self.clip_value > 0,
            "clip_value",
            f"must be a positive finite number, got {self.clip_value!r}",
        )
        _check(
            _is_real(self.gp_weight) and self.gp_weight >= 0,
            "gp_weight",
            f"must be a non-negative finite number, got {self.gp_weight!r}",
        )
        _check(
            _is_real(self.rmsprop_alpha) and 0 <= self.rmsprop_alpha < 1,
            "rmsprop_alpha",
            f"must be in [0, 1), got {self.rmsprop_alpha!r}",
        )
        b = self.betas
        _check(
            isinstance(b, tuple) and len(b) == 2 and all(_is_real(x) and 0 <= x < 1 for x in b),
            "betas",
            f"must be two numbers in [0, 1), got {b!r}",
        )
        _check(isinstance(self.augment, str), "augment", f"must be a string, got {self.augment!r}")
        parts = [p.strip() for p in self.augment.split(",") if p.strip()]
        bad = [p for p in parts if p not in AUGMENTS]
        _check(
            not bad,
            "augment",
            f"unknown policy {', '.join(map(repr, bad))}; choose from {', '.join(AUGMENTS)} "
            "(comma-separated), or '' for none",
        )
        object.__setattr__(self, "augment", ",".join(a for a in AUGMENTS if a in parts))  # canonical order
        d = self.device
        _check(
            isinstance(d, str) and (d in ("cpu", "cuda", "auto") or (d.startswith("cuda:") and d[5:].isdigit())),
            "device",
            f"must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {d!r}",
        )

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """The papers' settings ("wgan-clip", "wgan-gp", "wgan-gp-toy") with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"preset: unknown config field(s) {sorted(unknown)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"], d["ac_weight"] = list(self.betas), list(self.ac_weight)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"config: unknown field(s) {sorted(unknown)}")
        return cls(**d)

    @property
    def uses_penalty(self) -> bool:
        return self.loss in ("gp", "lp")

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(ok: bool, name: str, msg: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name}: {msg}")


__all__ = ["TrainConfig", "PRESETS", "LOSSES"]
