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

critic-knn (``critic_knn_scores``; the idea of Bergman, Cohen & Hoshen 2020, "Deep nearest neighbor anomaly
detection": kNN on good features, here the critic's): the same kNN distance in the critic's feature space,
    phi(x) = concat_l h_l(x) / ||h_l(x)||_2,   h_l the output of every hidden activation of the critic,
    A(x) = mean distance from phi(x) to the k nearest phi(x_train),   k = 1,
the training set streamed in chunks (a DataLoader too). A user's critic names its layers (``features_layer`` /
``layers``); a class-conditional (projection) critic's phi(x) needs no class. Why these choices (ours, measured on
ONE setting, ``benchmarks/critic_knn_choice.py``: digits, digit 3 left out, seed 0, a validation split of 400
digits-train images that the GAN did not train on; the MLP-256 WGAN-GP at 1000 / 2000 steps; 16 settings; AUROC):
pixel kNN 0.988, the raw critic 0.811 / 0.925; the penultimate features (f-AnoGAN's f) raw, k 1: 0.981 / 0.986,
L2-normalised 0.991 / 0.990 (k 5: 0.979 / 0.987); every hidden layer raw 0.991 / 0.991, each L2-normalised, k 1:
0.995 / 0.993 (chosen), k 5: 0.993 / 0.994; the pixels added as one more normalised layer 0.992 / 0.992;
normalised pixels alone 0.988; every hidden layer divided by its mean norm over the training images (layers weigh
alike, a sample's magnitude kept) 0.991 / 0.991, as raw: the per-image normalisation is what gains.
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
