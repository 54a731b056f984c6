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
# Digit-sized settings (not the defaults, which old runs rely on): CyCADA's digit experiments (Hoffman et al. 2018,
# SVHN -> MNIST, MNIST <-> USPS) weigh the cycle 1 and use no identity term, where CycleGAN's photo settings are
# cycle 10 and identity 0.5 x cycle. Pass them as cycle_weight= and identity_weight= for digits.
DIGIT_CYCLE_WEIGHT = 1.0
DIGIT_IDENTITY_WEIGHT = 0.0
# Ours, not CyCADA's: the t -> s semantic term counts only target images the frozen source classifier reads with
# max softmax >= this (on a real shift it misreads most target images; its confident readings are the reliable
# ones). None, or 1.0 and above, drops the t -> s term; 0 counts every target image (the paper's eq. 4).
SEMANTIC_THRESHOLD = 0.9


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
    *,
    y_s: torch.Tensor | None = None,
    semantic_threshold: float | None = SEMANTIC_THRESHOLD,
):
    """L_G of both generators on one pair of batches (module docstring), a function of their parameters.

    With ``classify`` (a frozen classifier f of source-channel images), CyCADA's semantic consistency (Hoffman et
    al. 2018, eq. 4) is added with weight ``semantic_weight``: a translation keeps the class of its input,
    ``semantic_term``.

    Args:
        y_s: (B,) the true classes of x_s (the s -> t term's targets); None: f's reading argmax f(x_s).
        semantic_threshold: the t -> s term counts only x_t with max softmax f(x_t) >= it (None or >= 1: no
            t -> s term).
    Returns:
        (L_G, {"generator_loss", "adversarial", "cycle", "identity"[, "semantic", "semantic_confident"]}: detached
        0-d tensors; the cycle, identity and semantic entries unweighted, identity 0 when its weight is 0;
        semantic_confident the fraction of x_t the t -> s term counts)
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
        semantic, confident = semantic_term(classify, x_s, x_t, fake_t, fake_s, y_s, semantic_threshold)
        total = total + semantic_weight * semantic
        aux["semantic"] = semantic.detach()
        if confident is not None:
            aux["semantic_confident"] = confident
    aux["generator_loss"] = total.detach()
    return total, aux


def semantic_term(classify, x_s, x_t, fake_t, fake_s, y_s=None, threshold: float | None = SEMANTIC_THRESHOLD):
    """CyCADA's semantic consistency with a frozen classifier f, as this library computes it:

        CE(f(G_st(x_s)), y_s)  +  sum_i m_i CE(f(G_ts(x_t))_i, argmax f(x_t)_i) / max(1, sum_i m_i),
        m_i = [max softmax f(x_t)_i >= threshold]

    The s -> t term uses the true source labels y_s (CyCADA's choice; argmax f(x_s) when None); the t -> s term is
    the mean over the target images f reads confidently (0 when none; no term when ``threshold`` is None or
    >= 1), a masked mean of fixed shape (no boolean indexing: one compiled graph whatever the mask).

    Returns:
        (the term, a 0-d tensor with a gradient; the fraction of x_t counted, detached, None without t -> s term)
    """
    with torch.no_grad():
        if y_s is None:
            y_s = classify(x_s).argmax(1)  # (B,) f's reading of the inputs
    s2t = F.cross_entropy(classify(fake_t).float(), y_s)
    if threshold is None or threshold >= 1:
        return s2t, None
    with torch.no_grad():
        conf, p_t = F.softmax(classify(x_t).float(), dim=1).max(1)  # (B,) f's confidence and reading
        mask = (conf >= threshold).float()
    ce_t = F.cross_entropy(classify(fake_s).float(), p_t, reduction="none")  # (B,)
    t2s = (ce_t * mask).sum() / mask.sum().clamp(min=1.0)
    return s2t + t2s, mask.mean()
