"""Where a training step's real batches come from: one seam, three sources (DESIGN section 7).

Each generator step asks its source for the n_critic real batches its critic updates train on (with their class
labels in a class-conditional run), and nothing else; trainers, conditioning and augmentation do not care which
source feeds them.

* ``TensorSource``: the dataset as one tensor in memory (on the device for the fast trainer). The rows of each
  batch are the seeded stream's ``idx[k]`` (``fastwgan.core.rng``): uniform sampling with replacement, the papers'
  setting. The fast trainer gathers and normalises them inside its compiled step.
* ``HostStreamSource``: a tensor dataset too large for the device (``Trainer(device_data_bytes=)``): the same rows,
  gathered on the host and sent to the device in one asynchronous copy per step.
* ``LoaderSource``: a ``torch.utils.data.DataLoader`` or any iterable of batches ``x`` or ``(x, y)``. The loader
  chooses the rows (its sampler, its workers, its transforms); the stream draws no indices, only z and eps. Each
  step takes n_critic consecutive full batches; epochs follow one another without a pause. Batches are fetched
  one step ahead and, on CUDA, copied from pinned memory on a side stream while the current step computes.

Reproducibility of a loader run: an epoch's iterator is opened with torch's global generator seeded from
(config.seed, epoch) (``epoch_seed``), so a DataLoader without a ``generator=`` of its own shuffles and seeds its
workers as a function of the run's seed and the epoch alone; a ``DistributedSampler`` gets ``set_epoch``. A
checkpoint records the loader's position (epoch, batches drawn in it), and a resumed run reopens that epoch and
skips that many batches. So a loader run and its stop/resume twin see the same batches, and end bitwise equal,
whenever the loader's order depends on the epoch alone: no shuffling, shuffling by this seeding, or a sampler with
``set_epoch``. A loader with its own ``generator=`` advances it across epochs, which a resumed process cannot
replay: its resumed order differs (training is still correct, not bitwise equal).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..core import rng


@dataclass
class RealBatches:
    """One step's real data. Either the dataset with the rows to take, or the batches themselves."""

    src: torch.Tensor  # the dataset (N, ...) when idx is set, else the step's batches (n_critic, B, ...)
    idx: torch.Tensor | None  # (n_critic, B) rows of src, on src's device; None: src holds the batches
    y: torch.Tensor | None = None  # (n_critic, B) class ids of the real batches (class-conditional)
    y_gen: torch.Tensor | None = None  # (B,) class ids the generator update conditions on

    def real(self, k: int) -> torch.Tensor:
        """The k-th critic update's real batch (B, ...), as stored (uint8 or float)."""
        return self.src[k] if self.idx is None else self.src[self.idx[k]]


