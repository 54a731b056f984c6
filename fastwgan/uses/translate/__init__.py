"""Unpaired image-to-image translation with Wasserstein critics: CycleGAN (Zhu, Park, Isola & Efros 2017,
"Unpaired image-to-image translation using cycle-consistent adversarial networks", ICCV) with each adversarial
loss a WGAN critic's (weight clipping, or the gradient penalty of Gulrajani et al. 2017; ``TrainConfig.loss``).

Domains S and T (uint8 image sets of one size, unpaired; the channels may differ), generators G_st: S -> T and
G_ts: T -> S, critics D_s on S and D_t on T. One step:

    n_critic times:   x_s ~ S, x_t ~ T (B each), eps_s, eps_t ~ U[0, 1]^B
        L_D = L_W(D_t; real x_t, fake G_st(x_s), eps_t) + L_W(D_s; real x_s, fake G_ts(x_t), eps_s)
        one optimizer step over D_s and D_t (each critic's gradient is its own term's); clip: clamp both
    once:             x_s ~ S, x_t ~ T
        L_G = -mean D_t(G_st(x_s)) - mean D_s(G_ts(x_t))                                          adversarial
              + lambda_cyc (|G_ts(G_st(x_s)) - x_s|_1 + |G_st(G_ts(x_t)) - x_t|_1)                cycle
              + lambda_id (|G_st(x_t) - x_t|_1 + |G_ts(x_s) - x_s|_1)                             identity
        one optimizer step over G_st and G_ts (CycleGAN's one Adam over both generators)

L_W is the critic objective of ``fastwgan.gan.objectives`` (-W, plus lambda times the per-sample penalty at
x_hat = eps x_real + (1 - eps) x_fake); |.|_1 is the mean absolute difference over all elements (nn.L1Loss).
lambda_cyc = 10 and lambda_id = 0.5 lambda_cyc are CycleGAN's defaults (its lambda_identity 0.5 scales
lambda_A). The identity term feeds a T image to G_st, so it needs both domains to have the same channels; when
they differ its default is 0. For digits, CyCADA's settings are cycle 1 and no identity term: pass
``cycle_weight=DIGIT_CYCLE_WEIGHT, identity_weight=DIGIT_IDENTITY_WEIGHT`` (the defaults stay CycleGAN's, which
old runs rely on). The critics' learning rate is ``lr_d``, the generators' ``lr_g``; both use
``TrainConfig.optimizer`` (the "wgan-gp" preset: Adam 1e-4, betas (0, 0.9), lambda 10, n_critic 5).

Optional, CyCADA's semantic consistency (Hoffman et al. 2018, "CyCADA: cycle-consistent adversarial domain
adaptation", ICML, eq. 4): with a frozen classifier f of source images (``semantic=``), L_G also gets
lambda_sem (L_st + L_ts) (``semantic_term``): a translation must keep the class of its input (CycleGAN alone may
turn a 6 into a 7 and hide the 6 in faint texture, which the cycle then reads back).

    L_st = CE(f(G_st(x_s)), y_s)        y_s the true source labels (``fit(labels=)``, as CyCADA); without
                                        labels, f's reading argmax f(x_s)
    L_ts = sum_i m_i CE(f(G_ts(x_t))_i, argmax f(x_t)_i) / max(1, sum_i m_i),
           m_i = [max softmax f(x_t)_i >= semantic_threshold]

On a real shift f misreads most target images, so the t -> s term counts only those it reads confidently
(``semantic_threshold``, ours: 0.9; 0 counts all, the paper's term; None or >= 1 drops L_ts). A masked mean of
fixed shape: 0 when no image is confident, one compiled graph whatever the mask. The share counted is logged as
``semantic_confident``. Labels are a tensor (N_s,) beside tensor data, or ``labels=True`` with a source
DataLoader of (x, y) batches; they are gathered with the same rows as the images (the stream below is unchanged).

The random stream (one CPU generator seeded with ``config.seed``), per step, in this order:

    for k in range(n_critic):  idx_s[k] = randint(0, N_s, (B,)); idx_t[k] = randint(0, N_t, (B,))
                               eps_t[k] = rand(B); eps_s[k] = rand(B)           (gp / lp only)
    gen_s = randint(0, N_s, (B,)); gen_t = randint(0, N_t, (B,))               the generator update's batches

The losses are written once (``critic_losses``, ``generator_losses``) and shared by the eager oracle
``ReferenceTranslationTrainer`` (autograd, torch.optim) and the fast ``TranslationTrainer`` (the four networks'
parameters in two flat buffers, critics and generators, updated by the fused optimizer (``fastwgan.core.optimizers``);
the penalty through fastwgan's ops and an inner torch.func gradient; each update one compiled graph).
"""

from .base import TranslationBase
from .losses import (
    CYCLE_WEIGHT,
    DIGIT_CYCLE_WEIGHT,
    DIGIT_IDENTITY_WEIGHT,
    DIRECTIONS,
    IDENTITY_RATIO,
    SEMANTIC_THRESHOLD,
    critic_losses,
    generator_losses,
    l1,
    semantic_term,
)
from .trainers import ReferenceTranslationTrainer, TranslationTrainer, load_translation

__all__ = [
    "TranslationTrainer",
    "ReferenceTranslationTrainer",
    "TranslationBase",
    "critic_losses",
    "generator_losses",
    "semantic_term",
    "l1",
    "DIRECTIONS",
    "CYCLE_WEIGHT",
    "IDENTITY_RATIO",
    "DIGIT_CYCLE_WEIGHT",
    "DIGIT_IDENTITY_WEIGHT",
    "SEMANTIC_THRESHOLD",
    "load_translation",
]
