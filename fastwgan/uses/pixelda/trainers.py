"""The two PixelDA trainers on the engine: the eager oracle ``ReferencePixelDATrainer`` (autograd, torch.optim) and
the fast ``PixelDATrainer`` (flat buffers, the fused optimizer, each update one compiled graph), and
``load_pixelda``, which rebuilds one from a run folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.func import functional_call, grad_and_value

from ...core import checkpoint
from ...core.compile import compile_step
from ...core.config import TrainConfig
from ...core.images import as_float, photometric_images
from ...core.optimizers import TorchGroups, frozen, torch_optimizer, torch_step
from ..domains import as_function, owned
from .base import PixelDABase
from .losses import critic_loss, model_loss


class ReferencePixelDATrainer(PixelDABase):
    """The eager oracle of PixelDA with a Wasserstein critic: the package docstring's step in plain autograd and
    torch.optim (one optimizer for the critic, one over the generator and the task classifier; clip: per-parameter
    clamp).

    Args:
        generator: G(x_s, z): (B, C_s, H, W) and (B, noise_dim) -> (B, C_t, H, W) in [-1, 1] (``PixelDAGenerator``).
        critic: target images -> (B,) or (B, 1), no batch norm with a penalty.
        classifier: T, target-like images -> logits (B, K) (``DigitClassifier``).
        config: ``TrainConfig`` (loss, optimizer, lr_d for the critic, lr_g for G and T, betas, n_critic,
            gp_weight, batch_size, seed, device).
        adv_weight, task_weight, content_weight: alpha, beta, gamma of L_GT (package docstring).
        semantic: optional, a frozen classifier of target-like images (e.g. the source-only classifier): CyCADA's
            semantic consistency, ``semantic_weight`` (default 1, CyCADA's) x CE(semantic(G(x_s, z)), y_s) added
            to L_GT. Not saved with the run: give it again to resume.
        noise_dim: z's size (default: the generator's ``noise_dim``, else 10).
    """

    name = "reference"
    single_process = True

    def __init__(self, generator, critic, classifier, config: TrainConfig, **kw):
        super().__init__(generator, critic, classifier, config, **kw)
        self.opt_d = torch_optimizer(config, self.critic.parameters(), config.lr_d)
        self.opt_m = torch_optimizer(config, self.model.parameters(), config.lr_g)
        self.groups = TorchGroups({"critic": self.opt_d, "model": self.opt_m})

    def _score(self):
        """The critic's score function (``scorer``), T frozen: its parameters detached (class_critic only)."""
        if not self.class_critic:
            return self.scorer(self.critic, None)
        frozen_t = as_function(self.classifier, {k: v.detach() for k, v in self.classifier.named_parameters()})
        return self.scorer(self.critic, frozen_t)

    def critic_gradient(self, x_t, fake, eps) -> tuple[torch.Tensor, dict]:
        """d L_D / d(critic parameters) as one flat tensor on a target batch and fakes, nothing updated (tests)."""
        cfg = self.config
        loss, aux = critic_loss(self._score(), x_t, fake, eps, cfg.loss, cfg.gp_weight)
        grads = torch.autograd.grad(loss, list(self.critic.parameters()))
        return torch.cat([g.reshape(-1) for g in grads]), aux

    def _critic_update(self, src_s, idx_s, src_t, idx_t, z, eps, photo):
        cfg = self.config
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])  # (B, C_s, H, W), (B, C_t, H, W)
        x_s = x_s if photo is None else photometric_images(x_s, *photo)
        with torch.no_grad():
            fake = self.generator(x_s, z)  # G in train mode: batch norm on batch statistics, as in L_GT
        loss, aux = critic_loss(self._score(), x_t, fake, eps, cfg.loss, cfg.gp_weight)
        torch_step(self.opt_d, loss, self.critic.parameters() if cfg.loss == "clip" else None, cfg.clip_value)
        return aux

    def _model_update(self, src_s, y_s, idx_s, z, shift, z_div, photo):
        x_s, y = as_float(src_s[idx_s]), y_s[idx_s]
        with frozen(self.critic):  # no critic gradients in the G/T phase
            loss, aux = model_loss(
                self.generator,
                self.classifier,
                self._score(),
                x_s,
                y,
                z,
                *self.loss_settings,
                shift,
                **self.loss_keywords,
                z2=z_div,
                photo=photo,
            )
            torch_step(self.opt_m, loss)
        return aux


