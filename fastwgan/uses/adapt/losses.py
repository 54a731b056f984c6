"""WDGRL's losses (the package docstring), written once for the eager oracle and the compiled steps, and the
bundled networks for digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...gan import objectives

WEIGHT = 1.0  # lambda


# The losses, written once for both trainers
def domain_critic_loss(
    score,
    h_s: torch.Tensor,
    h_t: torch.Tensor,
    eps: torch.Tensor | None,
    loss: str,
    gp_weight: float,
    calculus: objectives.Calculus = objectives.EAGER,
):
    """The domain critic's loss -(L_wd - gamma L_grad) on source and target features (B, F) (module docstring).

    The penalty points H = {h_s, h_t, interpolates} are interpolations with eps in {1, 0, u}: real and fake are
    the features tiled three times, which leaves L_wd's means as they are.

    Returns:
        (loss, {"w_estimate", and with a penalty "gp", "grad_norm"}: detached 0-d tensors)
    """
    if eps is not None:
        ones = torch.ones_like(eps)
        eps = torch.cat([ones, 1 - ones, eps])  # (3B,): h_s, h_t, eps h_s + (1 - eps) h_t
        h_s, h_t = h_s.repeat(3, 1), h_t.repeat(3, 1)
    return objectives.critic_objective(score, h_s, h_t, eps, loss, gp_weight, calculus)


def alignment_loss(extract, classify, score, x_s, y_s, x_t, weight: float):
    """L_c + lambda L_wd, a function of the extractor's and the classifier's parameters (module docstring).

    Returns:
        (loss, {"model_loss", "classifier_loss", "wd"}: detached 0-d tensors)
    """
    h_s, h_t = extract(x_s), extract(x_t)  # (B, F) each
    l_c = F.cross_entropy(classify(h_s).float(), y_s)
    wd = score(h_s).mean() - score(h_t).mean()
    total = l_c + weight * wd
    return total, {"model_loss": total.detach(), "classifier_loss": l_c.detach(), "wd": wd.detach()}


def digit_networks(channels: int = 3, num_classes: int = 10, image_size: int = 8, hidden: int = 100, depth: int = 2):
    """The bundled networks: the extractor and classifier of ``fastwgan.eval.classifier.DigitClassifier`` (two 3x3
    convolutions of 32 and 64 channels, a 2x2 max pool, a 128-unit layer: the features; a linear head), its
    128-unit layer sized for ``image_size`` (even; 8: exactly DigitClassifier's, so its weights load), and a
    domain critic on the 128 features: fastwgan's MLP critic (``fastwgan.gan.models.mlp``, ``depth`` ReLU layers of
    ``hidden``, no normalisation). Seed torch before calling.

    Returns:
        (extractor, classifier, critic)
    """
    from ...eval.classifier import DigitClassifier
    from ...gan.models import mlp

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2 or image_size % 2:
        raise ValueError(f"digit_networks: image_size must be an even integer >= 2, got {image_size!r}")
    model = DigitClassifier(channels)
    i = next(i for i, m in enumerate(model.body) if isinstance(m, nn.Linear))
    if image_size != 8:
        model.body[i] = nn.Linear(64 * (image_size // 2) ** 2, model.body[i].out_features)
    if num_classes != 10:
        model.head = nn.Linear(model.head.in_features, num_classes)
    _, critic = mlp((model.head.in_features,), latent_dim=1, hidden=hidden, depth=depth)
    return model.body, model.head, critic
