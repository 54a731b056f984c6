"""fastwgan: Wasserstein GANs (weight clipping and gradient penalty) on images, fast.

    import fastwgan as fw
    cfg = fw.TrainConfig.preset("wgan-gp")
    G, D = fw.models.dcgan(image_size=32, channels=3, latent_dim=cfg.latent_dim)
    trainer = fw.ReferenceTrainer(G, D, cfg).fit(fw.data.load("digits"), steps=100)

The package's folders are its layers, imports pointing down (docs/architecture.md):

    cli/    the fastwgan command
    uses/   translate, adapt, anomaly: what a trained WGAN is for, each on the engine
    eval/   metrics, evaluation of a run, feature extractors
    gan/    models, the critic objective, the fast trainer and the reference (oracle) trainer
    data/   bundled sets, file readers, labels, batch sources
    core/   the one training engine, run folder, checkpoints, streams, guards, threads, compile, flat buffers
    ops/    one file per fused op (schema, fake, autograd, plain-PyTorch twin); fastwgan.kernels: Triton

The names below are the public surface; ``fw.FitOptions`` is what every ``fit`` takes.

Importing fastwgan changes no global state (no seeding, no inductor flags).
"""

from . import data
from .core import checkpoint
from .core.config import PRESETS, TrainConfig
from .core.fitting import FitOptions
from .eval import metrics
from .gan import models
from .gan.reference import ReferenceTrainer
from .gan.restore import load_trainer
from .gan.trainer import Trainer
from .uses import adapt, anomaly, pixelda, translate

__version__ = "0.1.0"

__all__ = [
    "TrainConfig",
    "PRESETS",
    "Trainer",
    "ReferenceTrainer",
    "load_trainer",
    "data",
    "models",
    "metrics",
    "checkpoint",
    "translate",
    "adapt",
    "pixelda",
    "anomaly",
    "FitOptions",
    "__version__",
]
