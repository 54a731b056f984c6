"""The fast trainer: the reference trainer's algorithm as compiled functional steps with fused kernels.

Same interface, same random stream and (within fp32 tolerance) the same results as ``ReferenceTrainer``; what
differs is how a step runs:

* every critic (and generator) parameter is a view into one flat fp32 buffer (``fastwgan.core.flat``); the step
  differentiates the loss w.r.t. that buffer with ``torch.func.grad_and_value``, so the gradient arrives as one
  flat tensor and the optimizer is one fused pass: RMSprop + clamp for WGAN (no separate clipping pass), Adam for
  WGAN-GP (``fastwgan.ops``);
* for WGAN-GP the input gradient comes from an inner ``torch.func.grad`` over x_hat (DESIGN facts 1-2), the
  interpolation and the per-sample norm + penalty are fastwgan ops;
* each step is one ``torch.compile(fullgraph=True)`` graph; learning rates and step counts are 0-d tensors;
* the dataset lives on the device (uint8) and batches are gathered there; metrics stay on the device until a
  log tick.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value

from ..core import rng
from ..core.compile import compile_step
from ..core.config import TrainConfig
from ..core.flat import flatten_parameters
from ..core.images import as_float
from ..core.optimizers import FlatGroups, concat
from ..data.sources import HostStreamSource, RealBatches, TensorSource
from ..ops import augment
from ..ops.dispatch import DEFAULT_IMPL, resolve_impl  # noqa: F401 (fastwgan.gan.trainer.DEFAULT_IMPL stays)
from . import objectives
from .base import TrainerBase
from .conditioning import split_critic_output
from .models import has_batch_norm

# One compiled graph per generator iteration, or one per update? Each compiled call costs ~0.6 ms on this CPU
# (Dynamo's guards ~0.3 ms, inductor's Python wrapper ~0.3 ms; toy MLP-128 profile), 7 calls per iteration, while
# the fused graph compiles ~3x longer (toy MLP-128: 62 s cold vs 20 s). Measured, torch 2.13 CPU, 2-core EPYC,
# 2 threads, median of 30 (/tmp probe, then benchmarks/test_bench_steps.py --profile cpu -k vs_loop): toy MLP-128
# b256 11.4-12.7 ms fused vs 13.0 ms per update; for DCGAN-32 (1100 ms) the saving is 0.4% for 3x the compile.
# So on CPU only small models fuse. CUDA: per update until a GPU benchmark measures the fused graph.
FUSE_ITERATION_MAX_PARAMS = {"cpu": 250_000, "cuda": 0}
# The fused graph saves ~3.6 ms per iteration (6 calls) for ~30 s more cold compile (~6 s warm): it pays after
# thousands of steps. A first fit shorter than this keeps one graph per update.
FUSE_ITERATION_MIN_STEPS = 5000


def default_fuse_iteration(device: torch.device, n_params: int) -> bool:
    """The default of ``Trainer(fuse_iteration=None)``: fuse where the model is small
    (``FUSE_ITERATION_MAX_PARAMS``)."""
    return n_params <= FUSE_ITERATION_MAX_PARAMS.get(device.type, 0)


class Trainer(TrainerBase):
    """Fast WGAN / WGAN-GP trainer, a drop-in twin of ``ReferenceTrainer``.

    Args:
        generator, critic, config: as for ``ReferenceTrainer``.
        compile: compile each step with torch.compile (fullgraph); False runs the same functional steps eagerly.
        impl: "auto" | "triton" | "torch" for every op, or a dict {"optimizer", "interpolate", "penalty"}
            overriding ``DEFAULT_IMPL`` for this device.
        compile_mode: torch.compile mode (e.g. "reduce-overhead" for CUDA graphs on CUDA).
        ema_decay: keep an exponential moving average of the generator for ``sample`` (None: off, as in the
            papers).
        device_data_bytes: datasets up to this size are uploaded to the device once and batches are gathered
            there; larger ones stay in (pinned) host memory and each step's batches are gathered on the host and
            copied over asynchronously. Default: on CUDA half the free device memory, on CPU no limit.
        batch_calls: the n_critic fake batches of a generator iteration come from one generator call (exact: the
            generator is fixed during the critic updates), for a generator that treats samples independently.
            None (default): on for a generator without batch norm; False for one that mixes samples in other
            ways (e.g. minibatch statistics).
        fuse_iteration: compile the whole generator iteration (n_critic critic updates + the generator update) as
            one graph instead of one graph per update: no per-call overhead (guards, wrapper) between updates, at
            about 3x the compile time. None: per ``FUSE_ITERATION_MAX_PARAMS`` (the device and the model size),
            unless the first ``fit`` runs fewer than ``FUSE_ITERATION_MIN_STEPS`` steps (the longer compile would
            not pay back).
        threads: CPU intra-op threads for the steps: "auto" (default) chooses from measured step times and
            re-chooses when another process competes for the cores (``fastwgan.core.threads``); an int fixes the count
            (bitwise-repeatable runs); None leaves torch's setting alone.
    """

    name = "fast"

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        config: TrainConfig,
        *,
        compile: bool = True,
        impl: str | dict = "auto",
        compile_mode: str | None = None,
        ema_decay: float | None = None,
        device_data_bytes: int | None = None,
        batch_calls: bool | None = None,
        threads: int | str | None = "auto",
        fuse_iteration: bool | None = None,
    ):
        super().__init__(generator, critic, config, threads=threads)
        if device_data_bytes is not None and device_data_bytes < 0:
            raise ValueError(f"device_data_bytes must be >= 0, got {device_data_bytes!r}")
        self.device_data_bytes = device_data_bytes
        self.streaming = False  # set by fit: True when a tensor dataset stays in (pinned) host memory
        self._gathered = False  # the current step's batches arrive gathered (a loader or the host stream)
        cfg, dev = config, self.device
        self.impl = resolve_impl(impl, dev)
        self.calculus = objectives.compiled_calculus(
            self.impl["interpolate"], self.impl["penalty"]
        )  # the loss's pieces
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay!r}")
        self.ema_decay = ema_decay
        self.autocast = torch.bfloat16 if cfg.dtype == "bfloat16" else None
        n_params = sum(p.numel() for m in (generator, critic) for p in m.parameters())
        self._fuse_auto = fuse_iteration is None
        self.fuse_iteration = (
            (compile and default_fuse_iteration(self.device, n_params))
            if fuse_iteration is None
            else bool(fuse_iteration)
        )
        self.batch_calls = (not has_batch_norm(generator)) if batch_calls is None else bool(batch_calls)

        # Flat fp32 master buffers (the modules' parameters are views into them), optimizer state, lr tensors.
        self.groups = FlatGroups.for_trainer(
            self, {"critic": (self.critic, cfg.lr_d), "generator": (self.generator, cfg.lr_g)}
        )
        self.optim, self.opt_state, self.lr = self.groups.optim, self.groups.state, self.groups.lr
        self.flat_d, self.flat_g = self.groups.flat["critic"], self.groups.flat["generator"]
        self.ema_generator = None
        if ema_decay is not None:
            self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False)
            self.flat_ema = flatten_parameters(self.ema_generator, grad=False)

        self._arange_cache: torch.Tensor | None = None
        self.compiled = compile
        # CUDA graphs reuse their output memory on the next replay: keep copies of the (tiny) metric outputs.
        self._copy_outputs = compile and compile_mode == "reduce-overhead"
        self._critic_fn = compile_step(self._critic_update, compile_mode, dev) if compile else self._critic_update
        self._fakes_fn = compile_step(self._fakes, compile_mode, dev) if compile else self._fakes
        self._gen_fn = compile_step(self._generator_update, compile_mode, dev) if compile else self._generator_update
        self._iteration_fn = (
            compile_step(self._fused_iteration, compile_mode, dev) if compile else self._fused_iteration
        )

    # ------------------------------------------------------------------ optimizer (flat buffers)
    def _update(
        self, flat, buf: torch.Tensor, grads: list[torch.Tensor], state: dict, lr: torch.Tensor, clip: bool
    ) -> None:
        """One fused optimizer step over a flat buffer (``fastwgan.core.optimizers.FlatOptimizer.update``)."""
        self.optim.update(flat, buf, grads, state, lr, clip)

    # ------------------------------------------------------------------ the functional pieces
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None)

    # Module buffers (batch-norm statistics) are passed in explicitly: torch.func refuses in-place updates of
    # tensors a transformed function merely captures.
    # Parameters are passed as {name: tensor} (views of the flat buffer): the steps differentiate w.r.t. these
    # views, so each gradient arrives per parameter (see ``_update``).
    # Class-conditional runs pass the labels y (B,): the models are called G(z, y), D(x, y); a critic with a
    # classifier head returns (score, logits).
    def _critic_out(self, d_params: dict, x: torch.Tensor, bufs: dict, y=None):
        """(scores (B,) fp32, logits (B, K) fp32 or None)."""
        with self._autocast():
            score, logits = split_critic_output(
                functional_call(self.critic, {**d_params, **bufs}, (x,) if y is None else (x, y))
            )
        return score.reshape(-1).float(), None if logits is None else logits.float()

    def _critic_call(self, d_params: dict, x: torch.Tensor, bufs: dict, y=None) -> torch.Tensor:
        return self._critic_out(d_params, x, bufs, y)[0]

    def _generate(self, g_params: dict, z: torch.Tensor, bufs: dict, y=None) -> torch.Tensor:
        with self._autocast():
            return functional_call(self.generator, {**g_params, **bufs}, (z,) if y is None else (z, y)).float()

    def _real_batch(self, data: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return as_float(data[idx])  # gather + normalise on the device, fused by inductor

    def critic_loss(self, d_params, d_bufs, real, fake, eps, y=None):
        """The critic's loss as a function of its parameters {name: tensor} (differentiated by ``critic_gradient``).

        Returns:
            (loss, metrics dict of detached 0-d tensors)
        """
        cfg = self.config
        # Real and fake are scored in two calls, as in the reference. One call over both (exact algebra without
        # batch norm) was tried: the critic's last bias then gets a gradient of rounding noise instead of exactly
        # 0 (the two means no longer cancel term by term), which Adam turns into lr-sized steps (DESIGN fact 10).
        d_real, logits_real = self._critic_out(d_params, real, d_bufs, y)
        loss, aux = objectives.critic_objective(
            lambda x: self._critic_call(d_params, x, d_bufs, y),
            real,
            fake,
            eps,
            cfg.loss,
            cfg.gp_weight,
            self.calculus,
            real_scores=d_real,
        )
        if logits_real is not None:  # auxiliary classifier: cross-entropy on the real samples
            ac = F.cross_entropy(logits_real, y)
            loss = loss + cfg.ac_weight[0] * ac
            aux["ac_loss"] = ac.detach()
        aux["critic_loss"] = loss.detach()
        return loss, aux

    def critic_gradient(self, real, z, eps, y=None):
        """d(critic loss)/d(critic parameters) as one flat tensor, without updating anything (for tests).

        Args:
            real: (B, *shape) float batch; z: (B, latent_dim) noise; eps: (B,) or None; y: (B,) labels or None.
        Returns:
            (flat gradient (N,), metrics dict)
        """
        fake = self._fakes(self.flat_g.data, z, y)
        grads, (_, aux) = self._critic_grad(self.flat_d.data, real, fake, eps, y)
        return concat(grads.values()), aux

    @staticmethod
    def _bufs(module: nn.Module) -> dict[str, torch.Tensor]:
        return dict(module.named_buffers())

    def _fakes(self, g_flat, z, y=None):
        """G(z) (G(z, y)) without gradient: the critic phase's fakes (B, *shape), or all n_critic batches at once."""
        with torch.no_grad():
            return self._generate(self.flat_g.unflatten(g_flat), z, self._bufs(self.generator), y)

    def _critic_grad(self, d_flat, real, fake, eps, y=None):
        """({name: gradient}, (loss, metrics)) of the critic loss on a real batch and a fake batch."""
        return grad_and_value(self.critic_loss, has_aux=True)(
            self.flat_d.unflatten(d_flat), self._bufs(self.critic), real, fake, eps, y
        )

    def _augment(self, x: torch.Tensor, seed) -> torch.Tensor:
        """DiffAugment T(x) with its own seed (config.augment; fastwgan.ops.augment), or x when there is no policy."""
        return augment.apply(x, seed, self.config.augment, impl=self.impl["augment"]) if self.config.augment else x

    def _critic_update(self, d_flat, state, lr, data, idx, fake, eps, y=None, aug=None):
        real = self._real_batch(data, idx)  # (B, *shape)
        if self.config.augment:  # what the critic sees: T(real), T'(fake); x_hat interpolates the augmented pair
            real, fake = self._augment(real, aug[0]), self._augment(fake, aug[1])
        grads, (_, aux) = self._critic_grad(d_flat, real, fake, eps, y)
        self._update(self.flat_d, d_flat, list(grads.values()), state, lr, clip=self.config.loss == "clip")
        return aux

    def _generator_update(self, g_flat, d_flat, state, lr, z, y=None, aug=None):
        d_const = self.flat_d.unflatten(d_flat.detach())
        ac_weight = self.config.ac_weight[1]

        def loss_fn(g_params, g_bufs, d_bufs):
            fake = self._augment(self._generate(g_params, z, g_bufs, y), aug)  # T differentiable: grads reach G
            score, logits = self._critic_out(d_const, fake, d_bufs, y)
            loss = -score.mean()
            return loss if logits is None else loss + ac_weight * F.cross_entropy(logits, y)

        grads, loss = grad_and_value(loss_fn)(
            self.flat_g.unflatten(g_flat), self._bufs(self.generator), self._bufs(self.critic)
        )
        self._update(self.flat_g, g_flat, list(grads.values()), state, lr, clip=False)
        return loss.detach()

    # ------------------------------------------------------------------ the step
    def _tensor_source(self, data: torch.Tensor, labels: torch.Tensor | None) -> TensorSource:
        limit = self.device_data_bytes
        if limit is None:
            limit = torch.cuda.mem_get_info(self.device)[0] // 2 if self.device.type == "cuda" else None
        size = data.numel() * data.element_size()
        self.streaming = limit is not None and size > limit
        labels = None if labels is None else labels.to(self.device)  # small: on the device, even when images stream
        if self.streaming:
            return HostStreamSource(data, labels, self.device)
        return TensorSource(data.to(self.device), labels)  # uploaded once (uint8 stays uint8), gathered on device

    def _train_step(self, batches: RealBatches, noise: rng.StepNoise) -> dict[str, torch.Tensor]:
        # batches that arrive gathered (a loader, a host stream): each update takes rows 0..B-1 of its own (B, ...)
        # batch (the same graph as a small "dataset")
        self._fuse_auto = False  # stepping has begun: the graph layout is fixed
        self._gathered = batches.idx is None
        noise = noise.to(self.device)
        idx = self._arange(noise.z.shape[1]).expand(noise.z.shape[:2]) if self._gathered else batches.idx
        args = (
            self.flat_d.data,
            self.flat_g.data,
            self.opt_state["critic"],
            self.opt_state["generator"],
            self.lr["critic"],
            self.lr["generator"],
            batches.src,
            idx,
            noise.z,
            noise.eps,
            noise.z_gen,
            batches.y,
            batches.y_gen,
            noise.aug,
        )
        out = self._iteration_fn(*args) if self.fuse_iteration else self._iteration(*args, fused=False)
        if self._copy_outputs and self.fuse_iteration:
            out = {key: v.clone() for key, v in out.items()}
        if self.ema_generator is not None:
            with torch.no_grad():
                self.flat_ema.data.lerp_(self.flat_g.data, 1 - self.ema_decay)
        return out

    def _iteration(self, d, g, state_d, state_g, lr_d, lr_g, src, idx, z, eps, z_gen, y, y_gen, aug, *, fused: bool):
        """One generator iteration: n_critic critic updates, then one generator update.

        fused: the whole iteration is one compiled graph (this function is what is compiled), else each piece is
        its own compiled graph, called from here eagerly. src: the dataset, or (a loader, a host stream) the
        (n_critic, B, ...) batches; idx: (n_critic, B) rows of src (of src[k] for gathered batches).
        y: (n_critic, B) the real batches' labels, y_gen: (B,) the generator update's (class-conditional), else
        None. aug: (2 n_critic + 1,) the augmentation seeds (config.augment), else None.
        """
        fakes_fn, critic_fn, gen_fn = (
            (self._fakes, self._critic_update, self._generator_update)
            if fused
            else (self._fakes_fn, self._critic_fn, self._gen_fn)
        )
        copy = self._copy_outputs and not fused  # CUDA graphs reuse output memory on the next replay
        n_critic, batch = z.shape[:2]
        if self.batch_calls:  # G is fixed during the critic updates: all their fakes from one call
            fakes = fakes_fn(g, z.reshape(n_critic * batch, -1), None if y is None else y.reshape(-1))
            fakes = fakes.reshape(n_critic, batch, *fakes.shape[1:])  # (n_critic, B, *shape)
        metrics = []
        for k in range(n_critic):
            y_k = None if y is None else y[k]
            fake = fakes[k] if self.batch_calls else fakes_fn(g, z[k], y_k)  # (B, *shape)
            m = critic_fn(
                d,
                state_d,
                lr_d,
                src[k] if self._gathered else src,
                idx[k],
                fake,
                None if eps is None else eps[k],
                y_k,
                None if aug is None else aug[2 * k : 2 * k + 2],
            )
            metrics.append({key: v.clone() for key, v in m.items()} if copy else m)
        out = {key: torch.stack([m[key] for m in metrics]).mean() for key in metrics[0]}
        loss_g = gen_fn(g, d, state_g, lr_g, z_gen, y_gen, None if aug is None else aug[-1])
        out["generator_loss"] = loss_g.clone() if copy else loss_g
        return out

    def _planned_steps(self, n: int) -> None:
        if self._fuse_auto and self.fuse_iteration and n < FUSE_ITERATION_MIN_STEPS:
            self.fuse_iteration = False  # a short run: the per-update graphs compile ~3x faster
        self._fuse_auto = False  # decided once, before anything compiles: a later fit keeps the same graphs

    def _fused_iteration(self, *args):
        return self._iteration(*args, fused=True)

    def _arange(self, n: int) -> torch.Tensor:
        if self._arange_cache is None or self._arange_cache.shape[0] != n:
            self._arange_cache = torch.arange(n, device=self.device)
        return self._arange_cache

    def sampling_generator(self) -> nn.Module:
        return self.ema_generator if self.ema_generator is not None else self.generator

    # ------------------------------------------------------------------ state (torch.optim-compatible format)
    def _optimizer_state(self) -> dict:
        """Optimizer state in torch.optim's state_dict format, so reference and fast checkpoints interchange."""
        out = self.groups.state_dict()
        if self.ema_generator is not None:
            out["ema_generator"] = self.flat_ema.data.detach().clone()
        return out

    def _load_optimizer_state(self, state: dict) -> None:
        self.groups.load_state_dict(state)
        if self.ema_generator is not None:
            with torch.no_grad():
                self.flat_ema.data.copy_(state.get("ema_generator", self.flat_g.data))