def _entries(params: dict, prefix: str) -> dict:
    """The entries of a ModuleDict's {name: tensor} under ``prefix.``, the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix + ".")}


class PixelDATrainer(PixelDABase):
    """The fast PixelDA trainer, a drop-in twin of ``ReferencePixelDATrainer`` (same arguments, stream and results
    within fp32 tolerance): the critic's parameters are views of one flat buffer, G's and T's of another; each
    update is one compiled graph that differentiates with torch.func and steps with the fused optimizer; the
    penalty goes through ``fastwgan.ops`` (``objectives.compiled_calculus``); batches are gathered on the device.
    G's batch-norm statistics are passed to the functional calls explicitly (torch.func refuses in-place updates
    of tensors a transformed function merely captures), so they advance exactly as the oracle's.

    Args (beyond the reference's):
        compile: compile each update (fullgraph); False runs the same functional updates eagerly.
        impl: "auto" | "triton" | "torch", or a dict {"optimizer", "interpolate", "penalty"}.
        compile_mode: torch.compile mode ("reduce-overhead": CUDA graphs on CUDA).
        threads: the CPU thread policy (``fastwgan.core.threads``).
    """

    name = "fast"

    def __init__(
        self,
        generator,
        critic,
        classifier,
        config: TrainConfig,
        *,
        compile: bool = True,
        impl: str | dict = "auto",
        compile_mode: str | None = None,
        threads: int | str | None = "auto",
        **kw,
    ):
        super().__init__(generator, critic, classifier, config, **kw)
        cfg, dev = config, self.device
        groups = {"critic": (self.critic, cfg.lr_d), "model": (self.model, cfg.lr_g)}
        self.setup_fast(impl, compile, compile_mode, threads, groups)
        self.flat_d, self.flat_m = self.groups.flat["critic"], self.groups.flat["model"]
        wrap = (lambda fn: compile_step(fn, compile_mode, dev)) if compile else (lambda fn: fn)
        self._critic_fn = wrap(self._critic_step)
        self._model_fn = wrap(self._model_step)

    def _generate(self, m_params: dict, g_bufs: dict):
        """G as a function of (x_s, z) with the parameters of ``m_params`` (the model group's) and its buffers."""
        g_params = _entries(m_params, "generator")
        return lambda x, z: functional_call(self.generator, {**g_params, **g_bufs}, (x, z))

    def _frozen_task(self, m_flat):
        """T as a function of images with the model group's parameters ``m_flat`` detached (``scorer``; None
        without ``class_critic``, which never calls it)."""
        if not self.class_critic:
            return None
        return as_function(self.classifier, self.flat_m.unflatten(m_flat.detach()), "classifier")

    def _critic_grad(self, d_flat, m_flat, x_t, fake, eps):
        cfg = self.config
        task = self._frozen_task(m_flat)

        def loss_fn(d_params):
            score = self.scorer(as_function(self.critic, d_params), task)
            return critic_loss(score, x_t, fake, eps, cfg.loss, cfg.gp_weight, self.calculus)

        return grad_and_value(loss_fn, has_aux=True)(self.flat_d.unflatten(d_flat))

    def critic_gradient(self, x_t, fake, eps) -> tuple[torch.Tensor, dict]:
        """d L_D / d(critic parameters) as one flat tensor on a target batch and fakes, nothing updated (tests)."""
        grads, (_, aux) = self._critic_grad(self.flat_d.data, self.flat_m.data, x_t, fake, eps)
        return torch.cat([g.reshape(-1) for g in grads.values()]), aux

    def _critic_step(self, d_flat, m_flat, g_bufs, state, lr, src_s, idx_s, src_t, idx_t, z, eps, photo):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])  # gathered + normalised on the device
        x_s = x_s if photo is None else photometric_images(x_s, *photo)
        with torch.no_grad():
            fake = self._generate(self.flat_m.unflatten(m_flat), g_bufs)(x_s, z)  # (B, C_t, H, W)
        grads, (_, aux) = self._critic_grad(d_flat, m_flat, x_t, fake, eps)
        self.optim.update(self.flat_d, d_flat, list(grads.values()), state, lr, clip=self.config.loss == "clip")
        return aux

    def _model_step(self, m_flat, d_flat, g_bufs, state, lr, src_s, y_s, idx_s, z, shift, z_div, photo):
        x_s, y = as_float(src_s[idx_s]), y_s[idx_s]
        score = self.scorer(as_function(self.critic, self.flat_d.unflatten(d_flat.detach())), self._frozen_task(m_flat))

        def loss_fn(m_params, bufs):  # G's buffers as an argument: batch norm updates them in place
            return model_loss(
                self._generate(m_params, bufs),
                as_function(self.classifier, m_params, "classifier"),
                score,
                x_s,
                y,
                z,
                *self.loss_settings,
                shift,
                **self.loss_keywords,
                z2=z_div,
                photo=photo,
            )

        grads, (_, aux) = grad_and_value(loss_fn, has_aux=True)(self.flat_m.unflatten(m_flat), g_bufs)
        self.optim.update(self.flat_m, m_flat, list(grads.values()), state, lr)
        return aux

    def _critic_update(self, src_s, idx_s, src_t, idx_t, z, eps, photo):
        return owned(
            self._critic_fn(
                self.flat_d.data,
                self.flat_m.data,
                dict(self.generator.named_buffers()),
                self.opt_state["critic"],
                self.lr["critic"],
                src_s,
                idx_s,
                src_t,
                idx_t,
                z,
                eps,
                photo,
            ),
            self._copy_outputs,
        )

    def _model_update(self, src_s, y_s, idx_s, z, shift, z_div, photo):
        return owned(
            self._model_fn(
                self.flat_m.data,
                self.flat_d.data,
                dict(self.generator.named_buffers()),
                self.opt_state["model"],
                self.lr["model"],
                src_s,
                y_s,
                idx_s,
                z,
                shift,
                z_div,
                photo,
            ),
            self._copy_outputs,
        )


