"""The translation's losses (the package docstring's L_D and L_G), written once for the eager oracle and the
compiled steps; the networks are callables (modules, or functional calls).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...gan import objectives

DIRECTIONS = ("s2t", "t2s")
CYCLE_WEIGHT = 10.0  # CycleGAN's lambda_A = lambda_B
IDENTITY_RATIO = 0.5  # CycleGAN's lambda_identity: the identity weight relative to the cycle weight


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The mean absolute difference over all elements (nn.L1Loss, CycleGAN's cycle and identity criterion)."""
    return (a - b).abs().mean()


def critic_losses(
    g_st,
    g_ts,
    d_s,
    d_t,
    x_s,
    x_t,
    eps_s,
    eps_t,
    loss: str,
    gp_weight: float,
    calculus: objectives.Calculus = objectives.EAGER,
):
    """L_D of both critics on one pair of batches (module docstring), a function of the critics' parameters.

    Args:
        g_st, g_ts: the generators (their fakes are taken without gradient).
        d_s, d_t: the critics, x -> (B,) scores.
        x_s, x_t: (B, C_s, H, W), (B, C_t, H, W) real batches in [-1, 1].
        eps_s, eps_t: (B,) interpolation weights, None for "clip".
    Returns:
        (L_D, {"critic_loss", "w_t", "w_s"[, "gp_t", "gp_s"]}: detached 0-d tensors)
    """
    with torch.no_grad():
        fake_t, fake_s = g_st(x_s), g_ts(x_t)  # (B, C_t, H, W), (B, C_s, H, W)
    l_t, a_t = objectives.critic_objective(d_t, x_t, fake_t, eps_t, loss, gp_weight, calculus)
    l_s, a_s = objectives.critic_objective(d_s, x_s, fake_s, eps_s, loss, gp_weight, calculus)
    total = l_t + l_s
    aux = {"critic_loss": total.detach(), "w_t": a_t["w_estimate"], "w_s": a_s["w_estimate"]}
    if "gp" in a_t:
        aux.update(gp_t=a_t["gp"], gp_s=a_s["gp"])
    return total, aux


def generator_losses(
    g_st,
    g_ts,
    d_s,
    d_t,
    x_s,
    x_t,
    cycle_weight: float,
    identity_weight: float,
    classify=None,
    semantic_weight: float = 0.0,
):
    """L_G of both generators on one pair of batches (module docstring), a function of their parameters.

    With ``classify`` (a frozen classifier f of source-channel images) and ``semantic_weight`` > 0, CyCADA's
    semantic consistency (Hoffman et al. 2018, eq. 4) is added: a translation keeps the class f reads in its
    input, CE(f(G_st(x_s)), argmax f(x_s)) + CE(f(G_ts(x_t)), argmax f(x_t)).

    Returns:
        (L_G, {"generator_loss", "adversarial", "cycle", "identity"[, "semantic"]}: detached 0-d tensors; the
        cycle, identity and semantic entries unweighted, identity 0 when its weight is 0)
    """
    fake_t, fake_s = g_st(x_s), g_ts(x_t)
    adversarial = -(d_t(fake_t).mean() + d_s(fake_s).mean())
    cycle = l1(g_ts(fake_t), x_s) + l1(g_st(fake_s), x_t)
    total = adversarial + cycle_weight * cycle
    identity = torch.zeros((), device=x_s.device)
    if identity_weight:
        identity = l1(g_st(x_t), x_t) + l1(g_ts(x_s), x_s)
        total = total + identity_weight * identity
    aux = {
        "generator_loss": None,
        "adversarial": adversarial.detach(),
        "cycle": cycle.detach(),
        "identity": identity.detach(),
    }
    if classify is not None:
        with torch.no_grad():
            p_s, p_t = classify(x_s).argmax(1), classify(x_t).argmax(1)  # (B,) the classes f reads in the inputs
        semantic = F.cross_entropy(classify(fake_t).float(), p_s) + F.cross_entropy(classify(fake_s).float(), p_t)
        total = total + semantic_weight * semantic
        aux["semantic"] = semantic.detach()
    aux["generator_loss"] = total.detach()
    return total, aux
