"""What the GAN trainers (``fastwgan.Trainer``, ``fastwgan.ReferenceTrainer``) share on top of the engine
(``fastwgan.core.engine``): the models and their checks, the batch source, the step's noise, the fixed-noise previews,
sampling and scoring, and the checkpoint format. A trainer subclass supplies only ``_train_step`` (n_critic critic
updates and one generator update) and its optimizer state; so the reference and the fast trainer differ in nothing
else.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import rng
from ..core.config import TrainConfig
from ..core.engine import Engine, FitOptions, resolve_device
from ..core.images import as_float
from ..data.sources import LoaderSource, RealBatches, TensorSource
from .checks import check_gan_data, check_networks
from .conditioning import split_critic_output

METRICS = ("critic_loss", "w_estimate", "gp", "grad_norm", "generator_loss", "ac_loss")  # ac_loss: conditional runs


class TrainerBase(Engine):
    """Shared GAN trainer machinery. Public interface: fit, sample, critic_score, state_dict, load_state_dict,
    history, step."""

    name = "base"

    def __init__(self, generator: nn.Module, critic: nn.Module, config: TrainConfig, threads: int | str | None = None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a fastwgan.TrainConfig, got {type(config).__name__}")
        check_networks(config, {"generator": generator, "critic": critic}, critics=("critic",))
        device = resolve_device(config.device)
        super().__init__(config, device, seed=config.seed, batch_size=config.batch_size, threads=threads)
        self.generator = generator.to(self.device)
        self.critic = critic.to(self.device)
        self.metrics = METRICS if config.conditional else METRICS[:-1]
        self.images_per_step = config.batch_size * config.n_critic
        self._model_rng = rng.ModelRNG(config.seed + rng.MODEL_SEED_OFFSET, self.device)  # dropout and the like
        self._show = None  # the previews' fixed noise, labels, real points and row length (set by fit)

    # ------------------------------------------------------------------ the engine's hooks
    def _networks(self) -> dict[str, nn.Module]:
        return {"critic": self.critic, "generator": self.generator}

    def _draw(self, source) -> rng.StepNoise:
        cfg = self.config
        return rng.draw_step(
            self._gen,
            source.n,
            cfg.n_critic,
            cfg.batch_size,
            cfg.latent_dim,
            cfg.uses_penalty,
            cfg.conditional,
            bool(cfg.augment),
        ).shard(self.rank, self.world_size)

    def _step(self, source, noise: rng.StepNoise) -> dict[str, torch.Tensor]:
        """One generator iteration on the real batches ``source`` (``batch_source``) hands this step, at the
        thread count of the trainer's policy (``fastwgan.core.threads``), with the run's own model RNG
        (``rng.ModelRNG``) in place of torch's global one."""
        batches = source.next(noise)
        with self._model_rng:
            return self.threads.run(lambda: self._train_step(batches, noise))

    def _run_meta(self, steps: int) -> tuple[dict, dict | None]:
        # What load_trainer and the run-reading commands need, whoever called fit: the model spec of bundled
        # models (fastwgan.gan.models sets G.spec; user modules have none: load_trainer then takes the modules) and
        # the run's target, which a resume continues to.
        meta, _ = super()._run_meta(steps)
        spec = getattr(self.generator, "spec", None)
        return meta, None if spec is None else {"model": dict(spec)}

    def _postfix(self, record: dict) -> dict:
        return {k: f"{record[k]:.3g}" for k in ("critic_loss", "w_estimate", "generator_loss")}

    def _preview(self, writer, source) -> None:
        fixed_z, fixed_y, real_show, per_row = self._show
        writer.samples(
            self.step,
            self.sample_from(fixed_z, y=fixed_y),
            real=real_show,
            nrow=per_row if fixed_y is not None else None,
        )

    def _preview_setup(self, data: torch.Tensor) -> None:
        cfg = self.config
        n_show = 1000 if data.dim() == 2 else 64  # 2-D toys: a scatter of 1000 points; images: an 8x8 grid
        per_row = 8
        if cfg.conditional:  # one row of 8 per class
            n_show = per_row * cfg.num_classes if data.dim() > 2 else n_show
        fixed_z = torch.randn(n_show, cfg.latent_dim, generator=rng.make_generator(cfg.seed + 2))
        fixed_y = None if not cfg.conditional else torch.arange(n_show) * cfg.num_classes // n_show
        self._show = (fixed_z, fixed_y, data[:5000] if data.dim() == 2 else None, per_row)

    # ------------------------------------------------------------------ subclass hooks
    def _train_step(self, batches: RealBatches, noise: rng.StepNoise) -> dict[str, torch.Tensor]:
        """n_critic critic updates then one generator update. Returns 0-d metric tensors (not synced)."""
        raise NotImplementedError

    def _tensor_source(self, data: torch.Tensor, labels: torch.Tensor | None) -> TensorSource:
        """The source of an in-memory dataset (the reference keeps it on the CPU; the fast trainer on the device,
        or streamed from the host when it is too large)."""
        return TensorSource(data, labels)

    # ------------------------------------------------------------------ data
    def check_data(self, data, labels=None) -> torch.Tensor:
        """``fastwgan.gan.checks.check_gan_data`` of this trainer: the data's type and values, the latent size
        against the generator's input, the generator's output against the data's sample shape, the critic's
        output, the labels of a class-conditional run. Returns the data as a tensor."""
        return check_gan_data(self, data, labels)

    def batch_source(self, data, labels=None):
        """The batch source (``fastwgan.data.sources``) ``fit`` trains from, checked against the models.

        Args:
            data: a tensor or array (the whole training set), or an iterable of batches (a DataLoader).
            labels: with a tensor, a class-conditional run's (N,) class ids; a loader yields its own.
        Returns:
            a TensorSource / HostStreamSource / LoaderSource (a loader resumes at ``data_position``).
        """
        if isinstance(data, (torch.Tensor, np.ndarray)):
            data = self.check_data(data, labels)
            y = None if labels is None else torch.as_tensor(labels).long()
            return self._tensor_source(data, y)
        if labels is not None:
            raise ValueError(
                "labels: a loader yields its labels with its batches, as (x, y); fit(loader) takes no labels="
            )
        cfg = self.config
        source = LoaderSource(
            data,
            batch_size=cfg.batch_size // self.world_size,
            n_critic=cfg.n_critic,
            device=self.device,
            num_classes=cfg.num_classes,
            seed=cfg.seed,
            world_size=self.world_size,
            rank=self.rank,
            position=self.data_position or (0, 0),
        )
        x, y = source.first()
        self.check_data(x, y)
        return source

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data,
        steps: int | None = None,
        *,
        labels=None,
        add_steps: int | None = None,
        options: FitOptions | None = None,
        **kw,
    ) -> "TrainerBase":
        """Train until the run has made ``steps`` generator updates in total, or ``add_steps`` more than now.

        ``steps`` is the run's total, so a resumed or already-trained trainer continues to it: ``fit(x, 100)``
        twice trains 100 steps, once (the second call warns that it has nothing to do). ``fit(x, add_steps=100)``
        trains 100 more each time it is called. Give exactly one of the two.

        Args:
            data: the training set, (N, C, H, W) uint8 images or an (N, ...) float tensor (e.g. 2-D toy points),
                batches drawn by the seeded stream; or a ``torch.utils.data.DataLoader`` (any iterable of batches
                ``x`` or ``(x, y)``) of batch size ``TrainConfig.batch_size`` (per rank under torchrun, with a
                DistributedSampler): each step takes n_critic batches from it, a short batch is skipped with a note,
                and a resumed run skips to where it stopped (``fastwgan.data.sources``). Float batches are used as
                they are (fastwgan's images are in [-1, 1]); uint8 batches are normalised.
            steps: total generator updates of the run (each preceded by n_critic critic updates).
            labels: class-conditional training (``TrainConfig.num_classes``): (N,) int class ids of a tensor
                ``data`` (a loader yields ``(x, y)`` batches instead).
            add_steps: generator updates to make from the current step (instead of ``steps``).
            options, **kw: how the run goes and what it writes: ``fastwgan.core.engine.FitOptions`` (out, overwrite,
                log_every, sample_every, checkpoint_every, keep_checkpoints, progress, run_config, callbacks,
                evaluators, on_nonfinite, handle_signals), as an object, as keywords, or both (keywords win).
        Returns:
            self.
        """
        opts = FitOptions.of(options, **kw)
        source = self.batch_source(data, labels)
        try:
            self._preview_setup(source.first()[0])  # the dataset, or a loader's first batch
        except BaseException:
            source.close()
            raise
        return self.run(source, steps, add_steps, opts)

    # ------------------------------------------------------------------ inference
    def sampling_generator(self) -> nn.Module:
        """The network ``sample`` uses (the fast trainer's EMA copy when enabled)."""
        return self.generator

    @torch.no_grad()
    def sample_from(self, z: torch.Tensor, batch_size: int = 1024, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (floats in [-1, 1]) from the given noise ``z`` (and class ids ``y``), in eval mode, in batches."""
        G = self.sampling_generator()
        was = G.training
        G.eval()
        dev = self.device
        try:
            chunks = [
                (
                    G(z[i : i + batch_size].to(dev))
                    if y is None
                    else G(z[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev))
                )
                .float()
                .cpu()
                for i in range(0, z.shape[0], batch_size)
            ]
        finally:
            G.train(was)
        return torch.cat(chunks)

    def sample_noise_generator(self, seed: int | None = None) -> torch.Generator:
        """The noise stream of ``sample``: seeded with ``seed``, by default ``config.seed + 1`` (never the training
        stream)."""
        return rng.make_generator(self.config.seed + rng.SAMPLE_SEED_OFFSET if seed is None else seed)

    def sample_labels(self, n: int, labels=None) -> torch.Tensor | None:
        """The class ids ``sample`` conditions on: None for an unconditional trainer; for a conditional one
        ``labels`` as an (n,) int64 tensor: an int (every sample of that class), a sequence / tensor of n ids, or
        None (balanced: sample i gets class i % num_classes)."""
        k = self.config.num_classes
        if k is None:
            if labels is not None:
                raise ValueError(
                    "sample: labels given, but this trainer is unconditional (TrainConfig.num_classes is None)"
                )
            return None
        if labels is None:
            return torch.arange(n) % k
        y = torch.full((n,), labels, dtype=torch.long) if isinstance(labels, int) else torch.as_tensor(labels)
        from ..data import check_labels

        check_labels(y, n, num_classes=k, what="sample: labels")
        return y.long()

    def sample(self, n: int, seed: int | None = None, batch_size: int = 1024, labels=None) -> torch.Tensor:
        """Draw ``n`` samples from the generator (eval mode) with its own noise stream.

        Args:
            n: number of samples.
            seed: noise seed (default ``config.seed + 1``; the training stream is never touched).
            batch_size: generator batch size.
            labels: class-conditional trainers: the classes to draw (see ``sample_labels``; default balanced).
        Returns:
            (n, *data_shape) float CPU tensor: images in [-1, 1] (``fastwgan.data.to_uint8`` converts), or
            coordinates for the 2-D toys.
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"sample: n must be a non-negative integer, got {n!r}")
        y = self.sample_labels(n, labels)
        z = torch.randn(n, self.config.latent_dim, generator=self.sample_noise_generator(seed))
        if n == 0:
            y0 = None if y is None else torch.zeros(1, dtype=torch.long)
            return self.sample_from(torch.zeros(1, self.config.latent_dim), y=y0)[:0]
        return self.sample_from(z, batch_size, y=y)

    @torch.no_grad()
    def critic_score(self, x, batch_size: int = 1024, labels=None) -> torch.Tensor:
        """The critic's score D(x) per sample (higher = judged more like the training data).

        Args:
            x: (N, ...) uint8 images (normalised as in training) or float samples, tensor or numpy array.
            labels: class-conditional trainers: (N,) class ids (or one int for all), scored as D(x, y).
        Returns:
            (N,) float CPU tensor (a critic with a classifier head: its score, not the logits).
        """
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if self.config.conditional and labels is None:
            raise ValueError(
                "critic_score: this trainer is class-conditional: give labels= (the class to score each sample against)"
            )
        if not self.config.conditional and labels is not None:
            raise ValueError("critic_score: labels given, but this trainer is unconditional")
        y = self.sample_labels(x.shape[0], labels)  # None, or (N,) checked against num_classes
        was = self.critic.training
        self.critic.eval()
        dev = self.device
        try:
            out = []
            for i in range(0, x.shape[0], batch_size):
                xb = as_float(x[i : i + batch_size]).to(dev)
                s = self.critic(xb) if y is None else self.critic(xb, y[i : i + batch_size].to(dev))
                out.append(split_critic_output(s)[0].reshape(-1).float().cpu())
        finally:
            self.critic.train(was)
        return torch.cat(out) if out else torch.zeros(0)

    # ------------------------------------------------------------------ state
    def state_dict(self, with_history: bool = True) -> dict:
        """Everything needed to continue exactly: both networks, optimizer states, step, the noise generator's
        and the model RNG states (``rng.ModelRNG``), history and config (tensors and JSON-able values only; see
        fastwgan.core.checkpoint)."""
        return {
            **self.engine_state(with_history),
            "generator": dict(self.generator.state_dict()),
            "critic": dict(self.critic.state_dict()),
            "optimizers": self._optimizer_state(),
            "rng_model": self._model_rng.state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` (of either trainer). Refuses a state whose config differs (device aside)."""
        for key in ("generator", "critic", "optimizers", "rng", "step"):
            if key not in state:
                raise ValueError(f"load_state_dict: state has no {key!r} entry (not a fastwgan trainer state)")
        self.check_state_config(state)
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
        except RuntimeError as e:
            raise ValueError(f"load_state_dict: the checkpoint does not match these models: {e}") from None
        self._load_optimizer_state(state["optimizers"])
        if "rng_model" in state:
            self._model_rng.load(state["rng_model"])
        elif "rng_torch" in state:  # a checkpoint from before the model RNG: the global state it saved is the same
            saved = {"cpu": state["rng_torch"], **({"cuda": state["rng_cuda"]} if "rng_cuda" in state else {})}
            self._model_rng.load(saved)
        self.load_engine_state(state)
