"""PixelDA's losses (the package docstring's L_D and L_GT), written once for the eager oracle and the compiled steps;
the networks are callables (modules, or functional calls).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...core.images import photometric_images
from ...gan import objectives
from ..domains import shift_images

ADV_WEIGHT = 1.0  # alpha: the adversarial term's weight (ours, not tuned: the package docstring)
TASK_WEIGHT = 1.0  # beta: the task cross-entropies' weight (ours, not tuned)
CONTENT_WEIGHT = 0.0  # gamma: the content-similarity (PMSE) weight (off by default: ours; the paper masks it)
PRETRAIN_EPOCHS = 40  # T's warm start on the source alone (ours: the source-only baseline's recipe, 40 epochs)
SHIFT = True  # random 1-pixel shifts of T's two inputs in the G/T update (ours: the source-only baseline's recipe)
#: the semantic term's weight when a frozen classifier is given (``semantic=``): CyCADA's lambda_sem, 1 (Hoffman et
#: al. 2018; the translation trainer's too)
SEMANTIC_WEIGHT = 1.0
#: the mode-seeking term's weight (Mao et al. 2019, MSGAN): 0 = off (measured: the package docstring)
DIVERSITY_WEIGHT = 0.0
#: the class-aware critic (``class_critic``): D(x, softmax(T(x))), a projection critic (Miyato & Koyama 2018) on the
#: task classifier's reading, T frozen inside it and inside its gradient penalty (CDAN's idea, Long et al. 2018:
#: align the class-conditional distributions, not only the marginals): off (measured: the package docstring)
CLASS_CRITIC = False
DIVERSITY_EPS = 1e-5  # MSGAN's official code: 1 / (ratio + 1e-5)


def pmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The pairwise mean squared error of Bousmalis et al. (2017, eq. 5) without a mask, over all k elements of a
    sample: mean_b [ (1/k) ||d_b||^2 - (1/k^2) (sum d_b)^2 ], d = a - b. It penalises differences between pairs of
    pixels, not a constant shift of the whole image (a shift d = c costs 0)."""
    d = (a - b).flatten(1)  # (B, k)
    return (d.square().mean(1) - d.mean(1).square()).mean()


def critic_loss(
    score,
    x_t: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor | None,
    loss: str,
    gp_weight: float,
    calculus: objectives.Calculus = objectives.EAGER,
):
    """L_D: ``fastwgan.gan.objectives.critic_objective`` with real = target images x_t and fake = adapted source
    images G(x_s, z) (made without gradient), a function of the critic's parameters.

    Returns:
        (L_D, {"critic_loss", "w_estimate", and with a penalty "gp", "grad_norm"}: detached 0-d tensors)
    """
    total, aux = objectives.critic_objective(score, x_t, fake, eps, loss, gp_weight, calculus)
    aux["critic_loss"] = total.detach()
    return total, aux


def model_loss(
    generate,
    classify,
    score,
    x_s: torch.Tensor,
    y_s: torch.Tensor,
    z: torch.Tensor,
    adv_weight: float,
    task_weight: float,
    content_weight: float,
    source_task: bool = True,
    shift: torch.Tensor | None = None,
    *,
    semantic=None,
    semantic_weight: float = 0.0,
    z2: torch.Tensor | None = None,
    diversity_weight: float = 0.0,
    photo: tuple | None = None,
):
    """L_GT, a function of the generator's and the task classifier's parameters (package docstring):

        alpha (-mean D(G(x_s, z))) + beta (CE(T(G(x_s, z)), y_s) + CE(T(x_s), y_s)) + gamma PMSE(G(x_s, z), x_s)

    Args:
        generate: (x_s, z) -> adapted images; classify: images -> logits (B, K); score: images -> (B,) (fixed).
        x_s (B, C, H, W) in [-1, 1], y_s (B,) int64, z (B, noise_dim).
        source_task: include CE(T(x_s), y_s) (needs source images shaped like target images).
        shift: (B, 2) per-image 1-pixel shifts (``shift_images``; T's augmentation), or None: applied to T's two
            inputs, x_s and G(x_s, z), after G. The adversarial, content, semantic and mode-seeking terms see the
            unshifted G(x_s, z), the images the critic trains on (shifting G's input instead gave the critic shifted
            fakes it never trained on: at 8x8 a shift leaves an empty border row, which G was pushed to fill).
        semantic: a frozen classifier (images -> logits (B, K)) or None: with it, CyCADA's semantic consistency
            ``semantic_weight * CE(f(G(x_s, z)), y_s)`` is added (G must keep the TRUE source class as a classifier
            that does not train with it reads it; T, training with G, could learn to read whatever G makes).
        z2, diversity_weight: a second noise draw (B, noise_dim) and the weight of MSGAN's mode-seeking term
            ``diversity_weight / (mean|G(x_s, z2) - G(x_s, z)| / mean|z2 - z| + 1e-5)`` (Mao et al. 2019, eq. 3 as
            their code writes it): G must make different images of one source image under different noise (a
            generator that ignores z draws every target texture alike). Used when the weight is > 0.
        photo: (gain, offset), (B, C_s) each, or None: the photometric augmentation of x_s, before G and the shift
            (``fastwgan.core.images.photometric_images``), so that G, T and every term see the varied source.
    Returns:
        (L_GT, {"model_loss", "adversarial", "task_adapted", "task_source", "content"[, "semantic"][,
        "diversity"]}: detached 0-d tensors, the terms unweighted (diversity: the ratio); task_source 0 without
        ``source_task``, content 0 when its weight is 0)
    """
    if photo is not None:
        x_s = photometric_images(x_s, *photo)
    fake = generate(x_s, z)  # (B, C_t, H, W): the images the critic trains on, so the critic's score holds for them
    adversarial = -score(fake).mean()
    seen_fake = fake if shift is None else shift_images(fake, shift)  # T's augmentation: after G, not before
    task_adapted = F.cross_entropy(classify(seen_fake).float(), y_s)
    zero = torch.zeros((), device=x_s.device)
    task_source = zero
    if source_task:
        seen_s = x_s if shift is None else shift_images(x_s, shift)
        task_source = F.cross_entropy(classify(seen_s).float(), y_s)
    total = adv_weight * adversarial + task_weight * (task_adapted + task_source)
    content = zero
    if content_weight:
        content = pmse(fake, x_s)
        total = total + content_weight * content
    aux = {
        "adversarial": adversarial.detach(),
        "task_adapted": task_adapted.detach(),
        "task_source": task_source.detach(),
        "content": content.detach(),
    }
    if semantic is not None:
        sem = F.cross_entropy(semantic(fake).float(), y_s)
        total = total + semantic_weight * sem
        aux["semantic"] = sem.detach()
    if diversity_weight:
        if z2 is None:
            raise ValueError("model_loss: diversity_weight > 0 needs a second noise draw z2")
        ratio = (generate(x_s, z2) - fake).abs().mean() / (z2 - z).abs().mean()
        total = total + diversity_weight / (ratio + DIVERSITY_EPS)
        aux["diversity"] = ratio.detach()
    return total, {"model_loss": total.detach(), **aux}
