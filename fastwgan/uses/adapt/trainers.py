"""The two adaptation trainers (WDGRL, DANN, DIRT-T's refinement) on the engine: the eager oracle
``ReferenceAdaptTrainer`` (autograd, torch.optim) and the fast ``AdaptTrainer`` (flat buffers, the fused optimizer,
each update one compiled graph); what they share is ``base.AdaptBase``.
"""

from __future__ import annotations

import torch
from torch.func import grad_and_value

from ...core.compile import compile_step
from ...core.config import TrainConfig
from ...core.optimizers import TorchGroups, frozen, torch_optimizer, torch_step
from ..domains import as_function, critic_scores, owned
from .base import AdaptBase
from .losses import alignment_loss, domain_critic_loss, refinement_loss


class ReferenceAdaptTrainer(AdaptBase):
    """The eager oracle of WDGRL: autograd and torch.optim (one optimizer for the critic, one for the extractor
    and the classifier).

    Args:
        extractor: images (B, C, H, W) -> features (B, F).
        classifier: features -> logits (B, K).
        critic: features -> (B,) or (B, 1) (no batch norm with a penalty), e.g. ``digit_networks()``'s; None for
            "dirtt", which trains none.
        config: ``TrainConfig`` (loss, optimizer, lr_d for the critic, lr_g for the rest, betas, n_critic,
            gp_weight = gamma, batch_size, seed, device).
        weight: lambda, the weight of the domain term in the extractor's loss (None: ``WEIGHTS[method]``).
        method: "wdgrl" (a Wasserstein critic), "dann" (a domain classifier; gradient reversal) or "dirtt" (DIRT-T's
            refinement on the target alone, from the classifier given; weight: the teacher's, ``WEIGHTS``).
        clf_steps: extractor + classifier updates per critic round (None: ``CLF_STEPS[method]``).
        entropy_weight: VADA's weight on the entropy of the target predictions (0: off).
        shift: random 1-pixel shifts of both domains' batches (default ``SHIFT``, off: the paper's setting).
        photometric: a random polarity, gain and offset per source image and channel in every step
            (``fastwgan.core.images.photometric_images``; off by default). For a target whose colours or
            polarity the source never shows: start from a classifier trained the same way
            (``train_classifier(photometric=True)``); measured in docs/domain-adaptation.md.
    """

    name = "reference"

    def __init__(self, extractor, classifier, critic, config: TrainConfig, weight: float | None = None, **kw):
        super().__init__(extractor, classifier, critic, config, weight, **kw)
        self.opt_m = torch_optimizer(config, self.model.parameters(), config.lr_g)
        if self.critic is None:  # DIRT-T
            self.groups = TorchGroups({"model": self.opt_m})
        else:
            self.opt_d = torch_optimizer(config, self.critic.parameters(), config.lr_d)
            self.groups = TorchGroups({"critic": self.opt_d, "model": self.opt_m})

    def _features(self, x_s, x_t):
        with torch.no_grad():
            return self.extractor(x_s), self.extractor(x_t)

    def critic_gradient(self, h_s, h_t, eps) -> tuple[torch.Tensor, dict]:
        """d(critic loss) / d(critic parameters) as one flat tensor on features (B, F), nothing updated (tests)."""
        cfg = self.config
        loss, aux = domain_critic_loss(
            critic_scores(self.critic), h_s, h_t, eps, cfg.loss, cfg.gp_weight, method=self.method
        )
        grads = torch.autograd.grad(loss, list(self.critic.parameters()))
        return torch.cat([g.reshape(-1) for g in grads]), aux

    def _critic_update(self, h_s, h_t, eps):
        cfg = self.config
        loss, aux = domain_critic_loss(
            critic_scores(self.critic), h_s, h_t, eps, cfg.loss, cfg.gp_weight, method=self.method
        )
        torch_step(self.opt_d, loss, self.critic.parameters() if cfg.loss == "clip" else None, cfg.clip_value)
        aux["critic_loss"] = loss.detach()
        return aux

    def _refine_update(self, x_s, y_s, x_t, d):
        teacher = self.teacher_logits(x_t)
        loss, aux = refinement_loss(
            self.extractor, self.classifier, teacher, x_s, y_s, x_t, d, self.weight, self.radius
        )
        torch_step(self.opt_m, loss)
        return aux

    def _model_update(self, x_s, y_s, x_t):
        with frozen(self.critic):  # no critic gradients in the extractor's phase
            loss, aux = alignment_loss(
                self.extractor, self.classifier, critic_scores(self.critic), x_s, y_s, x_t, *self.loss_settings
            )
            torch_step(self.opt_m, loss)
        return aux


