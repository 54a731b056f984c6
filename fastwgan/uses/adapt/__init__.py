"""Feature alignment for unsupervised domain adaptation on one extractor and classifier, two methods:
WDGRL (Shen, Qu, Zhang & Yu 2018, "Wasserstein distance guided representation learning for domain adaptation",
AAAI, Algorithm 1) and DANN (Ganin et al. 2016, "Domain-adversarial training of neural networks", JMLR), the
non-Wasserstein baseline WDGRL claims to beat; and DIRT-T's refinement of an adapted classifier on the target alone
(``method="dirtt"``, below).

A feature extractor f_g: x -> h (B, F) and a classifier f_c: h -> logits (B, K) learn from labelled source data
(x_s, y_s); a domain network f_w: h -> (B,) on the features tells the source from the target, and the extractor
learns to defeat it, so that features of unlabelled target images x_t come to look like source features and the
classifier carries over. One step, on one source and one target batch:

    x_s <- shift(x_s, s_s), x_t <- shift(x_t, s_t)                      (``shift`` only: 1-pixel shifts)
    x_s <- clamp(a_s x_s + b_s, -1, 1)            (``photometric`` only: a_s, b_s (B, C), ``photometric_draw``)
    h_s = f_g(x_s), h_t = f_g(x_t)                                      (no gradient: f_g is fixed here)
    n_critic times, eps ~ U[0, 1]^B:
        WDGRL: L_wd   = mean f_w(h_s) - mean f_w(h_t)
               L_grad = mean over h in H of (||grad_h f_w(h)||_2 - 1)^2,  H = {h_s, h_t, eps h_s + (1 - eps) h_t}
               theta_w <- theta_w + alpha_1 grad (L_wd - gamma L_grad)  (the critic: ascent, gamma = gp_weight)
        DANN:  L_dom  = BCE(f_w(h_s), 1) / 2 + BCE(f_w(h_t), 0) / 2    (f_w: a domain classifier's logits)
               theta_w <- theta_w - alpha_1 grad L_dom
    clf_steps times, on the same batch:
        theta_c <- theta_c - alpha_2 grad L,  theta_g <- theta_g - alpha_2 grad L,
        L = L_c + lambda L_wd (WDGRL)  or  L_c - lambda L_dom (DANN: the gradient reversal layer's effect)
            + entropy_weight * mean_t H(softmax f_c(h_t))               (VADA's target entropy, Shu et al. 2018)
        L_c = cross-entropy of f_c(f_g(x_s)) against y_s

DIRT-T (Shu, Bui, Narui & Ermon 2018, "A DIRT-T approach to unsupervised domain adaptation", ICLR: the refinement
that follows its VADA; here it follows WDGRL or DANN, or any classifier): no critic (``critic=None``); from the
classifier it starts with, on target batches only (the source batch is read for the logged cross-entropy):

    teacher <- f (the parameters at the first step, then every ``TEACHER_EVERY`` steps)
    clf_steps times, d ~ N(0, I) of the batch's shape:
        r = radius * unit(H d), H = J^T F J: VAT's power step from d in its limit xi -> 0 (``vat_direction``)
        L = H(f(x_t)) + KL(f(x_t) || f(x_t + r)) + weight * KL(teacher(x_t) || f(x_t))    (f(x_t) fixed in the KLs)
        theta_c, theta_g <- Adam step on L

with the official code's settings (``CONFIGS["dirtt"]``: Adam 1e-3, betas (0.5, 0.999); weight 1 = its beta / lambda_t;
the radius its 3.5 at 32x32x3 scaled to the images' size, ``vat_radius``).

H, the paper's h-hat, holds the source and target features themselves beside the interpolates: eps in
{1, 0, u}. The WDGRL critic's objective is ``fastwgan.gan.objectives.critic_objective`` (real = source features,
fake = target features), the same the GAN and translation critics use, through the same fused ops in the fast
trainer. With "clip" the critic is clamped instead. L_c does not depend on theta_w and L_wd not on theta_c, so
one optimizer step over (theta_g, theta_c) is the paper's two updates. DANN's players are updated in turn rather
than at once through a reversal layer (the same gradients, one step apart).

Defaults, each from its source (``losses.py``): WDGRL clf_steps 1, n_critic 5, gamma 10, Adam 1e-4 with PyTorch's
default betas (0.9, 0.999) for all networks, batch 64: the public PyTorch port; lambda 0.1 (ours, measured on one
shift, ``WEIGHTS``); DANN lambda 1, one update each per step. ``default_config(method)`` gives the TrainConfig
(``TrainConfig.lr_d`` = alpha_1 for f_w, ``lr_g`` = alpha_2 for the rest); start both from a source-trained
classifier (``digit_networks`` carry ``fastwgan.eval.classifier.DigitClassifier``'s weights), as the ports do.
Logged beside the losses: the target predictions' entropy and the mean feature norms of both domains.

The random stream (one CPU generator seeded with ``config.seed``), per step: idx_s = randint(0, N_s, (B,)),
idx_t = randint(0, N_t, (B,)), then eps[k] = rand(B) for k < n_critic (WDGRL with gp / lp only), then
s_s = randint(-1, 2, (B, 2)), s_t = randint(-1, 2, (B, 2)) (``shift`` only), then the source's sign rand(B, 1),
gain rand(B, C) and offset rand(B, C) (``photometric`` only), then d = randn(clf_steps, B, C H W) (DIRT-T only).

shift(x, s) moves each image by its (dy, dx), the border filled with -1 (``fastwgan.uses.domains.shift_images``):
the source-only classifier's augmentation (``fastwgan.eval.classifier.train_classifier``), also PixelDA's; off by
default (``SHIFT``: the paper trains without augmentation, and measured here it did not help WDGRL).

photometric: clamp(a_s x_s + b_s, -1, 1) with a polarity (the sign of a_s, one per image), a gain |a_s| in
[0.3, 1] and an offset b_s in [-0.5, 0.5] per image and channel (``fastwgan.core.images.photometric_draw``): off
by default; for a target whose colours or polarity the source never shows (gray digits -> digits-m), started from a
classifier trained the same way (``train_classifier(photometric=True)``; ``fastwgan adapt --photometric`` does
both). Measured in docs/domain-adaptation.md: on digits -> digits-m it lifts WDGRL from 16% to 86% of the gap.

``ReferenceAdaptTrainer`` is the eager oracle; ``AdaptTrainer`` keeps the critic's parameters in one flat buffer
and the extractor's and classifier's in another, updates them with the fused optimizer, and runs each update
as one compiled graph. The losses are written once (``domain_critic_loss``, ``alignment_loss``).
"""

from .base import AdaptBase
from .losses import (
    CLF_STEPS,
    CONFIGS,
    METHODS,
    SHIFT,
    TEACHER_EVERY,
    VADA_ENTROPY_WEIGHT,
    VAT_RADIUS,
    WEIGHT,
    WEIGHTS,
    alignment_loss,
    default_config,
    digit_networks,
    domain_critic_loss,
    refinement_loss,
    vat_direction,
    vat_radius,
)
from .trainers import AdaptTrainer, ReferenceAdaptTrainer

__all__ = [
    "AdaptTrainer",
    "ReferenceAdaptTrainer",
    "AdaptBase",
    "domain_critic_loss",
    "alignment_loss",
    "refinement_loss",
    "vat_direction",
    "vat_radius",
    "TEACHER_EVERY",
    "VAT_RADIUS",
    "digit_networks",
    "WEIGHT",
    "WEIGHTS",
    "CLF_STEPS",
    "VADA_ENTROPY_WEIGHT",
    "SHIFT",
    "CONFIGS",
    "METHODS",
    "default_config",
]
