"""Anomaly detection with a trained WGAN: f-AnoGAN (Schlegl, Seeböck, Waldstein, Langs & Schmidt-Erfurth 2019,
"f-AnoGAN: Fast unsupervised anomaly detection with generative adversarial networks", Medical Image Analysis 54),
and the two baselines it must beat, all with one convention: higher = more anomalous.

f-AnoGAN, on a WGAN-GP trained on normal data only:
  1. train an encoder E: x -> z with the generator G and the critic D frozen, the "izi_f" encoder (image -> z ->
     image, guided by the critic's features f, the activations before D's last layer), on normal data only:
         L(E) = E_x[ mse(x, G(E(x))) + kappa * mse(f(x), f(G(E(x)))) ],     kappa = 1 (the paper's value)
     mse is the mean over a sample's pixels (features); the loss is the mean over the batch;
  2. score a sample by the same two residuals: A(x) = mse_img(x) + kappa * mse_feat(x).
Baselines (``score``): "critic", minus the critic's output (a WGAN critic is higher on data like the training
set); "knn", the mean L2 distance in pixel space (images in [-1, 1]) to the k nearest training images.

The encoder trains like the GAN: the fast ``EncoderTrainer`` keeps E's parameters in one flat buffer, updates
them with the fused Adam (``fastwgan.core.optimizers``) inside one compiled step (``fastwgan.core.compile``); the
eager twin
``ReferenceEncoderTrainer`` uses torch.optim.Adam and autograd, and the loss is written once (``residuals``) for
both. Batches are drawn with replacement by the encoder's own seeded generator, as the GAN's stream draws its own.
Defaults (``EncoderConfig``): kappa = 1 (Schlegl et al. 2019); Adam with the WGAN-GP paper's learning rate 1e-4
and DCGAN's betas (0.5, 0.999) (Radford et al. 2016), batch 64: fastwgan's choice, not the paper's (it leaves
the encoder's optimizer to its code).
"""

from .encoder import Encoder, EncoderConfig, critic_features, encoder_for, residuals
from .scores import (
    CRITIC_KNN_K,
    CRITIC_KNN_NORMALIZE,
    ENCODER_DIR,
    METHODS,
    critic_embedding,
    critic_knn_scores,
    critic_layers,
    knn_scores,
    load_encoder,
    score,
)
from .training import EncoderTrainer, EncoderTrainerBase, ReferenceEncoderTrainer

__all__ = [
    "EncoderConfig",
    "Encoder",
    "encoder_for",
    "critic_features",
    "residuals",
    "EncoderTrainer",
    "ReferenceEncoderTrainer",
    "EncoderTrainerBase",
    "knn_scores",
    "critic_knn_scores",
    "critic_embedding",
    "critic_layers",
    "CRITIC_KNN_K",
    "CRITIC_KNN_NORMALIZE",
    "score",
    "METHODS",
    "ENCODER_DIR",
    "load_encoder",
]
