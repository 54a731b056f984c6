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
    phi(x) = concat_l h_l(x),   h_l the output of every hidden activation of the critic,
    d_phi(x) = mean distance from phi(x) to the k nearest phi(x_train),   k = 5,
    A(x) = d_phi(x) / s_phi + d_pix(x) / s_pix,
d_pix the same distance between the images themselves (pixel kNN), s the training images' own leave-one-out k-NN
distance in each space (``self_scale``: 500 evenly spaced images of the first chunk), so neither space's units
decide (``pixels=False``: d_phi alone). The training set is streamed once, in chunks (a tensor, a DataLoader or
any iterable of batches; the scale sample joins the queries when the first chunk arrives); ``normalize=True``
scales each h_l to unit L2 norm first. A
user's critic names its layers (``features_layer`` / ``layers``); a class-conditional (projection) critic's phi(x)
needs no class. Why these choices (ours, measured on ONE setting, never a test split: the digits, all-vs-one, a
validation split of 400 digits-train images that the GAN does not train on, ``benchmarks/critic_knn_choice.py``):

- first (issue 25), digit 3 left out, seed 0, the MLP-256 WGAN-GP at 1000 / 2000 steps, 16 settings: pixel kNN
  0.988, the raw critic 0.811 / 0.925; the penultimate features (f-AnoGAN's f) raw, k 1: 0.981 / 0.986,
  L2-normalised 0.991 / 0.990; every hidden layer raw 0.991 / 0.991, each L2-normalised, k 1: 0.995 / 0.993, k 5:
  0.993 / 0.994; the pixels added as one more normalised layer 0.992 / 0.992; each layer divided by its mean norm
  over the training images 0.991 / 0.991. That chose L2-normalised layers and k 1.
- then, every digit left out in turn (10 digits x steps 1000 / 1500 / 2000, seed 0), both bundled critics (the
  MLP-256 and the DCGAN of width 32 the benchmark uses), 6 critic settings and pixel kNN k 1 and 5 (``--all-digits``;
  the logs in benchmarks/results/critic_knn_choice_all_digits_*.log), mean AUROC DCGAN / MLP (pixel kNN does not
  depend on the critic): pixel kNN k 1 0.9886, k 5 0.9894; every hidden layer L2-normalised, k 1 (the first
  choice) 0.9878 / 0.9881, k 5 0.9890 / 0.9912; with the pixels as one more normalised layer, k 1 0.9878 / 0.9880,
  k 5 0.9894 / 0.9904; raw, k 1 0.9884 / 0.9895; raw, k 5 0.9893 / 0.9917 (chosen then: the best mean over the
  two critics). The first choice did not hold across digits: L2-normalised k 1 is below pixel kNN on both critics.
- then the same runs again (their critics kept, ``--keep``; every earlier figure reproduced exactly) with one
  more candidate, the raw critic distance and the pixel distance each in its training unit, added: k 1 0.9898 /
  0.9900, k 5 0.9901 / 0.9914, against raw k 5 0.9893 / 0.9917. By the same rule (the best mean over the two
  critics: 0.99075 against 0.9905, a margin of 0.0003) the pixel distance is now added (``CRITIC_KNN_PIXELS``).
- then, on those kept critics, each hidden layer as a space of its own in its training unit (``per_layer=True``)
  instead of one concatenation: k 1 0.9887 / 0.9890, with the pixels 0.9899 / 0.9902; k 5 0.9881 / 0.9889, with
  the pixels 0.9896 / 0.9902: below the chosen setting on both critics, so not adopted (``CRITIC_KNN_PER_LAYER``
  False; the option stays for reproduction).
"""

from .encoder import Encoder, EncoderConfig, critic_features, encoder_for, residuals
from .scores import (
    CRITIC_KNN_K,
    CRITIC_KNN_NORMALIZE,
    CRITIC_KNN_PER_LAYER,
    CRITIC_KNN_PIXELS,
    ENCODER_DIR,
    METHODS,
    critic_embedding,
    critic_knn_scores,
    critic_layers,
    knn_scores,
    load_encoder,
    score,
    self_scale,
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
    "self_scale",
    "critic_knn_scores",
    "critic_embedding",
    "critic_layers",
    "CRITIC_KNN_K",
    "CRITIC_KNN_NORMALIZE",
    "CRITIC_KNN_PIXELS",
    "CRITIC_KNN_PER_LAYER",
    "score",
    "METHODS",
    "ENCODER_DIR",
    "load_encoder",
]
