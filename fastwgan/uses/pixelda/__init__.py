"""Pixel-level domain adaptation with a Wasserstein critic: PixelDA (Bousmalis, Silberman, Dohan, Erhan & Krishnan
2017, "Unsupervised pixel-level domain adaptation with generative adversarial networks", CVPR) with its adversarial
loss a WGAN critic's (weight clipping, or the gradient penalty of Gulrajani et al. 2017; ``TrainConfig.loss``).

Labelled source images (x_s, y_s) and unlabelled target images x_t, one H x W. A generator G(x_s, z) (full
resolution, noise z ~ U[-1, 1]^{noise_dim} as one extra input channel) makes source images look like target images;
a critic D tells target images from adapted ones; a task classifier T learns the source labels on the source
images and on their adaptations, and its loss flows back into G, so G keeps the class while it changes the look.
The method's output is T (``predict``, ``accuracy``); ``adapt`` shows what G does. One step:

    n_critic times:  x_s ~ S, x_t ~ T (B each), z ~ U[-1, 1]^{B x noise_dim}, eps ~ U[0, 1]^B
        L_D = L_W(D; real x_t, fake G(x_s, z), eps)              G fixed (no gradient into it)
        one optimizer step over D (lr_d); clip: clamp D
    once:            x_s, y_s ~ S, z; s ~ U{-1, 0, 1}^{B x 2}; sh = shift(., s) or the identity  (``shift``, on)
                     x_s <- clamp(a x_s + b, -1, 1), a, b (B, C_s)    (``photometric``, off; also each critic x_s)
        L_GT = alpha (-mean D(G(x_s, z)))                                                 adversarial
               + beta (CE(T(sh(G(x_s, z))), y_s) + CE(T(sh(x_s)), y_s))                   task, both inputs
               + gamma PMSE(G(x_s, z), x_s)                                               content (optional)
               + lambda_sem CE(f(G(x_s, z)), y_s)            semantic (optional: f a frozen classifier, ``semantic=``)
               + lambda_ms / (mean|G(x_s, z2) - G(x_s, z)| / mean|z2 - z| + 1e-5)     mode seeking (optional)
        one optimizer step over G and T together (lr_g)

``class_critic`` (off by default) makes the critic class-aware: every score, the penalty's included, is
D(x, p(x)), p(x) = softmax(T(x)) with T's parameters detached (T frozen inside the critic: no critic or adversarial
gradient reaches T, which learns from its two cross-entropies alone), D fastwgan's projection critic (Miyato & Koyama
2018; ``class_aware`` builds it on the bundled critic's body, its class embedding zero at the start). On target
images p is T's reading, on adaptations nearly the source label T fits them to, so the critic compares the classes'
looks, not only the marginals (CDAN's idea, Long et al. 2018). p must be a function of the critic's input: with p
computed on detached images the class path sits outside the penalty and the W-estimate grows without bound
(measured: ``benchmarks/pixelda_diagnosis.py``, variants cond and condgp; docs/domain-adaptation.md). Off by default
(ours, measured): on seeds 0-3 of the two MNIST <-> UCI-digits shifts at 4000 steps (``domain_digits.py``, arm
pixelda_cond) T's target accuracy ends +0.004 and +0.016 from the plain critic's, within the seeds' spread.

``photometric`` (off by default) varies the source batches' polarity, gain and offset per image and channel
(``fastwgan.core.images.photometric_draw``, drawn after the step's other draws; T's warm start too), for a
target whose colours or polarity the source never shows; measured in docs/domain-adaptation.md.

L_W is ``fastwgan.gan.objectives.critic_objective`` (-W, plus lambda times the per-sample penalty at x_hat =
eps x_t + (1 - eps) G(x_s, z)), the objective the GAN, translation and adaptation critics use. PMSE(a, b) =
mean_b [(1/k) ||d_b||^2 - (1/k^2) (sum d_b)^2], d = a - b over the k elements of a sample: the paper's eq. 5
without its foreground mask (so gamma = 0 by default). The paper alternates a D/T step with a G step; here T
steps with G on the same L_GT (T's gradient is only its CE terms, so this is the paper's T update on the
current G's fakes, one G step later). CE(T(x_s), y_s) needs source images shaped like target images: with
different channels it is left out (``source_task`` False, recorded in config.json), and gamma must be 0.

Before the first step (tensor input, source images shaped like target images, ``pretrain_epochs`` > 0), T is
warm-started on the labelled source alone: ``pretrain_epochs`` passes of
``fastwgan.eval.classifier.train_classifier`` (Adam 1e-3, 1-pixel shifts, seeded with ``config.seed + 3``: the
step's stream below is untouched). DataLoader input skips it (warm-start T yourself, e.g.
``train_classifier(x, y, epochs=40, model=classifier)``). shift(x, s) moves each image by its (dy, dx), the
border filled with -1 (``shift_images``): T sees the source-only baseline's augmentation on both of its inputs,
applied after G, so that G and the critic play on unshifted images. (Before 2026-12-07 the shift
was applied to G's input, so the adversarial term scored shifted fakes that the critic never trained on; at 8x8,
where a shift leaves an empty row or column that the UCI digits never have, the critic's W-estimate then climbed
and G was pushed to change the digit: measured in docs/domain-adaptation.md.)

Why (ours, chosen on digits -> digits-m validation: 300 digits-m-train images held out from the trainer's target,
their paired digits-train images from its source; 11 settings tried, 250-659 steps each). Without them T reached
0.38-0.41 on digits-m-heldout against 0.48 for a source-only classifier. Diagnosis: (a) T fitted the source to CE
~0.003 with no augmentation (1297 images) while the baseline trains with shifts; (b) with G started from random
weights (tanh of a random conv), its outputs after 500-1000 steps at lr 1e-4 are per-pixel colour speckle in which
the digit is faint (a digits-m-trained oracle reads G(x_s) at 0.08-0.34), so T learned from images unlike either
domain and started from chance. Shifts, a warm-started T and a generator that starts as the identity
(``PixelDAGenerator``'s ``skip``: out = tanh(atanh(0.98 x_s) + conv(h)), the last conv zero-initialised; ours, the
usual residual translator trick) each helped on validation: T 0.27 -> 0.49 at 250-500 steps against 0.42 for source
only and 0.84 for the oracle. That is still far from closing the gap: G does not learn digits-m's texture in
500-1000 steps (W-estimate ~1.4 at step 500, its outputs still speckled), the open problem at this size. More
steps do not solve it (``benchmarks/pixelda_diagnosis.py``, seed 0, up to 4000-4500 steps): the critic's W-estimate
rises throughout, with the task loss or without it, and T's target accuracy stays flat or falls.
Test (500 steps, chosen settings unchanged, seeds 0 / 1): digits -> digits-m 0.508 / 0.502 (source only 0.480 /
0.448, target oracle 0.868 / 0.846); MNIST 8x8 -> digits 0.930 / 0.936 (0.908 / 0.912, 0.986 / 0.988): a gain on
both, closing 7-14% and 28-32% of the gap, not the half we aimed at.

Defaults and where they come from. Networks (``digit_networks``): the paper's generator (conv3x3 + ReLU, residual
blocks conv-BN-ReLU-conv-BN, conv3x3 + tanh; plus our global skip, above; 64 filters, 6 blocks, 10-d uniform z for
MNIST -> MNIST-M) at width 32, 3 blocks (ours: 8x8 digits on a 2-core CPU); batch norm in G as in the paper (the
fast twin passes its statistics explicitly and matches the oracle), none in the critic (WGAN-GP); the critic is
fastwgan's DCGAN critic (MLP where DCGAN has no such size), T is ``fastwgan.eval.classifier.DigitClassifier``.
Weights: alpha = beta = 1 (ours, a starting point, not yet tuned: the paper's alpha 0.013, beta 0.011 (as we recall
them) weighed a GAN discriminator's cross-entropy, whose scale a Wasserstein critic does not share), gamma = 0
(ours).
The semantic term (CyCADA's semantic consistency, Hoffman et al. 2018, eq. 4, its s -> t half with the true
source labels, lambda_sem = 1 as in CyCADA): a classifier that does not train with G (e.g. the source-only one)
must read G's adaptations as their source class. Why (measured on the benchmark's seeds 0 and 1, a target-trained
oracle read for diagnosis only): without it, G's adaptations lose the class on two of the three shifts (the
oracle reads 0.88 of raw held-out UCI digits as their class but 0.60-0.66 of their adaptations to MNIST; 0.95-0.96
of raw gray digits but 0.33-0.45 of their adaptations to digits-m), because T trains with G and learns to read
what G makes. With it (benchmark arm ``pixelda_sem``, the source-only classifier as f, seeds 0 and 1, 1000
steps) the oracle reads 0.71 / 0.77 / 0.55 of the adaptations (without: 0.65 / 0.63 / 0.39), but T's target
accuracy moves by at most 0.01 and the critic's W-estimate ends higher: G keeps the class and stays further from
the target's look, which is what limits T at this budget. Off unless a classifier is given.
The mode-seeking term (Mao et al. 2019, "Mode seeking generative adversarial networks for diverse image
synthesis", eq. 3 in their code's form, lambda_ms 1 there): off (``DIVERSITY_WEIGHT`` 0; ours, measured with
``benchmarks/pixelda_diagnosis.py --variant ms``, seed 0): without it G all but ignores z (on digits -> digits-m
two draws move its output by 0.09 per pixel, two target images differ by 0.60); with it G uses z (0.39-0.43) and
the critic's W-estimate falls, but T's target accuracy does not rise (0.45-0.49 on digits -> digits-m) and falls
on MNIST -> digits (0.876 at 1500 steps, base 0.87-0.91).
Optimizers: ``TrainConfig``'s (the "wgan-gp" preset: Adam 1e-4, betas (0, 0.9), lambda 10, n_critic 5).

The random stream (one CPU generator seeded with ``config.seed``), per step, in this order:

    for k in range(n_critic):  idx_s[k] = randint(0, N_s, (B,)); idx_t[k] = randint(0, N_t, (B,))
                               z[k] = 2 rand(B, noise_dim) - 1; eps[k] = rand(B)             (gp / lp only)
    gen_s = randint(0, N_s, (B,)); z_gen = 2 rand(B, noise_dim) - 1                           the G/T update
    shift = randint(-1, 2, (B, 2))                                                            (``shift`` only)
    z_div = 2 rand(B, noise_dim) - 1                      the mode-seeking term's second draw (``diversity_weight`` > 0)

The losses are written once (``critic_loss``, ``model_loss``) and shared by the eager oracle
``ReferencePixelDATrainer`` (autograd, torch.optim) and the fast ``PixelDATrainer`` (the critic's parameters in one
flat buffer, G's and T's in another, updated by the fused optimizer; the penalty through fastwgan's ops and an
inner torch.func gradient; each update one compiled graph).
"""

from .base import PixelDABase
from .losses import (
    ADV_WEIGHT,
    CLASS_CRITIC,
    CONTENT_WEIGHT,
    DIVERSITY_WEIGHT,
    PRETRAIN_EPOCHS,
    SEMANTIC_WEIGHT,
    SHIFT,
    TASK_WEIGHT,
    critic_loss,
    model_loss,
    pmse,
    shift_images,
)
from .networks import NOISE_DIM, PixelDAGenerator, class_aware, digit_classifier, digit_networks
from .trainers import PixelDATrainer, ReferencePixelDATrainer, load_pixelda

__all__ = [
    "PixelDATrainer",
    "ReferencePixelDATrainer",
    "PixelDABase",
    "PixelDAGenerator",
    "critic_loss",
    "model_loss",
    "pmse",
    "shift_images",
    "digit_networks",
    "digit_classifier",
    "class_aware",
    "load_pixelda",
    "ADV_WEIGHT",
    "TASK_WEIGHT",
    "CONTENT_WEIGHT",
    "SHIFT",
    "SEMANTIC_WEIGHT",
    "DIVERSITY_WEIGHT",
    "PRETRAIN_EPOCHS",
    "CLASS_CRITIC",
    "NOISE_DIM",
]
