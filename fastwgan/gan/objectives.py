"""The Wasserstein critic objective, written once for the eager twins and the compiled steps of the uses that train
critics beside the GAN trainers: unpaired translation (``fastwgan.uses.translate``, a critic per image domain) and
Wasserstein feature alignment (``fastwgan.uses.adapt``, a critic on feature vectors).

For a critic D, real samples x_r and fake samples x_f (one batch each, the same shape):

    W      = mean_b D(x_r) - mean_b D(x_f)                          the critic's estimate of W(P_r, P_f)
    L_D    = -W                                                     "clip": then clamp D's parameters to [-c, c]
           = -W + lambda mean_b (||grad_x D(x_hat_b)||_2 - 1)^2     "gp" (Gulrajani et al. 2017)
           = -W + lambda mean_b max(0, ||grad_x D(x_hat_b)||_2 - 1)^2   "lp" (Petzka et al. 2018)
    x_hat  = eps x_r + (1 - eps) x_f,  eps ~ U[0, 1] one per sample; the norm over all non-batch dims.

What differs between the twins is only HOW the pieces are computed (``Calculus``): the eager twin
(``EAGER``) interpolates with plain tensor math, takes the input gradient with
``torch.autograd.grad(create_graph=True)`` and writes the penalty as plain math; a compiled step
(``compiled_calculus(...)``) takes the input gradient with an inner ``torch.func.grad`` (DESIGN facts 1-2) and
interpolates and penalises with fastwgan's registered ops (``fastwgan.ops``), the same ones the GAN trainer uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import grad

from .. import ops

__all__ = ["Calculus", "EAGER", "compiled_calculus", "critic_objective"]


@dataclass(frozen=True)
class Calculus:
    """How a step computes the penalty's pieces.

    Attributes:
        interpolate: (real, fake, eps (B,)) -> x_hat, one eps per sample.
        input_grad: (score, x_hat) -> d sum_b score(x_hat)_b / d x_hat, itself differentiable w.r.t. the critic's
            parameters.
        penalty: (g (B, ...), weight, one_sided) -> (weight * mean penalty, norms (B,)).
    """

    interpolate: Callable
    input_grad: Callable
    penalty: Callable


def _eager_interpolate(real, fake, eps):
    e = eps.view(-1, *([1] * (real.dim() - 1)))  # (B, 1, ...): one eps per sample, broadcast over the rest
    return e * real + (1 - e) * fake


def _eager_input_grad(score, x_hat):
    x = x_hat.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(score(x).sum(), x, create_graph=True)  # (B, ...)
    return g


def _eager_penalty(g, weight, one_sided):
    norms = g.flatten(1).norm(2, dim=1)  # (B,): the norm over all non-batch dims
    gap = torch.clamp(norms - 1, min=0) if one_sided else norms - 1
    return weight * (gap**2).mean(), norms


#: The eager twin's calculus: plain tensor math and autograd (reads like the papers' Algorithm 1).
EAGER = Calculus(_eager_interpolate, _eager_input_grad, _eager_penalty)


def compiled_calculus(interpolate_impl: str = "auto", penalty_impl: str = "torch") -> Calculus:
    """The compiled steps' calculus: torch.func for the input gradient, fastwgan's ops for the rest.

    Args:
        interpolate_impl, penalty_impl: the ops' ``impl`` ("auto" | "triton" | "torch"; ``fastwgan.ops``; the
            defaults are the GAN trainer's, ``fastwgan.gan.trainer.DEFAULT_IMPL``).
    """

    def interpolate(real, fake, eps):
        return ops.gp_interpolate(real, fake, eps, impl=interpolate_impl)

    def input_grad(score, x_hat):
        return grad(lambda x: score(x).sum())(x_hat)

    def penalty(g, weight, one_sided):
        return ops.gradient_penalty(g, weight, one_sided=one_sided, impl=penalty_impl, return_norms=True)

    return Calculus(interpolate, input_grad, penalty)


def critic_objective(
    score: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor | None,
    loss: str,
    gp_weight: float,
    calculus: Calculus = EAGER,
    real_scores: torch.Tensor | None = None,
):
    """L_D of one critic on one real and one fake batch (module docstring), as a function of the critic's
    parameters (those ``score`` closes over). The GAN trainer's fast step, the two-domain trainers and their eager
    twins all take their critic loss from here (the GAN's reference trainer keeps its own inline Algorithm-1 code:
    it is the independent oracle).

    Args:
        score: x (B, ...) -> (B,) critic scores.
        real, fake: (B, ...) batches; no gradient needs to flow into them.
        eps: (B,) interpolation weights ("gp", "lp"), None for "clip".
        loss: "clip" | "gp" | "lp" (``TrainConfig.loss``).
        gp_weight: lambda.
        calculus: ``EAGER`` or ``compiled_calculus(...)``.
        real_scores: ``score(real)`` when the caller has it already (a critic with a classifier head scores the
            real batch once for both heads).
    Returns:
        (loss, {"w_estimate", and for the penalties "gp" (unweighted) and "grad_norm"}: detached 0-d tensors)
    """
    w = (score(real) if real_scores is None else real_scores).mean() - score(fake).mean()
    out = -w
    aux = {"w_estimate": w.detach()}
    if loss in ("gp", "lp"):
        x_hat = calculus.interpolate(real, fake, eps)  # (B, ...)
        g = calculus.input_grad(score, x_hat)  # (B, ...)
        pen, norms = calculus.penalty(g, gp_weight, loss == "lp")
        out = out + pen
        gap = norms.detach() - 1
        aux["gp"] = (gap.clamp(min=0) if loss == "lp" else gap).square().mean()
        aux["grad_norm"] = norms.detach().mean()
    return out, aux
