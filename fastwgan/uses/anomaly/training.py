"""The f-AnoGAN encoder's two trainers on the engine (``fastwgan.core.engine``): the fast ``EncoderTrainer`` (E in one
flat buffer, the fused Adam, one compiled step) and the eager twin ``ReferenceEncoderTrainer`` (autograd,
torch.optim.Adam); the loss is written once (``residuals``) for both.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from ...core.compile import compile_step
from ...core.engine import Engine, FitOptions
from ...core.images import as_float, check_samples
from ...core.optimizers import FlatGroups, FlatOptimizer, load_torch_optimizer
from ..domains import domain_source
from .encoder import EncoderConfig, critic_features, residuals


class EncoderTrainerBase(Engine):
    """The encoder trainers' shared part, on the engine (``fastwgan.core.engine``): each step draws a batch of normal
    images (rows from the seeded stream, or a DataLoader's next batch) and makes one update of E."""

    name = "base"
    kind = "fanogan-encoder"
    metrics = ("loss", "image", "feature")
    plot_panels = (("encoder", (("loss", "loss"), ("image", "image residual"), ("feature", "feature residual"))),)
    rows = (("idx",),)  # the one domain's rows in a step's draw (fastwgan.uses.domains.DomainLoaders)

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        encoder: nn.Module,
        config: EncoderConfig = None,
        *,
        features_layer: str | None = None,
        device=None,
        threads: int | str | None = None,
    ):
        config = config or EncoderConfig()
        if not isinstance(config, EncoderConfig):
            raise TypeError(f"config must be a fastwgan.uses.anomaly.EncoderConfig, got {type(config).__name__}")
        device = torch.device(device) if device is not None else next(generator.parameters()).device
        super().__init__(config, device, seed=config.seed, batch_size=config.batch_size, threads=threads)
        self.images_per_step = config.batch_size
        # G and D are frozen: only E's parameters are differentiated and updated, and G and D run in eval mode
        # (batch-norm running statistics, no dropout) while the encoder trains or scores (``_frozen``)
        self.generator = generator.to(self.device)
        self.critic = critic.to(self.device)
        self.encoder = encoder.to(self.device)
        self.features_layer = features_layer
        self.f = critic_features(self.critic, features_layer)

    # -------------------------------------------------------------- the engine's hooks
    def _networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def _draw(self, source) -> dict[str, torch.Tensor]:
        (n,) = source.sizes
        return {"idx": self.shard(torch.randint(0, n, (self.config.batch_size,), generator=self._gen))}

    def _step(self, source, draw) -> dict[str, torch.Tensor]:
        (data,), draw = source.next(draw)
        x = as_float(data[draw["idx"].to(data.device)]).to(self.device)  # (B, *shape) in [-1, 1]
        with self._frozen():
            return self.threads.run(lambda: self._train_step(x))

    def _run_meta(self, steps: int) -> tuple[dict, dict | None]:
        meta, defaults = super()._run_meta(steps)
        return {**meta, "features_layer": self.features_layer}, defaults

    def _preview(self, writer, source) -> None:
        """samples/step_N.png: 8 training images above their reconstructions G(E(x))."""
        x = source.first()[0][:8].cpu()
        if x.dim() == 4:
            writer.samples(self.step, torch.cat([as_float(x), self.reconstruct(x)]), nrow=len(x))

    @contextlib.contextmanager
    def _frozen(self):
        """G and D in eval mode for the block, their own modes restored after (a GAN trainer may continue)."""
        modes = self.generator.training, self.critic.training
        self.generator.eval()
        self.critic.eval()
        try:
            yield
        finally:
            self.generator.train(modes[0])
            self.critic.train(modes[1])

    # -------------------------------------------------------------- the loss, written once for both trainers
    def _residuals(self, x: torch.Tensor, z: torch.Tensor):
        x_rec = self.generator(z)
        return residuals(x, x_rec, self.f(x), self.f(x_rec))

    # -------------------------------------------------------------- scoring
    @contextlib.contextmanager
    def _scoring(self):
        """E, G and D in eval mode for the block (each module's own mode restored after)."""
        was = self.encoder.training
        self.encoder.eval()
        try:
            with self._frozen(), torch.no_grad():
                yield
        finally:
            self.encoder.train(was)

    def reconstruct(self, x, batch_size: int = 1024) -> torch.Tensor:
        """G(E(x)) for (N, *shape) images (uint8 or floats in [-1, 1]); floats on the CPU."""
        x = self._check(x, "reconstruct")
        with self._scoring():
            return torch.cat(
                [
                    self.generator(self.encoder(as_float(x[i : i + batch_size]).to(self.device))).float().cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )

    def score(self, x, batch_size: int = 1024) -> dict[str, torch.Tensor]:
        """f-AnoGAN's score of (N, *shape) images: {"score": A(x), "image": mse_img, "feature": mse_feat}, (N,)
        float64 each; higher = more anomalous."""
        x = self._check(x, "score")
        img, feat = [], []
        with self._scoring():
            for i in range(0, len(x), batch_size):
                xb = as_float(x[i : i + batch_size]).to(self.device)
                a, b = self._residuals(xb, self.encoder(xb))
                img.append(a.double().cpu())
                feat.append(b.double().cpu())
        img, feat = torch.cat(img), torch.cat(feat)
        return {"score": img + self.config.kappa * feat, "image": img, "feature": feat}

    def _check(self, x, what: str) -> torch.Tensor:
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            x = torch.as_tensor(x)
        x = check_samples(x, what)
        shape = tuple(getattr(self.generator, "data_shape", x.shape[1:]))
        if x.dim() < 2 or tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"{what}: expected images of shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
            )
        return x

    # -------------------------------------------------------------- training
    def fit(self, data, steps: int | None = None, *, add_steps: int | None = None, options=None, **kw):
        """Train E until ``steps`` updates in total (a resumed trainer continues to it), or ``add_steps`` more.

        Args:
            data: the NORMAL training images (N, *shape), uint8 or floats in [-1, 1]; or a DataLoader of such
                batches of ``EncoderConfig.batch_size`` (per rank under torchrun).
            steps / add_steps: total encoder updates, or more from now (exactly one).
            options, **kw: ``fastwgan.core.engine.FitOptions``; out: a folder for config.json, stats.jsonl, plots,
                samples (reconstructions) and checkpoints/ (the CLI uses RUN/encoder). Defaults here: log_every
                50, keep_checkpoints 2.
        Returns:
            self.
        """
        opts = FitOptions.of(FitOptions(log_every=50, keep_checkpoints=2), **(vars(options) if options else {}))
        opts = FitOptions.of(opts, **kw)
        source = domain_source(self, (data,), lambda x: (self._check(x, "data"),), self.rows)
        return self.run(source, steps, add_steps, opts)

    # -------------------------------------------------------------- state
    def state_dict(self, with_history: bool = True) -> dict:
        return {
            **self.engine_state(with_history),
            "encoder": dict(self.encoder.state_dict()),
            "optimizer": self._optimizer_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "fanogan-encoder":
            raise ValueError("load_state_dict: not an f-AnoGAN encoder checkpoint")
        self.check_state_config(state, ignore=())
        try:
            self.encoder.load_state_dict(state["encoder"])
        except RuntimeError as e:
            raise ValueError(f"load_state_dict: the checkpoint does not match this encoder: {e}") from None
        self._load_optimizer_state(state["optimizer"])
        self.load_engine_state(state)

    def _train_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _optimizer_state(self) -> dict:
        raise NotImplementedError

    def _load_optimizer_state(self, state: dict) -> None:
        raise NotImplementedError


class ReferenceEncoderTrainer(EncoderTrainerBase):
    """The eager twin: autograd and torch.optim.Adam."""

    name = "reference"
    single_process = True  # the oracle: torchrun runs the fast trainer

    def __init__(self, generator, critic, encoder, config: EncoderConfig = None, **kw):
        super().__init__(generator, critic, encoder, config, **kw)
        c = self.config
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=c.lr, betas=c.betas, eps=c.eps, foreach=False)

    def _train_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        img, feat = self._residuals(x, self.encoder(x))
        img, feat = img.mean(), feat.mean()
        loss = img + self.config.kappa * feat
        params = list(self.encoder.parameters())
        for p, g in zip(params, torch.autograd.grad(loss, params)):  # E's gradients only: G and D stay untouched
            p.grad = g
        self.opt.step()
        return {"loss": loss.detach(), "image": img.detach(), "feature": feat.detach()}

    def _optimizer_state(self) -> dict:
        return self.opt.state_dict()

    def _load_optimizer_state(self, state: dict) -> None:
        load_torch_optimizer(self.opt, state, "encoder")