class TensorSource:
    """An in-memory dataset; rows from the seeded stream's indices (module docstring)."""

    draws_indices = True  # the stream draws idx[k] (and gen_idx) for this source
    position = None  # nothing to restore on resume: the stream's state is the position

    def __init__(self, data: torch.Tensor, labels: torch.Tensor | None = None):
        self.data, self.labels = data, labels  # (N, ...) and (N,) on the device where rows are gathered
        self.n = data.shape[0]

    def first(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of data (here: all of it) to check the models against and to draw previews from."""
        return self.data, self.labels

    def next(self, noise: rng.StepNoise) -> RealBatches:
        idx = noise.idx.to(self.data.device, non_blocking=True)  # (n_critic, B)
        return RealBatches(self.data, idx, *self._labels_of(idx, noise))

    def _labels_of(self, idx: torch.Tensor, noise: rng.StepNoise):
        if self.labels is None:
            return None, None
        return self.labels[idx.to(self.labels.device)], self.labels[noise.gen_idx.to(self.labels.device)]

    def prefetch(self) -> None:
        """Start fetching the next step's batches (loaders); called after each step is launched."""

    def close(self) -> None:
        """Release workers and buffers."""


class HostStreamSource(TensorSource):
    """A tensor dataset kept in (pinned) host memory: each step's rows are gathered on the host and sent in one
    asynchronous copy (the fast trainer's path for datasets larger than its device budget)."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor | None, device: torch.device):
        data = data.contiguous()
        super().__init__(data.pin_memory() if device.type == "cuda" else data, labels)
        self.device = device

    def next(self, noise: rng.StepNoise) -> RealBatches:
        idx = noise.idx  # (n_critic, B) on the host
        batches = self.data[idx.reshape(-1)]  # (n_critic * B, ...) on the host
        if self.device.type == "cuda":
            batches = batches.pin_memory()
        batches = batches.to(self.device, non_blocking=True).reshape(*idx.shape, *self.data.shape[1:])
        return RealBatches(batches, None, *self._labels_of(idx, noise))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed torch's global generator gets while a loader's epoch ``epoch`` is opened (module docstring)."""
    digest = hashlib.blake2b(f"fastwgan-loader:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class LoaderSource:
    """A DataLoader or any iterable of batches (module docstring).

    Args:
        loader: yields ``x`` (B, ...) or ``(x, y, ...)``; x a tensor or array (uint8 images or floats as the models
            take them), y (B,) class ids (read only in a class-conditional run).
        batch_size: the samples per batch this process trains on (the config's batch over the world size).
        n_critic: batches per step.
        device: where the batches go.
        num_classes: class-conditional runs: the labels are checked against it; None ignores any labels.
        seed: the run's seed (``epoch_seed``).
        world_size, rank: under torchrun the loader must shard the data (a DistributedSampler).
        position: (epoch, batches drawn in it) to resume from.
    """

    draws_indices = False
    n = None

    def __init__(
        self,
        loader: Iterable,
        *,
        batch_size: int,
        n_critic: int,
        device: torch.device,
        num_classes: int | None,
        seed: int,
        world_size: int = 1,
        rank: int = 0,
        position: tuple[int, int] = (0, 0),
    ):
        if not isinstance(loader, Iterable) or isinstance(loader, (str, bytes, dict)):
            raise TypeError(
                f"data must be a tensor, a numpy array or an iterable of batches (a DataLoader), got "
                f"{type(loader).__name__}"
            )
        self.loader, self.batch_size, self.n_critic, self.device = loader, batch_size, n_critic, device
        self.num_classes, self.seed = num_classes, seed
        loader_bs = getattr(loader, "batch_size", None)
        if isinstance(loader, torch.utils.data.DataLoader) and loader_bs is not None and loader_bs != batch_size:
            per_rank = f" per rank ({world_size} ranks)" if world_size > 1 else ""
            raise ValueError(
                f"data: the DataLoader's batch_size is {loader_bs} but the run trains on batches of "
                f"{batch_size}{per_rank} (TrainConfig.batch_size); build one of them to match the other"
            )
        if world_size > 1:
            _check_sharded(loader, world_size, rank)
        self.epoch, self.drawn = position  # the epoch being read and the batches drawn from it so far
        self.position = tuple(position)  # of the batches handed to the last step (what a checkpoint records)
        self._it = None
        self._short_noted = False
        self._ahead: tuple | None = None  # the next step's batches, on their way to the device
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._open(skip=self.drawn)

    # ------------------------------------------------------------------ reading the loader
    def _open(self, skip: int = 0) -> None:
        sampler = getattr(self.loader, "sampler", None)
        batch_sampler = getattr(self.loader, "batch_sampler", None)
        for s in (sampler, getattr(batch_sampler, "sampler", None)):
            if hasattr(s, "set_epoch"):
                s.set_epoch(self.epoch)
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is put back after
            torch.default_generator.manual_seed(epoch_seed(self.seed, self.epoch))
            self._it = iter(self.loader)
            # a sampler draws its shuffling seed on its first item: take it inside the seeded block
            self._peeked, self._has_peek = next(self._it, _END), True
        self.drawn, self._full = 0, 0
        for _ in range(skip):
            if self._raw() is _END:
                raise ValueError(
                    f"data: cannot resume the loader at epoch {self.epoch}, batch {skip}: that epoch "
                    f"has only {self.drawn} batches now (did the dataset change?)"
                )
        self._full = skip  # the resumed epoch had full batches before

    def _raw(self):
        if self._has_peek:
            b, self._has_peek, self._peeked = self._peeked, False, None
        else:
            b = next(self._it, _END)
        if b is not _END:
            self.drawn += 1
        return b

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next full batch (x, y), moving on to the next epoch at the end of one."""
        while True:
            b = self._raw()
            if b is _END:
                if self.drawn == 0:
                    raise ValueError(
                        "data: the loader yields no batches"
                        if self.epoch == 0
                        else f"data: the iterable ended after {self.epoch} pass(es) and yields nothing when "
                        "iterated again (a generator?); give a DataLoader or another re-iterable"
                    )
                if self._full == 0:
                    raise ValueError(
                        f"data: a whole pass over the loader gave no batch of {self.batch_size} samples "
                        "(TrainConfig.batch_size); build the loader with that batch size"
                    )
                self.epoch += 1
                self._open()
                continue
            x, y = self._split(b)
            if x.shape[0] == self.batch_size:
                self._full += 1
                return x, y
            if x.shape[0] > self.batch_size:
                raise ValueError(
                    f"data: the loader yields a batch of {x.shape[0]} samples but the run trains on "
                    f"batches of {self.batch_size} (TrainConfig.batch_size)"
                )
            if not self._short_noted:  # skipped, never a recompile for a new shape
                _note(
                    f"data: skipping a short batch of {x.shape[0]} samples (epoch {self.epoch}); every step "
                    f"trains on full batches of {self.batch_size}: build the DataLoader with drop_last=True to "
                    "silence this note"
                )
                self._short_noted = True

    def _split(self, b) -> tuple[torch.Tensor, torch.Tensor | None]:
        where = f"data: batch {self.drawn - 1} of epoch {self.epoch}"
        y = None
        if isinstance(b, (tuple, list)):
            if not b:
                raise ValueError(f"{where} is empty")
            x = b[0]
            if self.num_classes is not None:
                if len(b) < 2:
                    raise ValueError(f"{where}: a class-conditional run needs (x, y) batches, got one item")
                y = b[1]
        else:
            x = b
            if self.num_classes is not None:
                raise ValueError(f"{where}: a class-conditional run needs (x, y) batches, got a {type(b).__name__}")
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{where}: expected a tensor of images, got {type(x).__name__}")
        if x.dim() < 2 or (x.dtype != torch.uint8 and not x.is_floating_point()):
            raise ValueError(
                f"{where}: expected (B, ...) uint8 images or floats, got {x.dtype} of shape {tuple(x.shape)}"
            )
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise ValueError(f"{where}: contains NaN or inf values")
        if y is not None:
            from .labels import check_labels

            y = check_labels(y, x.shape[0], num_classes=self.num_classes or None, what=where)
        return x, y

    # ------------------------------------------------------------------ the source interface
    def first(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first full batch of the next step (for the model checks and previews)."""
        if self._ahead is None:
            self.prefetch()
        return self._ahead[3], self._ahead[4]

    def prefetch(self) -> None:
        if self._ahead is not None:
            return
        xs, ys = zip(*(self._batch() for _ in range(self.n_critic)))
        position = (self.epoch, self.drawn)
        cuda = self.device.type == "cuda"
        x = torch.empty((self.n_critic, *xs[0].shape), dtype=xs[0].dtype, pin_memory=cuda)
        torch.stack(xs, out=x)  # (n_critic, B, ...) on the host
        y = None if ys[0] is None else torch.stack(ys)  # (n_critic, B)
        if cuda:  # copy on a side stream: overlaps the step the device is computing
            with torch.cuda.stream(self._stream):
                x_dev = x.to(self.device, non_blocking=True)
                y_dev = None if y is None else y.pin_memory().to(self.device, non_blocking=True)
        else:
            x_dev, y_dev = x, y
        self._ahead = (x_dev, y_dev, position, xs[0], ys[0])

    def next(self, noise: rng.StepNoise) -> RealBatches:
        if self._ahead is None:
            self.prefetch()
        x, y, self.position, _, _ = self._ahead
        self._ahead = None
        if self._stream is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self._stream)
            for t in (x, y):
                if t is not None:
                    t.record_stream(current)
        # the generator update conditions on the last real batch's labels (a draw from the data's label distribution)
        return RealBatches(x, None, y, None if y is None else y[-1])

    def close(self) -> None:
        self._ahead = None
        self._it = None


_END = object()


def _note(message: str) -> None:
    """A warning attributed to the first caller outside fastwgan (the user's ``fit`` call)."""
    import os
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # fastwgan/, above fastwgan/data/
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def _check_sharded(loader, world_size: int, rank: int) -> None:
    """Under torchrun each rank must read its own shard: a DataLoader with a DistributedSampler (or a sampler with
    the same num_replicas / rank attributes)."""
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None) or getattr(loader, "sampler", None)
    replicas, r = getattr(sampler, "num_replicas", None), getattr(sampler, "rank", None)
    if replicas is None:
        raise ValueError(
            f"data: under torchrun ({world_size} processes) each rank must read its own shard of the "
            "data: build the DataLoader with sampler=torch.utils.data.DistributedSampler(dataset)"
        )
    if (replicas, r) != (world_size, rank):
        raise ValueError(
            f"data: the loader's sampler shards for {replicas} replicas as rank {r}, but this is rank "
            f"{rank} of {world_size}"
        )
