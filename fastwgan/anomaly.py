"""Anomaly detection with a trained WGAN: f-AnoGAN (Schlegl, Seeböck, Waldstein, Langs & Schmidt-Erfurth 2019,
"f-AnoGAN: Fast unsupervised anomaly detection with generative adversarial networks", Medical Image Analysis 54),
and the two baselines it must beat, all with one convention: higher = more anomalous.

f-AnoGAN, on a WGAN-GP trained on normal data only:
  1. train an encoder E: x -> z with the generator G and the critic D frozen, the "izi_f" encoder (image -> z ->
     image, guided by the critic's features f, the activations before D's last layer), on normal data only:
         L(E) = E_x[ mse(x, G(E(x))) + kappa * mse(f(x), f(G(E(x)))) ],     kappa = 1 (the paper's value)
     mse is the mean over a sample's pixels (features); the loss is the mean over the batch;
  2. score a sample by the same two residuals: A(x) = mse_img(x) + kappa * mse_feat(x).
Baselines (``score``): "critic", minus the critic's output (a WGAN critic is higher on data like the training
set); "knn", the mean L2 distance in pixel space (images in [-1, 1]) to the k nearest training images.

The encoder trains like the GAN: the fast ``EncoderTrainer`` keeps E's parameters in one flat buffer, updates
them with the fused Adam (``fastwgan.flatopt``) inside one compiled step (``fastwgan.compile``); the eager twin
``ReferenceEncoderTrainer`` uses torch.optim.Adam and autograd, and the loss is written once (``residuals``) for
both. Batches are drawn with replacement by the encoder's own seeded generator, as the GAN's stream draws its own.
Defaults (``EncoderConfig``): kappa = 1 (Schlegl et al. 2019); Adam with the WGAN-GP paper's learning rate 1e-4
and DCGAN's betas (0.5, 0.999) (Radford et al. 2016), batch 64: fastwgan's choice, not the paper's (it leaves
the encoder's optimizer to its code).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from . import checkpoint, guards, rng
from .compile import compile_step
from .flat import flatten_parameters
from .flatopt import FlatOptimizer, load_torch_optimizer
from .images import as_float

__all__ = [
    "EncoderConfig",
    "Encoder",
    "encoder_for",
    "critic_features",
    "residuals",
    "EncoderTrainer",
    "ReferenceEncoderTrainer",
    "knn_scores",
    "score",
    "METHODS",
    "load_encoder",
]

METHODS = ("fanogan", "critic", "knn")
ENCODER_DIR = "encoder"  # where `fastwgan encode` keeps the encoder inside a run folder


@dataclass(frozen=True)
class EncoderConfig:
    """The izi_f encoder's training settings (module docstring for their sources)."""

    kappa: float = 1.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("kappa", "lr", "eps"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
                or (name != "kappa" and v == 0)
            ):
                raise ValueError(
                    f"EncoderConfig.{name}: must be a {'non-negative' if name == 'kappa' else 'positive'}"
                    f" finite number, got {v!r}"
                )
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"EncoderConfig.betas: must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("batch_size", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "batch_size" else 0):
                raise ValueError(
                    f"EncoderConfig.{name}: must be a "
                    f"{'positive' if name == 'batch_size' else 'non-negative'}"
                    f" integer, got {v!r}"
                )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


