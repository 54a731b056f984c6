"""What the two-domain trainers share (``fastwgan.uses.translate``, ``fastwgan.uses.adapt``) on top of the engine
(``fastwgan.core.engine``: run folder, log ticks, NaN guard and skip, signals, torchrun, threads, checkpoints): the
checks of a source and a target set, their batch sources (tensors, or DataLoaders), and the checkpoint format. A
subclass supplies its draw, its step, its networks and its optimizer state, as the GAN trainers do.

Batches. With tensors, each step's rows are drawn by the seeded stream and gathered on the device inside the
step. With DataLoaders (one per domain; a labelled source yields ``(x, y)``), each step takes as many batches from
each loader as its draw has batches of rows for that domain, and the draw's rows are rewritten to point into them:
the step functions cannot tell the difference (``DomainLoaders``). A resumed loader run skips to where it stopped
(``fastwgan.data.sources.LoaderSource``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..core.config import TrainConfig
from ..core.engine import Engine, resolve_device
from ..core.images import DataError, check_samples
from ..data.sources import LoaderSource


def check_domain(x, what: str, *, channels: int | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A domain's images as a uint8 (N, C, H, W) tensor, N >= 1, or a one-line error naming ``what``.

    Args:
        x: a tensor or array of uint8 images (floats in [-1, 1] are taken too, finite only).
        channels: the channel count the networks expect (None: any).
        size: the (H, W) the networks expect (None: any).
    """
    x = check_samples(x, what, images=True)
    if channels is not None and x.shape[1] != channels:
        raise DataError(f"{what}: images have {x.shape[1]} channels but the networks take {channels}")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise DataError(f"{what}: images are {x.shape[2]}x{x.shape[3]} but the networks take {size[0]}x{size[1]}")
    return x


def need_labels(labels, trains: str) -> None:
    """The one-line error when a method that trains on labelled source data gets none (``trains``: what it trains,
    e.g. "adaptation trains the classifier")."""
    if labels is None:
        raise ValueError(f"labels: {trains} on labelled source data: give labels= (one class id per source image)")


def check_flags(**flags) -> None:
    """The one-line error for a switch (e.g. ``shift``, ``photometric``) given as anything but True or False."""
    for name, v in flags.items():
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be True or False, got {v!r}")


def check_logits(logits: torch.Tensor, what: str = "classifier") -> None:
    """A probe batch of 2 must give logits (2, K)."""
    if logits.dim() != 2 or logits.shape[0] != 2:
        raise ValueError(f"{what}: returns shape {tuple(logits.shape)}; it must return logits (B, K)")


def check_scores(score: torch.Tensor, inputs: str) -> None:
    """A critic's probe batch of 2 (``inputs``: "images", "feature vectors") must give one score each."""
    if tuple(score.shape) not in ((2,), (2, 1)):
        raise ValueError(f"critic: returns shape {tuple(score.shape)} for 2 {inputs}; a critic returns one score each")


