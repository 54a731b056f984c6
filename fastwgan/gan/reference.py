"""The reference trainer: the oracle every fast path is checked against.

Plain eager PyTorch that reads like Algorithm 1 of the two papers:

WGAN (Arjovsky et al. 2017):                      WGAN-GP (Gulrajani et al. 2017):
  for n_critic iterations:                          for n_critic iterations:
    x ~ P_r, z ~ p(z)                                 x ~ P_r, z ~ p(z), eps ~ U[0, 1] (one per sample)
    g_w = grad_w [mean D(x) - mean D(G(z))]           x_hat = eps x + (1 - eps) G(z)
    w = w + RMSprop(g_w)      (ascent)                L = D(G(z)) - D(x) + lambda (||grad_x_hat D(x_hat)||_2 - 1)^2
    w = clip(w, -c, c)                                w = Adam(grad_w mean L)
  z ~ p(z); theta = RMSprop(-grad mean D(G(z)))     z ~ p(z); theta = Adam(-grad mean D(G(z)))

Nothing here is fused, compiled or clever; per-parameter ``clamp_``, ``torch.autograd.grad(create_graph=True)``.
It keeps its own inline Algorithm-1 loss code on purpose: the fast GAN trainer and the two-domain trainers take
theirs from ``fastwgan.gan.objectives`` (written once), and this file is the independent oracle they are tested
against. It runs on the same engine (``fastwgan.core.engine``) as every trainer: the loop is not what it checks.
The random numbers come from ``fastwgan.core.rng`` in its documented order.

Class-conditional (``TrainConfig.num_classes``; Mirza & Osindero 2014, Miyato & Koyama 2018, Odena et al. 2017 as
combined with WGAN-GP by Gulrajani et al. 2017 for CIFAR-10): the models are called G(z, y) and D(x, y); the
critic's fakes use the real batch's labels, so x_hat interpolates two samples of one class and the penalty is
taken w.r.t. x with y fixed; the generator update's labels are drawn from the training labels. A critic with a
classifier head returns (score, logits): the critic adds ac_weight[0] * CE(logits(real), y), the generator
ac_weight[1] * CE(logits(G(z, y)), y).

DiffAugment (``TrainConfig.augment``; Zhao et al. 2020, ``fastwgan.ops.augment``): every critic input goes through
T = the policy with its own seed, D(T(x)) and D(T(G(z))) in the critic phase, D(T(G(z))) in the generator phase;
x_hat interpolates the augmented pair. Here T is the plain-PyTorch twin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import rng
from ..core.config import TrainConfig
from ..core.images import as_float
from ..core.optimizers import TorchGroups, frozen, torch_optimizer, torch_step
from ..data.sources import RealBatches
from ..ops import augment
from .base import TrainerBase
from .conditioning import split_critic_output


class ReferenceTrainer(TrainerBase):
    """Eager, readable WGAN / WGAN-GP trainer (the oracle). Same public interface as ``fastwgan.Trainer``.

    Args:
        generator: maps z (B, latent_dim) to samples (B, *data_shape).
        critic: maps samples to scores (B,) or (B, 1); no batch norm for the "gp" / "lp" losses.
        config: a ``TrainConfig`` (float32 only: the reference is the fp32 oracle).
    """

    name = "reference"
    single_process = True  # the oracle: torchrun runs the fast trainer

    def __init__(self, generator: nn.Module, critic: nn.Module, config: TrainConfig):
        if isinstance(config, TrainConfig) and config.dtype != "float32":
            raise ValueError(
                f"TrainConfig.dtype: ReferenceTrainer is the float32 oracle, got {config.dtype!r}; "
                "use fastwgan.Trainer for bfloat16"
            )
        super().__init__(generator, critic, config)
        self.opt_d = self._optimizer(self.critic.parameters(), config.lr_d)
        self.opt_g = self._optimizer(self.generator.parameters(), config.lr_g)
        self.groups = TorchGroups({"critic": self.opt_d, "generator": self.opt_g})  # checkpoints' optimizer state

    def _optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch_optimizer(self.config, params, lr)

    # ------------------------------------------------------------------ one critic update
    def _D(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scores (B,), logits (B, K) or None): the critic's output, conditional or not."""
        score, logits = split_critic_output(self.critic(x) if y is None else self.critic(x, y))
        return score.reshape(-1), logits

    def critic_step(
        self,
        real: torch.Tensor,
        z: torch.Tensor,
        eps: torch.Tensor | None,
        y: torch.Tensor | None = None,
        aug: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One critic update on a real batch, noise z and (gp / lp) per-sample eps. Returns detached metrics.

        Args:
            real: (B, *data_shape) float real samples.
            z: (B, latent_dim) noise.
            eps: (B,) interpolation weights, or None for the clip loss.
            y: (B,) the real batch's class ids (class-conditional), also the fakes' classes.
            aug: (2,) int64 seeds of the real and the fake batch's augmentations (config.augment).
        """
        cfg, G = self.config, self.generator
        with torch.no_grad():
            fake = G(z) if y is None else G(z, y)  # (B, *data_shape); no gradient flows to G in the critic phase
        if cfg.augment:  # what the critic sees: T(real), T'(fake), each with its own draw
            real = augment.apply(real, aug[0], cfg.augment, impl="torch")
            fake = augment.apply(fake, aug[1], cfg.augment, impl="torch")
        d_real, logits_real = self._D(real, y)
        d_fake, _ = self._D(fake, y)
        w_estimate = d_real.mean() - d_fake.mean()  # the critic maximises E[D(real)] - E[D(fake)]
        loss = -w_estimate
        out = {"w_estimate": w_estimate.detach()}
        if logits_real is not None:  # auxiliary classifier: cross-entropy on the real samples
            ac = F.cross_entropy(logits_real.float(), y)
            loss = loss + cfg.ac_weight[0] * ac
            out["ac_loss"] = ac.detach()
        if cfg.uses_penalty:
            e = eps.view(-1, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1): one eps per sample, broadcast over C, H, W
            x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(self._D(x_hat, y)[0].sum(), x_hat, create_graph=True)  # (B, *shape)
            norms = grad.flatten(1).norm(2, dim=1)  # (B,): the norm over all non-batch dims
            gap = norms - 1 if cfg.loss == "gp" else torch.clamp(norms - 1, min=0)  # "lp": one-sided
            penalty = (gap**2).mean()
            loss = loss + cfg.gp_weight * penalty
            out["gp"] = penalty.detach()
            out["grad_norm"] = norms.detach().mean()
        torch_step(self.opt_d, loss, self.critic.parameters() if cfg.loss == "clip" else None, cfg.clip_value)
        out["critic_loss"] = loss.detach()
        return out

    # ------------------------------------------------------------------ one generator update
    def generator_step(
        self, z: torch.Tensor, y: torch.Tensor | None = None, aug: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One generator update minimising -E[D(G(z))] (class-conditional: -E[D(G(z, y), y)], plus
        ac_weight[1] * CE on the fakes with a classifier head). Returns the detached generator loss."""
        with frozen(self.critic):  # no critic gradients in the generator phase
            fake = self.generator(z) if y is None else self.generator(z, y)
            if self.config.augment:  # differentiable: the gradient reaches G through T
                fake = augment.apply(fake, aug, self.config.augment, impl="torch")
            score, logits = self._D(fake, y)
            loss = -score.mean()
            if logits is not None:
                loss = loss + self.config.ac_weight[1] * F.cross_entropy(logits.float(), y)
            torch_step(self.opt_g, loss)
        return loss.detach()

    def _train_step(self, batches: RealBatches, noise: rng.StepNoise) -> dict[str, torch.Tensor]:
        critic_metrics = []
        dev = self.device
        for k in range(self.config.n_critic):
            real = as_float(batches.real(k)).to(dev)  # (B, *shape)
            eps = None if noise.eps is None else noise.eps[k].to(dev)
            y = None if batches.y is None else batches.y[k].to(dev)
            aug = None if noise.aug is None else noise.aug[2 * k : 2 * k + 2]
            critic_metrics.append(self.critic_step(real, noise.z[k].to(dev), eps, y, aug))
        out = {key: torch.stack([m[key] for m in critic_metrics]).mean() for key in critic_metrics[0]}
        y_gen = None if batches.y_gen is None else batches.y_gen.to(dev)
        out["generator_loss"] = self.generator_step(
            noise.z_gen.to(dev), y_gen, None if noise.aug is None else noise.aug[-1]
        )
        return out

    # ------------------------------------------------------------------ optimizer state
