"""Wasserstein feature alignment for unsupervised domain adaptation: WDGRL (Shen, Qu, Zhang & Yu 2018,
"Wasserstein distance guided representation learning for domain adaptation", AAAI), Algorithm 1.

A feature extractor f_g: x -> h (B, F) and a classifier f_c: h -> logits (B, K) learn from labelled source data
(x_s, y_s); a domain critic f_w: h -> (B,) estimates the Wasserstein distance between the source and the target
features, and the extractor minimises that estimate, so that features of unlabelled target images x_t come to
look like source features and the classifier carries over. One step, on one source and one target batch:

    h_s = f_g(x_s), h_t = f_g(x_t)                                      (no gradient: f_g is fixed here)
    n_critic times, eps ~ U[0, 1]^B:
        L_wd   = mean f_w(h_s) - mean f_w(h_t)
        L_grad = mean over h in H of (||grad_h f_w(h)||_2 - 1)^2,  H = {h_s, h_t, eps h_s + (1 - eps) h_t}
        theta_w <- theta_w + alpha_1 grad (L_wd - gamma L_grad)       (the critic: ascent, gamma = gp_weight)
    theta_c <- theta_c - alpha_2 grad L_c,  theta_g <- theta_g - alpha_2 grad (L_c + lambda L_wd)
        L_c = cross-entropy of f_c(f_g(x_s)) against y_s

H, the paper's h-hat, holds the source and target features themselves beside the interpolates: eps in
{1, 0, u}. The critic's objective is ``fastwgan.gan.objectives.critic_objective`` (real = source features, fake =
target features), the same the GAN and translation critics use, through the same fused ops in the fast
trainer. With "clip" the critic is clamped instead. L_c does not depend on theta_w and L_wd not on theta_c, so
one optimizer step over (theta_g, theta_c) on L_c + lambda L_wd is the paper's two updates. The critic's
learning rate is ``TrainConfig.lr_d`` (alpha_1), the extractor's and classifier's ``lr_g`` (alpha_2); lambda is
``weight`` (1 by default, as the public PyTorch implementation's wd_clf).

The random stream (one CPU generator seeded with ``config.seed``), per step: idx_s = randint(0, N_s, (B,)),
idx_t = randint(0, N_t, (B,)), then eps[k] = rand(B) for k < n_critic (gp / lp only).

``ReferenceAdaptTrainer`` is the eager oracle; ``AdaptTrainer`` keeps the critic's parameters in one flat buffer
and the extractor's and classifier's in another, updates them with the fused optimizer, and runs each update
as one compiled graph. The losses are written once (``domain_critic_loss``, ``alignment_loss``).
"""

from .losses import WEIGHT, alignment_loss, digit_networks, domain_critic_loss
from .trainers import AdaptBase, AdaptTrainer, ReferenceAdaptTrainer

__all__ = [
    "AdaptTrainer",
    "ReferenceAdaptTrainer",
    "AdaptBase",
    "domain_critic_loss",
    "alignment_loss",
    "digit_networks",
    "WEIGHT",
]