# ---------------------------------------------------------------------------------------------------------------
# The networks: E, and f (the critic's features)
# ---------------------------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """E(x) = Linear(phi(x)) -> (B, latent_dim): a feature extractor (B, *shape) -> (B, F) and a linear head."""

    def __init__(self, features: nn.Module, width: int, latent_dim: int, data_shape):
        super().__init__()
        self.features, self.head = features, nn.Linear(width, latent_dim)
        self.latent_dim, self.data_shape = latent_dim, tuple(data_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class _BodyFeatures(nn.Module):
    """A bundled critic body without its output layer: phi(x) (``fastwgan.conditioning.body_features``)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*list(body)[:-1]) if isinstance(body, nn.Sequential) else body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1) if isinstance(self.body, nn.Sequential) else self.body.features(x)


def encoder_for(spec: dict, seed: int = 0) -> Encoder:
    """The bundled izi_f encoder for a bundled model pair: the critic's architecture (MLP, DCGAN or ResNet, freshly
    initialised; batch norm becomes layer norm, so a sample's code does not depend on its batch) with its output
    layer replaced by a Linear to the latent size.

    Args:
        spec: the generator's ``spec`` (``G.spec``; a run's config.json "model").
        seed: initialises the encoder's weights (torch's global generator is left as it was).
    """
    from .models import build

    spec = {k: v for k, v in spec.items() if k not in ("num_classes", "conditioning")}
    if spec.get("critic_norm") == "batch":
        spec["critic_norm"] = "layer"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, critic = build(**spec)
        feats = _BodyFeatures(critic.body)
        with torch.no_grad():
            width = feats(torch.zeros(2, *spec["data_shape"])).shape[1]
        return Encoder(feats, width, spec["latent_dim"], spec["data_shape"])


def critic_features(critic: nn.Module, layer: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """f, the critic's features: ``critic.features`` for the bundled critics, or for a user's critic the output of
    the named submodule (read with a forward hook, flattened to (B, F)).

    Args:
        critic: the WGAN's critic.
        layer: the submodule name (``dict(critic.named_modules())``), e.g. "body.5"; None: ``critic.features``.
    """
    if layer is None:
        if not hasattr(critic, "features"):
            raise ValueError(
                "critic: it has no features(x) method; name the layer whose output is f "
                "(features_layer=NAME, one of critic.named_modules())"
            )
        return critic.features
    modules = dict(critic.named_modules())
    if layer not in modules:
        names = ", ".join(n for n in modules if n)
        raise ValueError(f"features_layer: the critic has no submodule {layer!r}; it has: {names}")
    module = modules[layer]

    def f(x: torch.Tensor) -> torch.Tensor:
        out = []
        handle = module.register_forward_hook(lambda m, inp, o: out.append(o))
        try:
            critic(x)
        finally:
            handle.remove()
        return out[0].flatten(1)

    return f


def residuals(x: torch.Tensor, x_rec: torch.Tensor, f_x: torch.Tensor, f_rec: torch.Tensor):
    """The izi_f residuals per sample: (mse over pixels of x - G(E(x)), mse over features of f(x) - f(G(E(x)))),
    each (B,). The encoder's loss is mean(img + kappa feat); the anomaly score is img + kappa feat."""
    img = (x - x_rec).square().flatten(1).mean(1)
    feat = (f_x - f_rec).square().flatten(1).mean(1)
    return img, feat