class EncoderTrainer(EncoderTrainerBase):
    """The fast trainer: E's parameters in one flat buffer, the fused Adam, one compiled step.

    Args:
        generator, critic: the trained WGAN's networks (frozen here).
        encoder: E, e.g. ``encoder_for(G.spec)``.
        config: ``EncoderConfig``.
        features_layer: a user critic's feature layer (``critic_features``).
        compile: compile the step (``fastwgan.core.compile``).
        impl: the optimizer's kernels ("auto" | "triton" | "torch", ``fastwgan.ops``).
        threads: CPU intra-op threads ("auto", an int, or None: torch's setting; ``fastwgan.core.threads``).
    """

    name = "fast"

    def __init__(
        self,
        generator,
        critic,
        encoder,
        config: EncoderConfig = None,
        *,
        compile: bool = True,
        impl: str = "auto",
        threads: int | str | None = "auto",
        **kw,
    ):
        super().__init__(generator, critic, encoder, config, threads=threads, **kw)
        c = self.config
        all_reduce = self.all_reduce_mean if self.world_size > 1 else None
        optim = FlatOptimizer(
            "adam", c.betas, eps=c.eps, impl=impl, all_reduce=all_reduce, distributed=all_reduce is not None
        )
        self.groups = FlatGroups(optim, self.device, {"encoder": (self.encoder, c.lr)})
        self.flat, self.optim = self.groups.flat["encoder"], optim
        self.opt_state, self.lr = self.groups.state["encoder"], self.groups.lr["encoder"]
        self._bufs = dict(self.encoder.named_buffers())
        self._step_fn = compile_step(self._update, device=self.device) if compile else self._update

    def _loss(self, e_params: dict, x: torch.Tensor):
        z = functional_call(self.encoder, {**e_params, **self._bufs}, (x,))
        img, feat = self._residuals(x, z)
        img, feat = img.mean(), feat.mean()
        return img + self.config.kappa * feat, (img.detach(), feat.detach())

    def _update(self, e_flat: torch.Tensor, state: dict, lr: torch.Tensor, x: torch.Tensor):
        grads, (loss, (img, feat)) = grad_and_value(self._loss, has_aux=True)(self.flat.unflatten(e_flat), x)
        self.optim.update(self.flat, e_flat, list(grads.values()), state, lr)
        return {"loss": loss.detach(), "image": img, "feature": feat}

    def _train_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._step_fn(self.flat.data, self.opt_state, self.lr, x)

    def _optimizer_state(self) -> dict:
        return self.groups.state_dict()["encoder"]

    def _load_optimizer_state(self, state: dict) -> None:
        self.groups.load_state_dict({"encoder": state})
