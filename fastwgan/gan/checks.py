"""The GAN trainers' checks of a training set against the models, before anything runs: one line naming the
problem and the shapes (``check_gan_data``), and the model probe every trainer uses (``probe``)."""

from __future__ import annotations

import torch
from torch import nn

from ..core.images import as_float, check_samples
from .models import has_batch_norm


def check_networks(config, networks: dict, critics: tuple[str, ...]) -> None:
    """A trainer's networks before anything is built on them: each a ``torch.nn.Module``, and no batch norm in a
    critic under a gradient penalty: batch norm mixes samples, so grad_x D(x_hat) is no longer a per-sample gradient
    (Gulrajani et al. 2017, section 4). One line naming the network."""
    for label, m in networks.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"{label} must be a torch.nn.Module, got {type(m).__name__}")
    for label in critics:
        if config.uses_penalty and has_batch_norm(networks[label]):
            raise ValueError(
                f"{label}: batch norm is not allowed with the {config.loss!r} loss (it breaks the per-sample "
                "gradient penalty); build it with layer norm or none (critic_norm='layer' or 'none')"
            )


def check_gan_data(trainer, data, labels=None) -> torch.Tensor:
    """Check a training set against this trainer's models before anything runs, with the shapes named:
    the data's type and values, the latent size against the generator's input, the generator's output against
    the data's sample shape, and the critic's output (one score per sample: (B,) or (B, 1)).

    A class-conditional trainer (``TrainConfig.num_classes``) needs ``labels`` (N,) of ints in [0, K) and
    calls its models as ``G(z, y)`` and ``D(x, y)``; a critic with a classifier head returns
    ``(score, logits)`` with logits (B, K).

    Returns:
        the data as a tensor. Raises ValueError / TypeError with one line naming the problem.
    """
    data = check_samples(data, "data")
    if trainer.config.augment and data.dim() != 4:
        raise ValueError(
            f"data: TrainConfig.augment={trainer.config.augment!r} transforms images (N, C, H, W); got "
            f"samples of shape {tuple(data.shape[1:])}"
        )
    k = trainer.config.num_classes
    if k is None and labels is not None:
        raise ValueError("labels: given, but TrainConfig.num_classes is None (set it for class-conditional training)")
    if k is not None:
        from ..data import check_labels

        if labels is None:
            raise ValueError(f"labels: TrainConfig.num_classes is {k}: fit needs labels=, one class id per sample")
        check_labels(labels, data.shape[0], num_classes=k, what="labels")
    y = None if k is None else torch.zeros(2, dtype=torch.long, device=trainer.device)
    latent = trainer.config.latent_dim
    hint = first_layer_hint(trainer.generator, latent)
    out = probe(
        trainer.generator,
        torch.zeros(2, latent, device=trainer.device),
        y,
        lambda e: (
            f"generator: {hint} (a call on z of shape (2, {latent}) failed: {e})"
            if hint
            else f"generator: calling it on z of shape (2, {latent}) failed: {e}"
        ),
    )
    if tuple(out.shape[1:]) != tuple(data.shape[1:]):
        raise ValueError(
            f"data: samples have shape {tuple(data.shape[1:])} but the generator makes "
            f"{tuple(out.shape[1:])}; build the models for this data"
        )
    real = as_float(data[:2]).to(trainer.device)
    score = probe(
        trainer.critic,
        real,
        y,
        lambda e: f"critic: calling it on a data batch of shape {tuple(real.shape)} failed: {e}",
    )
    if isinstance(score, tuple):  # a classifier head: (score, logits)
        logits = score[1] if len(score) == 2 else None
        if k is None or logits is None or tuple(logits.shape) != (len(real), k):
            raise ValueError(
                f"critic: returns a tuple; only a class-conditional critic with a classifier head "
                f"may, as (score, logits) with logits of shape ({len(real)}, num_classes)"
            )
        score = score[0]
    if tuple(score.shape) not in ((len(real),), (len(real), 1)):
        raise ValueError(
            f"critic: returns shape {tuple(score.shape)} for a batch of {len(real)} samples; a "
            f"critic returns one score per sample, shape ({len(real)},) or ({len(real)}, 1)"
        )
    return data


@torch.no_grad()
def probe(module: nn.Module, x: torch.Tensor, y: torch.Tensor | None, message):
    """``module(x)`` (``module(x, y)`` with labels) in eval mode (batch norm on its running statistics); a failure
    becomes one ValueError line."""
    was = module.training
    module.eval()
    try:
        return module(x) if y is None else module(x, y)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise ValueError(message(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)) from None
    finally:
        module.train(was)


def first_layer_hint(module: nn.Module, latent: int) -> str:
    """'its first layer NAME takes K inputs but TrainConfig.latent_dim is L' when they disagree, else ''."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            k = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            return (
                f"its first layer {name} takes {k} inputs but TrainConfig.latent_dim is {latent}" if k != latent else ""
            )
    return ""
