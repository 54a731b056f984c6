"""The two translation trainers: the eager oracle ``ReferenceTranslationTrainer`` and the fast
``TranslationTrainer`` (flat buffers, the fused optimizer, each update one compiled graph), and
``load_translation``, which rebuilds one from a run folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.func import grad_and_value

from ...core import checkpoint
from ...core.compile import compile_step
from ...core.config import TrainConfig
from ...core.images import as_float
from ...core.optimizers import TorchGroups, frozen, torch_optimizer, torch_step
from ..domains import as_function, critic_scores, owned
from .base import TranslationBase
from .losses import CYCLE_WEIGHT, SEMANTIC_THRESHOLD, critic_losses, generator_losses


class ReferenceTranslationTrainer(TranslationBase):
    """The eager oracle: the module docstring's step in plain autograd and torch.optim (one optimizer over both
    critics, one over both generators; clip: per-parameter clamp).

    Args:
        g_st, g_ts: the generators S -> T and T -> S (e.g. ``fastwgan.gan.models.translator``).
        d_s, d_t: the critics on S and T (any critic: ``fastwgan.gan.models.build(...)[1]``), no batch norm with a
            penalty.
        config: a ``TrainConfig`` (loss, optimizer, learning rates, n_critic, batch size, seed, device).
        cycle_weight: lambda_cyc (CycleGAN's 10).
        identity_weight: lambda_id; default 0.5 lambda_cyc when the domains' channels match, else 0.
        semantic: optional, CyCADA's semantic consistency (``generator_losses``): a classifier of source images
            (e.g. one trained on the labelled source), frozen; it needs both domains to have the same channels.
        semantic_weight: its weight (CyCADA's 1).
        semantic_threshold: the t -> s semantic term counts only target images the classifier reads with max
            softmax >= it (ours: 0.9; 0 counts all, as the paper; None or >= 1 drops the t -> s term). The s -> t
            term uses fit's ``labels=`` when given (CyCADA), else the classifier's reading of the source.
    """

    name = "reference"

    def __init__(
        self,
        g_st,
        g_ts,
        d_s,
        d_t,
        config: TrainConfig,
        cycle_weight: float = CYCLE_WEIGHT,
        identity_weight: float | None = None,
        *,
        semantic: nn.Module | None = None,
        semantic_weight: float = 1.0,
        semantic_threshold: float | None = SEMANTIC_THRESHOLD,
    ):
        if isinstance(config, TrainConfig) and config.dtype != "float32":
            raise ValueError(f"TrainConfig.dtype: the reference is the float32 oracle, got {config.dtype!r}")
        super().__init__(
            g_st,
            g_ts,
            d_s,
            d_t,
            config,
            cycle_weight,
            identity_weight,
            semantic=semantic,
            semantic_weight=semantic_weight,
            semantic_threshold=semantic_threshold,
        )
        self.opt_d = torch_optimizer(config, self.critics.parameters(), config.lr_d)
        self.opt_g = torch_optimizer(config, self.generators.parameters(), config.lr_g)
        self.groups = TorchGroups({"critics": self.opt_d, "generators": self.opt_g})

    def _critic_loss(self, x_s, x_t, eps_s, eps_t):
        """L_D of the module docstring on real batches (B, C, H, W) in [-1, 1]."""
        cfg, scores = self.config, (critic_scores(self.d_s), critic_scores(self.d_t))
        return critic_losses(self.g_st, self.g_ts, *scores, x_s, x_t, eps_s, eps_t, cfg.loss, cfg.gp_weight)

    def critic_gradient(self, x_s, x_t, eps_s, eps_t) -> tuple[torch.Tensor, dict]:
        """d L_D / d(critic parameters) as one flat tensor (D_s's, then D_t's), nothing updated (for tests)."""
        loss, aux = self._critic_loss(x_s, x_t, eps_s, eps_t)
        params = list(self.critics.parameters())
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]), aux

    def _critic_update(self, src_s, idx_s, src_t, idx_t, eps_s, eps_t):
        cfg = self.config
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])  # (B, C_s, H, W), (B, C_t, H, W)
        loss, aux = self._critic_loss(x_s, x_t, eps_s, eps_t)
        torch_step(self.opt_d, loss, self.critics.parameters() if cfg.loss == "clip" else None, cfg.clip_value)
        return aux

    def _generator_update(self, src_s, idx_s, src_t, idx_t, y_s):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])
        y = None if y_s is None else y_s[idx_s]  # the source batch's true classes
        with frozen(self.critics):  # no critic gradients in the generator phase
            loss, aux = generator_losses(
                self.g_st,
                self.g_ts,
                critic_scores(self.d_s),
                critic_scores(self.d_t),
                x_s,
                x_t,
                self.cycle_weight,
                self.identity_weight,
                self.semantic,
                self.semantic_weight,
                y_s=y,
                semantic_threshold=self.semantic_threshold,
            )
            torch_step(self.opt_g, loss)
        return aux


class TranslationTrainer(TranslationBase):
    """The fast trainer, a drop-in twin of ``ReferenceTranslationTrainer`` (same arguments, stream and results
    within fp32 tolerance): both critics' parameters are views of one flat buffer, both generators' of another;
    each update is one compiled graph (``fastwgan.core.compile``) that differentiates with torch.func and steps with
    the fused optimizer (``fastwgan.core.optimizers``; RMSprop + clamp in one pass for "clip"); the penalty goes through
    ``fastwgan.ops`` (``fastwgan.gan.objectives.compiled_calculus``); the domains live on the device and batches are
    gathered there.

    Args (beyond the reference's):
        compile: compile each update (fullgraph); False runs the same functional updates eagerly.
        impl: "auto" | "triton" | "torch" for every op, or a dict {"optimizer", "interpolate", "penalty"}
            (defaults: ``fastwgan.gan.trainer.DEFAULT_IMPL``).
        compile_mode: torch.compile mode ("reduce-overhead": CUDA graphs on CUDA).
    """

    name = "fast"

    def __init__(
        self,
        *args,
        compile: bool = True,
        impl: str | dict = "auto",
        compile_mode: str | None = None,
        threads: int | str | None = "auto",
        **kw,
    ):
        super().__init__(*args, **kw)  # the reference's arguments: networks, config, weights, semantic
        config = self.config
        cfg, dev = config, self.device
        groups = {"critics": (self.critics, cfg.lr_d), "generators": (self.generators, cfg.lr_g)}
        self.setup_fast(impl, compile, compile_mode, threads, groups)
        self.flat_d, self.flat_g = self.groups.flat["critics"], self.groups.flat["generators"]
        self._critic_fn = compile_step(self._critic_step, compile_mode, dev) if compile else self._critic_step
        self._gen_fn = compile_step(self._generator_step, compile_mode, dev) if compile else self._generator_step

    # Functional views of the networks (domains.as_function): parameters (views of the flat buffers), own buffers.
    def _nets(self, g_params: dict, d_params: dict):
        g, d = self.generators, self.critics
        return (
            as_function(g["g_st"], g_params, "g_st"),
            as_function(g["g_ts"], g_params, "g_ts"),
            critic_scores(as_function(d["d_s"], d_params, "d_s")),
            critic_scores(as_function(d["d_t"], d_params, "d_t")),
        )

    def _critic_grad(self, d_flat, g_flat, x_s, x_t, eps_s, eps_t):
        cfg = self.config
        g_params = self.flat_g.unflatten(g_flat)

        def loss_fn(d_params):
            return critic_losses(
                *self._nets(g_params, d_params), x_s, x_t, eps_s, eps_t, cfg.loss, cfg.gp_weight, self.calculus
            )

        return grad_and_value(loss_fn, has_aux=True)(self.flat_d.unflatten(d_flat))

    def critic_gradient(self, x_s, x_t, eps_s, eps_t) -> tuple[torch.Tensor, dict]:
        """d L_D / d(critic parameters) as one flat tensor (D_s's, then D_t's), nothing updated (for tests)."""
        grads, (_, aux) = self._critic_grad(self.flat_d.data, self.flat_g.data, x_s, x_t, eps_s, eps_t)
        return torch.cat([g.reshape(-1) for g in grads.values()]), aux

    def _critic_step(self, d_flat, g_flat, state, lr, src_s, idx_s, src_t, idx_t, eps_s, eps_t):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])  # gathered + normalised on the device
        grads, (_, aux) = self._critic_grad(d_flat, g_flat, x_s, x_t, eps_s, eps_t)
        self.optim.update(self.flat_d, d_flat, list(grads.values()), state, lr, clip=self.config.loss == "clip")
        return aux

    def _generator_step(self, g_flat, d_flat, state, lr, src_s, idx_s, src_t, idx_t, y_s):
        x_s, x_t = as_float(src_s[idx_s]), as_float(src_t[idx_t])
        y = None if y_s is None else y_s[idx_s]  # gathered on the device with the images' rows
        d_params = self.flat_d.unflatten(d_flat.detach())

        def loss_fn(g_params):
            return generator_losses(
                *self._nets(g_params, d_params),
                x_s,
                x_t,
                self.cycle_weight,
                self.identity_weight,
                self.semantic,
                self.semantic_weight,
                y_s=y,
                semantic_threshold=self.semantic_threshold,
            )

        grads, (_, aux) = grad_and_value(loss_fn, has_aux=True)(self.flat_g.unflatten(g_flat))
        self.optim.update(self.flat_g, g_flat, list(grads.values()), state, lr)
        return aux

    def _critic_update(self, src_s, idx_s, src_t, idx_t, eps_s, eps_t):
        return owned(
            self._critic_fn(
                self.flat_d.data,
                self.flat_g.data,
                self.opt_state["critics"],
                self.lr["critics"],
                src_s,
                idx_s,
                src_t,
                idx_t,
                eps_s,
                eps_t,
            ),
            self._copy_outputs,
        )

    def _generator_update(self, src_s, idx_s, src_t, idx_t, y_s):
        return owned(
            self._gen_fn(
                self.flat_g.data,
                self.flat_d.data,
                self.opt_state["generators"],
                self.lr["generators"],
                src_s,
                idx_s,
                src_t,
                idx_t,
                y_s,
            ),
            self._copy_outputs,
        )


def load_translation(run, *, compile: bool = False, device: str | None = None, threads="auto") -> TranslationTrainer:
    """The translation trainer of a run folder written by ``fastwgan translate train`` (or any ``fit(out=...)``
    whose networks carry a ``spec``), at its latest checkpoint.

    Raises:
        FileNotFoundError / ValueError naming the folder when it is not a translation run.
    """
    from ...core.run import read_config
    from ...gan import models

    cfg_json = read_config(run)
    if cfg_json.get("kind") != "translation":
        raise ValueError(
            f"{run}: not a translation run (its config.json has kind {cfg_json.get('kind')!r}); "
            "train one with `fastwgan translate train`"
        )
    specs = cfg_json.get("networks") or {}
    if any(specs.get(k) is None for k in ("g_st", "g_ts", "d_s", "d_t")):
        raise ValueError(
            f"{run}: its networks have no spec to rebuild them from (user modules): load the "
            "checkpoint into your own trainer with load_state_dict"
        )
    config = TrainConfig.from_dict({**cfg_json["config"], **({"device": device} if device else {})})
    nets = {k: models.translator(**specs[k]) for k in ("g_st", "g_ts")}
    nets.update({k: models.build(**specs[k])[1] for k in ("d_s", "d_t")})
    trainer = TranslationTrainer(
        nets["g_st"],
        nets["g_ts"],
        nets["d_s"],
        nets["d_t"],
        config,
        cfg_json["cycle_weight"],
        cfg_json["identity_weight"],
        compile=compile,
        threads=threads,
    )
    state = checkpoint.load(Path(run) / "checkpoints")
    trainer.load_state_dict(state)
    s_spec, t_spec = specs["g_st"], specs["g_ts"]
    size = s_spec["image_size"]
    trainer.shapes = ((s_spec["channels_in"], size, size), (t_spec["channels_in"], size, size))
    return trainer