def shift_images(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Each image moved by its own (dy, dx) in {-1, 0, 1}^2, the vacated border filled with -1 (background): the
    1-pixel random shifts of ``fastwgan.eval.classifier.train_classifier``, drawn per image (the augmentation
    of the PixelDA and feature-alignment steps). out[b, :, i, j] =
    x[b, :, i - dy_b, j - dx_b]. x (B, C, H, W), s (B, 2) int64 (dy, dx)."""
    b, _, h, w = x.shape
    xp = F.pad(x, (1, 1, 1, 1), value=-1.0)  # (B, C, H + 2, W + 2)
    rows = torch.arange(h, device=x.device)[None] + 1 - s[:, :1]  # (B, H)
    cols = torch.arange(w, device=x.device)[None] + 1 - s[:, 1:]  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    return xp[bi, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def as_function(module: nn.Module, params: dict, prefix: str | None = None):
    """``module`` as a function of its inputs (x, or several) with the parameters ``params`` ({name: tensor}, views
    of a flat buffer; with ``prefix``, the entries of a ModuleDict's dict under ``prefix.``, the prefix removed) and
    its own buffers, passed explicitly (torch.func refuses in-place updates of tensors a transformed function merely
    captures)."""
    if prefix is not None:
        n = len(prefix) + 1
        params = {k[n:]: v for k, v in params.items() if k.startswith(prefix + ".")}
    bufs = dict(module.named_buffers())
    return lambda *x: functional_call(module, {**params, **bufs}, x)


def critic_scores(d):
    """A critic's output (B,) or (B, 1) as (B,) fp32 (the two-domain losses take scores this way)."""
    return lambda x: d(x).reshape(-1).float()


def owned(out, copy: bool):
    """A compiled update's outputs as this trainer's own: cloned when ``copy`` (CUDA graphs reuse their output
    memory on the next replay, ``compile_mode="reduce-overhead"``)."""
    if not copy:
        return out
    if isinstance(out, dict):
        return {k: v.clone() for k, v in out.items()}
    return type(out)(v.clone() for v in out)


class TensorDomains:
    """The domains as device tensors (the labels of a labelled source among them); the stream's rows index them."""

    position = None

    def __init__(self, tensors: tuple):
        self.tensors = tensors
        self.sizes = tuple(len(t) for t in tensors)

    def first(self) -> tuple:
        return self.tensors

    def next(self, draw: dict) -> tuple[tuple, dict]:
        return self.tensors, draw

    def prefetch(self) -> None:
        pass

    def close(self) -> None:
        pass


class DomainLoaders:
    """One DataLoader per image domain (module docstring). ``rows``: for each loader, the draw keys whose rows it
    supplies (in order); ``labelled``: the index of the loader whose ``(x, y)`` batches carry labels (its labels
    follow its images in the step's domain tuple)."""

    def __init__(self, sources: list[LoaderSource], rows: list[tuple[str, ...]], labelled: int | None = None):
        self.sources, self.rows, self.labelled = sources, rows, labelled
        # one entry per tensor of the step's domain tuple (a labelled domain's labels too); the stream's rows are
        # rewritten into the loaders' batches, so any index is 0
        self.sizes = (1,) * (len(sources) + (labelled is not None))

    def first(self) -> tuple:
        out = []
        for i, s in enumerate(self.sources):
            x, y = s.first()
            out += [x, y] if i == self.labelled else [x]
        return tuple(out)

    def next(self, draw: dict) -> tuple[tuple, dict]:
        draw, out = dict(draw), []
        for i, (s, keys) in enumerate(zip(self.sources, self.rows)):
            b = s.next(None)  # (k, B, ...) batches, their labels (k, B)
            x = b.src.reshape(-1, *b.src.shape[2:])  # (k B, ...)
            offset = 0
            for key in keys:  # the key's rows become positions in the stacked batches
                n = draw[key].numel()
                draw[key] = torch.arange(offset, offset + n, device=x.device).reshape(draw[key].shape)
                offset += n
            out += [x, b.y.reshape(-1)] if i == self.labelled else [x]
        return tuple(out), draw

    @property
    def position(self):
        return [s.position for s in self.sources]

    def prefetch(self) -> None:
        for s in self.sources:
            s.prefetch()

    def close(self) -> None:
        for s in self.sources:
            s.close()


def is_loader(x) -> bool:
    """True for an iterable of batches (a DataLoader), False for a tensor or an array."""
    import numpy as np

    return not isinstance(x, (torch.Tensor, np.ndarray))


def domain_source(engine: Engine, data: tuple, check, rows, labelled=None, batches=None, num_classes=None):
    """The batch source of a trainer on image domains (module docstring).

    Args:
        engine: the trainer (device, batch size, torchrun rank, loader positions to resume from).
        data: the image domains, each a tensor or a DataLoader (a labelled domain's tensor labels after it).
        check: ``check(*first batches)`` raises on bad input and returns the tensors to train on.
        rows: per image domain, the draw keys of its rows; labelled: the image domain whose loader yields (x, y).
        batches: ``batches(i)``: the batches of domain i one step trains on (default 1).
        num_classes: the labelled loader's classes when known (its labels are checked against them).
    Returns:
        a ``TensorDomains`` or a ``DomainLoaders`` (loaders: batch size ``config.batch_size`` per rank).
    """
    images = [d for i, d in enumerate(data) if not (labelled is not None and i == labelled + 1)]
    loaders = [is_loader(d) for d in images]
    if not any(loaders):
        return TensorDomains(tuple(t.to(engine.device) for t in check(*data)))
    if not all(loaders):
        raise ValueError("source and target: give both as tensors or both as DataLoaders")
    if labelled is not None and data[labelled + 1] is not None:
        raise ValueError("labels: a loader yields its labels with its batches, as (x, y); give no labels=")
    cfg, pos = engine.config, engine.data_position or [(0, 0)] * len(images)
    sources = []
    for i, loader in enumerate(images):
        sources.append(
            LoaderSource(
                loader,
                batch_size=cfg.batch_size // engine.world_size,
                n_critic=batches(i) if batches else 1,
                device=engine.device,
                num_classes=(num_classes or 0) if i == labelled else None,  # 0: read y, check it later
                seed=cfg.seed + i,
                world_size=engine.world_size,
                rank=engine.rank,
                position=tuple(pos[i]),
            )
        )
    src = DomainLoaders(sources, list(rows), labelled)
    try:
        check(*src.first())
    except BaseException:
        src.close()
        raise
    return src


class DomainTrainerBase(Engine):
    """Shared machinery of the two-domain trainers. Public: fit (the subclasses'), history, step, state_dict,
    load_state_dict, and the engine's (threads, world_size, skipped_steps, stopped_by)."""

    name = "base"
    kind = "base"  # "translation" | "adaptation": what a checkpoint holds
    plot_panels: tuple = ()  # plots/losses.png: (title, ((history key, label), ...)) per panel (fastwgan.core.plots)
    rows: tuple[tuple[str, ...], ...] = ()  # per image domain, the draw keys of its rows (DomainLoaders)
    labelled: int | None = None  # the image domain whose loader yields (x, y)

    def __init__(self, config: TrainConfig, threads=None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a fastwgan.TrainConfig, got {type(config).__name__}")
        if config.conditional or config.augment:
            raise ValueError(
                "config: num_classes and augment are GAN-trainer settings; a two-domain trainer takes neither"
            )
        if config.dtype != "float32":
            raise ValueError(f"TrainConfig.dtype: the two-domain trainers train in float32, got {config.dtype!r}")
        super().__init__(
            config, resolve_device(config.device), seed=config.seed, batch_size=config.batch_size, threads=threads
        )

    # ------------------------------------------------------------------ subclass hooks
    def _draw_rows(self, sizes: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """One step's random numbers (CPU, global batch), from ``self._gen`` in the subclass's documented order."""
        raise NotImplementedError

    def _train_step(self, domains: tuple, draw: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def setup_fast(self, impl, compile: bool, compile_mode, threads, groups: dict) -> None:
        """What a fast two-domain trainer sets up before its compiled updates: the CPU thread policy, the op
        implementations (``fastwgan.ops.dispatch.resolve_impl``), the flat parameter groups and the fused optimizer
        (``FlatGroups``; ``self.optim``, ``self.opt_state``, ``self.lr`` by group), the critic objective's pieces
        (``objectives.compiled_calculus``) and whether compiled outputs must be copied (CUDA graphs reuse their
        memory)."""
        from ..core.optimizers import FlatGroups
        from ..core.threads import ThreadPolicy
        from ..gan import objectives
        from ..ops.dispatch import resolve_impl

        self.threads = ThreadPolicy(threads, self.device)  # CPU thread count (fastwgan.core.threads)
        self.impl = resolve_impl(impl, self.device)
        self.groups = FlatGroups.for_trainer(self, groups)
        self.optim, self.opt_state, self.lr = self.groups.optim, self.groups.state, self.groups.lr
        self.calculus = objectives.compiled_calculus(self.impl["interpolate"], self.impl["penalty"])
        self.compiled = compile
        self._copy_outputs = compile and compile_mode == "reduce-overhead"

    # ------------------------------------------------------------------ the engine's hooks
    #: the draw's entries of per-sample vectors, (..., B, k): their batch dim is -2, the others' the last
    vector_draws: tuple[str, ...] = ()

    def _draw(self, source) -> dict[str, torch.Tensor]:
        rows = self._draw_rows(source.sizes)
        return {k: self.shard(v, -2 if k in self.vector_draws else -1) for k, v in rows.items()}

    def _step(self, source, draw) -> dict[str, torch.Tensor]:
        domains, draw = source.next(draw)
        return self.threads.run(lambda: self._train_step(domains, draw))

    # ------------------------------------------------------------------ data
    def domain_source(self, data: tuple, check, num_classes: int | None = None):
        """``domain_source`` for this trainer's rows (its labelled domain, its batches per step)."""
        return domain_source(self, data, check, self.rows, self.labelled, self.batches_per_step, num_classes)

    def batches_per_step(self, domain: int) -> int:
        """How many batches of image domain ``domain`` one step trains on (its draw keys' rows / the batch)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self, with_history: bool = True) -> dict:
        """Everything needed to continue exactly: the networks, optimizer states, step, the stream, history."""
        return {
            **self.engine_state(with_history),
            "networks": {k: dict(m.state_dict()) for k, m in self._networks().items()},
            "optimizers": self._optimizer_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` of either twin; refuses another kind of checkpoint or another config."""
        if state.get("kind") != self.kind:
            raise ValueError(f"load_state_dict: not a {self.kind} checkpoint (kind {state.get('kind')!r})")
        self.check_state_config(state)
        nets = self._networks()
        if set(state["networks"]) != set(nets):
            raise ValueError(
                f"load_state_dict: the checkpoint holds networks {sorted(state['networks'])}, this "
                f"trainer {sorted(nets)}"
            )
        try:
            for k, m in nets.items():
                m.load_state_dict(state["networks"][k])
        except RuntimeError as e:
            raise ValueError(f"load_state_dict: the checkpoint does not match these networks: {e}") from None
        self._load_optimizer_state(state["optimizers"])
        self.load_engine_state(state)
