"""fastwgan: Wasserstein GANs on images, fast."""
__version__ = "0.1.0"