# ---------------------------------------------------------------------------------------------------------------
# Training the encoder
# ---------------------------------------------------------------------------------------------------------------
class _EncoderTrainerBase:
    name = "base"

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        encoder: nn.Module,
        config: EncoderConfig = None,
        *,
        features_layer: str | None = None,
        device=None,
    ):
        config = config or EncoderConfig()
        if not isinstance(config, EncoderConfig):
            raise TypeError(f"config must be a fastwgan.anomaly.EncoderConfig, got {type(config).__name__}")
        self.config = config
        self.device = torch.device(device) if device is not None else next(generator.parameters()).device
        # G and D are frozen: only E's parameters are differentiated and updated, and G and D run in eval mode
        # (batch-norm running statistics, no dropout) while the encoder trains or scores (``_frozen``)
        self.generator = generator.to(self.device)
        self.critic = critic.to(self.device)
        self.encoder = encoder.to(self.device)
        self.features_layer = features_layer
        self.f = critic_features(self.critic, features_layer)
        self._gen = rng.make_generator(config.seed)
        self.step = 0
        self.history: list[dict] = []

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

    def _train_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

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
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        shape = tuple(getattr(self.generator, "data_shape", x.shape[1:]))
        if x.dim() < 2 or tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"{what}: expected images of shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
            )
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise ValueError(f"{what}: expected uint8 images or floats in [-1, 1], got dtype {x.dtype}")
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise ValueError(f"{what}: contains NaN or inf values")
        return x

    # -------------------------------------------------------------- training
    def fit(
        self,
        data,
        steps: int,
        *,
        out=None,
        log_every: int = 50,
        checkpoint_every: int | None = None,
        progress: bool | None = None,
        keep_checkpoints: int = 2,
        run_config: dict | None = None,
    ):
        """Train E until ``steps`` updates in total (a resumed trainer continues to it).

        Args:
            data: the NORMAL training images (N, *shape), uint8 or floats in [-1, 1].
            steps: total encoder updates.
            out: a folder for stats.jsonl, config.json and checkpoints/ (the CLI uses RUN/encoder); None: nothing.
            log_every: steps between log ticks (history record, NaN check, stats line).
            checkpoint_every: steps between checkpoints (default: only at the end).
            progress: None (a bar on a terminal, else a plain line every 30 s), True or False (``run.Progress``).
            keep_checkpoints: checkpoints kept.
            run_config: extra JSON for config.json.
        Returns:
            self.
        """
        from .run import Progress

        data = self._check(data, "data")
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        out = Path(out) if out is not None else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            checkpoint.atomic_write_json(
                out / "config.json",
                {
                    "kind": "fanogan-encoder",
                    "trainer": self.name,
                    "config": self.config.to_dict(),
                    "features_layer": self.features_layer,
                    **(run_config or {}),
                },
            )
        bar = Progress(steps, self.step, f"encoder {self.name}", progress)
        pending, t0 = [], time.perf_counter()
        try:
            with self._frozen():
                while self.step < steps:
                    idx = torch.randint(0, len(data), (self.config.batch_size,), generator=self._gen)
                    x = as_float(data[idx]).to(self.device)  # (B, *shape) in [-1, 1]
                    pending.append(self._train_step(x))
                    self.step += 1
                    bar.update(1)
                    last = self.step == steps
                    if self.step % log_every == 0 or last:
                        vals = torch.stack([torch.stack([m["loss"], m["image"], m["feature"]]) for m in pending]).cpu()
                        pending.clear()
                        loss, img, feat = vals.mean(0).tolist()
                        rec = {
                            "step": self.step,
                            "loss": loss,
                            "image": img,
                            "feature": feat,
                            "steps_per_s": log_every / max(time.perf_counter() - t0, 1e-9),
                        }
                        t0 = time.perf_counter()
                        bad = guards.first_nonfinite(rec)
                        if bad is not None:
                            raise guards.DivergenceError(self.step, *bad)
                        self.history.append(rec)
                        bar.set_postfix({"loss": f"{loss:.4g}"})
                        if out is not None:
                            with open(out / "stats.jsonl", "a") as fh:
                                fh.write(json.dumps(rec) + "\n")
                    if out is not None and ((checkpoint_every and self.step % checkpoint_every == 0) or last):
                        checkpoint.save(self.state_dict(), out / "checkpoints", self.step, keep=keep_checkpoints)
        finally:
            bar.close()
        return self

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "format": 1,
            "kind": "fanogan-encoder",
            "config": self.config.to_dict(),
            "step": self.step,
            "encoder": dict(self.encoder.state_dict()),
            "optimizer": self._optimizer_state(),
            "rng": self._gen.get_state(),
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "fanogan-encoder":
            raise ValueError("load_state_dict: not an f-AnoGAN encoder checkpoint")
        mine, theirs = self.config.to_dict(), state["config"]
        diff = sorted(k for k in theirs if mine.get(k) != theirs[k])
        if diff:
            raise ValueError(f"load_state_dict: the encoder was trained with another config ({', '.join(diff)})")
        try:
            self.encoder.load_state_dict(state["encoder"])
        except RuntimeError as e:
            raise ValueError(f"load_state_dict: the checkpoint does not match this encoder: {e}") from None
        self._load_optimizer_state(state["optimizer"])
        self._gen.set_state(state["rng"])
        self.step = int(state["step"])
        self.history = [dict(r) for r in state.get("history", [])]

    def _optimizer_state(self) -> dict:
        raise NotImplementedError

    def _load_optimizer_state(self, state: dict) -> None:
        raise NotImplementedError


class ReferenceEncoderTrainer(_EncoderTrainerBase):
    """The eager twin: autograd and torch.optim.Adam."""

    name = "reference"

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