def load_pixelda(run, *, compile: bool = False, device: str | None = None, threads="auto") -> PixelDATrainer:
    """The fast PixelDA trainer of a run folder written by ``fit(out=...)`` with networks that carry a ``spec``
    (``digit_networks``' do), at its latest checkpoint: ``load_pixelda(run).accuracy(x, y)``, ``.adapt(x)``.

    Raises:
        FileNotFoundError / ValueError naming the folder when it is not a PixelDA run or its networks have no spec.
    """
    from ...core.run import read_config
    from ...gan import models
    from .networks import PixelDAGenerator, digit_classifier

    cfg_json = read_config(run)
    if cfg_json.get("kind") != "pixelda":
        raise ValueError(f"{run}: not a PixelDA run (its config.json has kind {cfg_json.get('kind')!r})")
    specs = cfg_json.get("networks") or {}
    if any(specs.get(k) is None for k in ("generator", "critic", "classifier")):
        raise ValueError(
            f"{run}: its networks have no spec to rebuild them from (user modules): load the checkpoint into your "
            "own trainer with load_state_dict"
        )
    config = TrainConfig.from_dict({**cfg_json["config"], **({"device": device} if device else {})})
    trainer = PixelDATrainer(
        PixelDAGenerator(**{"skip": False, **specs["generator"]}),  # runs before the skip had none
        models.build(**specs["critic"])[1],
        digit_classifier(**specs["classifier"]),
        config,
        adv_weight=cfg_json["adv_weight"],
        task_weight=cfg_json["task_weight"],
        content_weight=cfg_json["content_weight"],
        noise_dim=cfg_json["noise_dim"],
        shift=bool(cfg_json.get("shift", False)),
        photometric=bool(cfg_json.get("photometric", False)),  # runs before the option had none
        pretrain_epochs=int(cfg_json.get("pretrain_epochs", 0)),
        diversity_weight=float(cfg_json.get("diversity_weight", 0.0)),  # runs before the term had none
        class_critic=bool(cfg_json.get("class_critic", False)),  # runs before the option had none
        compile=compile,
        threads=threads,
    )
    trainer.load_state_dict(checkpoint.load(Path(run) / "checkpoints"))
    g = specs["generator"]
    size = (g["image_size"], g["image_size"])
    trainer.shapes = ((g["channels_in"], *size), (g["channels_out"], *size))
    trainer.source_task = bool(cfg_json.get("source_task", True))
    return trainer
