"""What a trained WGAN is for beyond sampling, each on the engine like the GAN trainers: unpaired translation
(``translate``), domain adaptation (``adapt``: features; ``pixelda``: pixels), anomaly detection (``anomaly``:
f-AnoGAN and its baselines), and what the two-domain trainers share (``domains``: checks, tensor and DataLoader
sources, the checkpoint format).
"""
