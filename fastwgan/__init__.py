"""fastwgan: Wasserstein GANs (weight clipping and gradient penalty) on images, fast.

    import fastwgan as fw
    cfg = fw.TrainConfig.preset("wgan-gp")
    G, D = fw.models.dcgan(image_size=32, channels=3, latent_dim=cfg.latent_dim)
    trainer = fw.ReferenceTrainer(G, D, cfg).fit(fw.data.load("digits"), steps=100)

Importing fastwgan changes no global state (no seeding, no inductor flags).
"""

from . import adapt, checkpoint, data, metrics, models, translate
from .config import PRESETS, TrainConfig
from .reference import ReferenceTrainer
from .restore import load_trainer
from .trainer import Trainer

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
    "__version__",
]