class EncoderTrainer(_EncoderTrainerBase):
    """The fast trainer: E's parameters in one flat buffer, the fused Adam, one compiled step.

    Args:
        generator, critic: the trained WGAN's networks (frozen here).
        encoder: E, e.g. ``encoder_for(G.spec)``.
        config: ``EncoderConfig``.
        features_layer: a user critic's feature layer (``critic_features``).
        compile: compile the step (``fastwgan.compile``).
        impl: the optimizer's kernels ("auto" | "triton" | "torch", ``fastwgan.ops``).
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
        **kw,
    ):
        super().__init__(generator, critic, encoder, config, **kw)
        c = self.config
        self.flat = flatten_parameters(self.encoder, grad=False)
        self.optim = FlatOptimizer("adam", c.betas, eps=c.eps, impl=impl)
        self.opt_state = self.optim.new_state(self.flat)
        self.lr = torch.tensor(c.lr, device=self.device)
        self._param_group = self.optim.param_group(c.lr, len(self.flat.params))
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
        return FlatOptimizer.state_dict(self.flat, self.opt_state, self._param_group)

    def _load_optimizer_state(self, state: dict) -> None:
        FlatOptimizer.load_state_dict(self.flat, self.opt_state, state, "encoder")


# ---------------------------------------------------------------------------------------------------------------
# Scores (higher = more anomalous)
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def knn_scores(train, x, k: int = 1, chunk: int = 1024) -> torch.Tensor:
    """The honest baseline: the mean L2 distance (pixels in [-1, 1]) from each sample of ``x`` to its ``k``
    nearest training images. The training images are read once, in chunks: ``train`` is a tensor (N, *shape), or
    any iterable of such chunks (a DataLoader over a streamed folder); memory holds one chunk of distances.

    Returns:
        (len(x),) float64, higher = farther from every training image = more anomalous.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"knn: k must be a positive integer, got {k!r}")
    x = torch.as_tensor(x)
    chunks = (train[j : j + chunk] for j in range(0, len(train), chunk)) if isinstance(train, torch.Tensor) else train
    q = [as_float(x[i : i + chunk]).flatten(1).double() for i in range(0, len(x), chunk)]  # (q, D) each
    best = [None] * len(q)  # per query chunk: (q, <= k) smallest distances so far
    seen = 0
    for t in chunks:
        t = t[0] if isinstance(t, (tuple, list)) else t  # (x, y) batches: the images
        if tuple(t.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(
                f"knn: inputs of shape {tuple(x.shape[1:])} but training images of shape {tuple(t.shape[1:])}"
            )
        seen += len(t)
        t = as_float(t).flatten(1).double()
        for i, qi in enumerate(q):
            d = torch.cdist(qi, t)  # (q, t)
            d = d if best[i] is None else torch.cat([best[i], d], 1)
            best[i] = d.topk(min(k, d.shape[1]), dim=1, largest=False).values
    if seen < k:
        raise ValueError(f"knn: k={k} but only {seen} training images")
    return torch.cat([b.mean(1) for b in best]) if best else torch.zeros(0, dtype=torch.float64)


def score(
    method: str, x, *, trainer=None, encoder_trainer=None, train=None, labels=None, k: int = 1, batch_size: int = 1024
) -> dict[str, torch.Tensor]:
    """Anomaly scores of (N, *shape) images, higher = more anomalous, by ``method``:
    "fanogan" (``encoder_trainer.score``: score, image, feature), "critic" (minus ``trainer.critic_score``;
    ``labels`` for a class-conditional run) or "knn" (``knn_scores`` against ``train``).

    Returns:
        {"score": (N,) float64, ...} with the method's parts as extra entries.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "fanogan":
        if encoder_trainer is None:
            raise ValueError("method 'fanogan' needs a trained encoder (fastwgan encode RUN, or EncoderTrainer)")
        return encoder_trainer.score(x, batch_size=batch_size)
    if method == "critic":
        if trainer is None:
            raise ValueError("method 'critic' needs the trainer")
        return {"score": -trainer.critic_score(x, batch_size=batch_size, labels=labels).double()}
    if train is None:
        raise ValueError("method 'knn' needs the training images (train=)")
    return {"score": knn_scores(train, x, k=k)}


def load_encoder(run, trainer, *, compile: bool = False) -> EncoderTrainer:
    """The encoder ``fastwgan encode`` trained in run folder ``run`` (RUN/encoder), on ``trainer``'s networks.

    Raises:
        ValueError naming the ``fastwgan encode`` command when there is none, or when the run's GAN has moved on
        since (the encoder inverts one generator).
    """
    d = Path(run) / ENCODER_DIR
    if not (d / "checkpoints").is_dir():
        raise ValueError(f"{run} has no encoder: train one with `fastwgan encode {run}` (f-AnoGAN needs it)")
    info = json.loads((d / "config.json").read_text())
    if info.get("gan_step") is not None and info["gan_step"] != trainer.step:
        raise ValueError(
            f"{run}: the encoder inverts the GAN at step {info['gan_step']}, but the run is at step "
            f"{trainer.step}: retrain it with `fastwgan encode {run} --overwrite`"
        )
    state = checkpoint.load(d)
    cfg = EncoderConfig(**{**state["config"], "betas": tuple(state["config"]["betas"])})
    et = EncoderTrainer(
        trainer.sampling_generator(),
        trainer.critic,
        encoder_for(info["model"]),
        cfg,
        compile=compile,
        features_layer=info.get("features_layer"),
        device=trainer.device,
    )
    et.load_state_dict(state)
    return et
