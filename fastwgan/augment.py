"""DiffAugment: differentiable augmentation of every critic input (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS).

A critic trained on few images memorises them; augmenting only the reals would teach the generator the augmented
distribution. DiffAugment applies one random transform T to every image the critic sees, real or fake, in both
phases, and keeps T differentiable so the generator's gradient passes through it:

    critic:     L_D = E[D(T(G(z)))] - E[D(T(x))]  (+ lambda * penalty)
    generator:  L_G = -E[D(T(G(z)))]

T (``TrainConfig.augment``; per sample, each call with its own seed from the run's stream, ``fastwgan.rng``), in
the order of the paper's code:
    color:        x + (u1 - 1/2);  then (x - mean_C x) * 2 u2 + mean_C x;  then (x - mean x) * (u3 + 1/2) + mean x
    translation:  shift by integers in [-H/8, H/8] x [-W/8, W/8], zero fill
    cutout:       zero a square of half the image's side at a random centre
T is affine in x for fixed random draws, so its backward is its adjoint (``fastwgan.ops.diff_augment``: one fused
Triton kernel drawing its parameters in the kernel from the seed; ``fastwgan.twins.diff_augment``: the
plain-PyTorch twin, bit-identical draws).

Where the gradient penalty is taken. x_hat interpolates the AUGMENTED pair, eps T(x) + (1 - eps) T'(G(z)), and
the penalty is ||grad D(x_hat)|| - 1 on it. Why: the critic loss above is the Kantorovich-Rubinstein dual between
the augmented real and fake distributions, with D as the potential, and WGAN-GP asks D to be 1-Lipschitz on lines
between samples of exactly the two distributions the loss compares. Penalising D o T on the un-augmented pair
instead constrains another function (T's own Lipschitz constant enters: cutout and colour change it per sample)
on points the loss never evaluates, and needs a second-order gradient through T. The property is tested:
with augmentation the penalty equals the one computed by hand on the augmented pair (tests/test_augment.py).
"""

from __future__ import annotations

import torch

from . import ops


def apply(x: torch.Tensor, seed, policy: str, impl: str = "auto") -> torch.Tensor:
    """T(x): the DiffAugment ``policy`` (``TrainConfig.augment``) applied to a (B, C, H, W) batch.

    Args:
        x: (B, C, H, W) float images.
        seed: an int or 0-d int64 tensor; the per-sample draws are a hash of (seed, sample, parameter).
        policy: comma-separated "color", "translation", "cutout"; "" returns x.
        impl: "auto" (the Triton kernel where it runs), "triton" or "torch" (the twin).
    Returns:
        (B, C, H, W) augmented images, differentiable w.r.t. x.
    """
    if not policy:
        return x
    if x.dim() != 4:
        raise ValueError(
            f"augment: DiffAugment transforms images (B, C, H, W); got shape {tuple(x.shape)} "
            "(TrainConfig.augment needs image data)"
        )
    return ops.diff_augment(x, seed, policy, impl=impl)