class AdaptTrainer(AdaptBase):
    """The fast WDGRL trainer, a drop-in twin of ``ReferenceAdaptTrainer``: flat buffers, the fused optimizer,
    the penalty through ``fastwgan.ops``, each update one compiled graph.

    Args (beyond the reference's):
        compile: compile each update (fullgraph); False runs the same functional updates eagerly.
        impl: "auto" | "triton" | "torch", or a dict {"optimizer", "interpolate", "penalty"}.
        compile_mode: torch.compile mode.
    """

    name = "fast"

    def __init__(
        self,
        extractor,
        classifier,
        critic,
        config: TrainConfig,
        weight: float | None = None,
        *,
        compile: bool = True,
        impl: str | dict = "auto",
        compile_mode: str | None = None,
        threads: int | str | None = "auto",
        **kw,
    ):
        super().__init__(extractor, classifier, critic, config, weight, **kw)

        cfg, dev = config, self.device
        groups = {"model": (self.model, cfg.lr_g)}
        if self.critic is not None:
            groups["critic"] = (self.critic, cfg.lr_d)
        self.setup_fast(impl, compile, compile_mode, threads, groups)
        self.flat_d, self.flat_m = self.groups.flat.get("critic"), self.groups.flat["model"]
        self.teacher_flat: torch.Tensor | None = None  # DIRT-T: the teacher's parameters, flat_m's layout
        wrap = (lambda fn: compile_step(fn, compile_mode, dev)) if compile else (lambda fn: fn)
        if self.critic is None:
            self._refine_fn = wrap(self._refine_step)
        else:
            self._features_fn = wrap(self._features_step)
            self._critic_fn = wrap(self._critic_step)
            self._model_fn = wrap(self._model_step)

    def _features_step(self, m_flat, x_s, x_t):
        with torch.no_grad():
            f = as_function(self.extractor, self.flat_m.unflatten(m_flat), "extractor")
            return f(x_s), f(x_t)

    def _critic_grad(self, d_flat, h_s, h_t, eps):
        cfg = self.config

        def loss_fn(d_params):
            return domain_critic_loss(
                critic_scores(as_function(self.critic, d_params)),
                h_s,
                h_t,
                eps,
                cfg.loss,
                cfg.gp_weight,
                self.calculus,
                self.method,
            )

        return grad_and_value(loss_fn, has_aux=True)(self.flat_d.unflatten(d_flat))

    def critic_gradient(self, h_s, h_t, eps) -> tuple[torch.Tensor, dict]:
        """d(critic loss) / d(critic parameters) as one flat tensor on features (B, F), nothing updated (tests)."""
        grads, (_, aux) = self._critic_grad(self.flat_d.data, h_s, h_t, eps)
        return torch.cat([g.reshape(-1) for g in grads.values()]), aux

    def _critic_step(self, d_flat, state, lr, h_s, h_t, eps):
        grads, (loss, aux) = self._critic_grad(d_flat, h_s, h_t, eps)
        self.optim.update(self.flat_d, d_flat, list(grads.values()), state, lr, clip=self.config.loss == "clip")
        return {**aux, "critic_loss": loss.detach()}

    def _model_step(self, m_flat, d_flat, state, lr, x_s, y_s, x_t):
        score = critic_scores(as_function(self.critic, self.flat_d.unflatten(d_flat.detach())))

        def loss_fn(m_params):
            return alignment_loss(
                as_function(self.extractor, m_params, "extractor"),
                as_function(self.classifier, m_params, "classifier"),
                score,
                x_s,
                y_s,
                x_t,
                *self.loss_settings,
            )

        grads, (_, aux) = grad_and_value(loss_fn, has_aux=True)(self.flat_m.unflatten(m_flat))
        self.optim.update(self.flat_m, m_flat, list(grads.values()), state, lr)
        return aux

    def _set_teacher(self, params: dict, step: int) -> None:
        self.teacher_flat = torch.cat([params[n].reshape(-1) for n in self.flat_m.names]).to(self.flat_m.data)
        super()._set_teacher(self.flat_m.unflatten(self.teacher_flat), step)

    def _refine_step(self, m_flat, t_flat, state, lr, x_s, y_s, x_t, d):
        teacher = self.teacher_logits(x_t, self.flat_m.unflatten(t_flat))  # the graph's input, not self.teacher

        def loss_fn(m_params):
            return refinement_loss(
                as_function(self.extractor, m_params, "extractor"),
                as_function(self.classifier, m_params, "classifier"),
                teacher,
                x_s,
                y_s,
                x_t,
                d,
                self.weight,
                self.radius,
                self.calculus,
            )

        grads, (_, aux) = grad_and_value(loss_fn, has_aux=True)(self.flat_m.unflatten(m_flat))
        self.optim.update(self.flat_m, m_flat, list(grads.values()), state, lr)
        return aux

    def _refine_update(self, x_s, y_s, x_t, d):
        return owned(
            self._refine_fn(
                self.flat_m.data, self.teacher_flat, self.opt_state["model"], self.lr["model"], x_s, y_s, x_t, d
            ),
            self._copy_outputs,
        )

    def _features(self, x_s, x_t):
        return owned(self._features_fn(self.flat_m.data, x_s, x_t), self._copy_outputs)

    def _critic_update(self, h_s, h_t, eps):
        return owned(
            self._critic_fn(self.flat_d.data, self.opt_state["critic"], self.lr["critic"], h_s, h_t, eps),
            self._copy_outputs,
        )

    def _model_update(self, x_s, y_s, x_t):
        return owned(
            self._model_fn(
                self.flat_m.data, self.flat_d.data, self.opt_state["model"], self.lr["model"], x_s, y_s, x_t
            ),
            self._copy_outputs,
        )
