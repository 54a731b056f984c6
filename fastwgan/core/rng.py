"""The trainers' random stream, in one documented order, so that every trainer draws the identical numbers.

One CPU ``torch.Generator`` seeded with ``config.seed`` drives everything random in training (model
initialisation is the caller's: seed ``torch.manual_seed`` before building the models). Per generator step,
in this order:

    for k in range(n_critic):
        idx[k]   = randint(0, N, (B,))          # real batch: indices into the dataset, with replacement
        z[k]     = randn(B, latent_dim)          # noise for the fake batch
        eps[k]   = rand(B)                       # one interpolation weight per sample (gp / lp losses only)
    z_gen        = randn(B, latent_dim)          # noise for the generator update
    gen_idx      = randint(0, N, (B,))           # class-conditional only: the generator update's labels are
                                                 # labels[gen_idx], the training labels' empirical distribution
    aug          = randint(0, 2^31, (2 n_critic + 1,))  # DiffAugment only (config.augment): one seed per
                                                 # augmentation call, real_0, fake_0, ..., real_k, fake_k, then the
                                                 # generator update's fakes (fastwgan.ops.augment)

A run fed by a DataLoader (``fastwgan.data.sources.LoaderSource``) draws no idx and no gen_idx: the loader chooses
the real batches, and the generator update takes the labels of the step's last real batch.

A class-conditional run's real labels come with the real batch (labels[idx[k]]), and the critic's fakes are
G(z[k], labels[idx[k]]): each fake has the class of the real sample it is interpolated with. All draws are fp32
(indices int64) on the CPU (so CPU and CUDA runs see the same numbers) and are moved to the device after.
``sample(n)`` uses its own generator (seeded from ``config.seed`` + 1 unless a seed is given), so sampling
never perturbs the training stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SAMPLE_SEED_OFFSET = 1
# Randomness inside the models (dropout and the like) comes from torch's global generator, which torch 2.13 seeds
# randomly in every process. A trainer keeps its own state for it, seeded from config.seed + MODEL_SEED_OFFSET,
# swaps it in around every training step and back out after (``ModelRNG``), so a run's dropout masks depend on
# its seed alone, a resumed run continues them exactly, and the caller's global RNG is left as it was.
MODEL_SEED_OFFSET = 3
AUG_RANK_STRIDE = 0x61C88647  # torchrun: rank r augments with seed + r * stride (mod 2^31)


@dataclass
class StepNoise:
    """Everything random in one generator step (CPU tensors)."""

    idx: torch.Tensor | None  # (n_critic, B) int64; None when a loader chooses the batches
    z: torch.Tensor  # (n_critic, B, latent_dim) fp32
    eps: torch.Tensor | None  # (n_critic, B) fp32, None for the clip loss
    z_gen: torch.Tensor  # (B, latent_dim) fp32
    gen_idx: torch.Tensor | None = None  # (B,) int64 dataset rows whose labels the generator update uses
    aug: torch.Tensor | None = None  # (2 n_critic + 1,) int64 augmentation seeds (config.augment)

    def shard(self, rank: int, world_size: int) -> "StepNoise":
        """This rank's slice of every batch (contiguous blocks of B / world_size samples)."""
        if world_size == 1:
            return self
        b = self.z_gen.shape[0] // world_size
        sl = slice(rank * b, (rank + 1) * b)
        # each rank augments its slice with seeds of its own (a per-sample draw hashes the index within the slice)
        aug = None if self.aug is None else (self.aug + rank * AUG_RANK_STRIDE) % 2**31
        return StepNoise(
            None if self.idx is None else self.idx[:, sl],
            self.z[:, sl],
            None if self.eps is None else self.eps[:, sl],
            self.z_gen[sl],
            None if self.gen_idx is None else self.gen_idx[sl],
            aug,
        )

    def to(self, device) -> "StepNoise":
        mv = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return StepNoise(mv(self.idx), mv(self.z), mv(self.eps), mv(self.z_gen), mv(self.gen_idx), mv(self.aug))


def make_generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def draw_step(
    gen: torch.Generator,
    n_data: int | None,
    n_critic: int,
    batch_size: int,
    latent_dim: int,
    with_eps: bool,
    with_labels: bool = False,
    with_aug: bool = False,
) -> StepNoise:
    """Draw one generator step's random numbers in the documented order (module docstring).

    Args:
        gen: the trainer's CPU generator (advanced in place).
        n_data: dataset size N; None when a loader chooses the real batches (no idx, no gen_idx drawn).
        n_critic, batch_size, latent_dim: from the config.
        with_eps: draw the per-sample interpolation weights (gp / lp losses).
        with_labels: draw the generator update's label rows (class-conditional runs).
        with_aug: draw the augmentation seeds (config.augment).
    Returns:
        A StepNoise of CPU tensors.
    """
    idx, z, eps = [], [], []
    for _ in range(n_critic):
        if n_data is not None:
            idx.append(torch.randint(0, n_data, (batch_size,), generator=gen))
        z.append(torch.randn(batch_size, latent_dim, generator=gen))
        if with_eps:
            eps.append(torch.rand(batch_size, generator=gen))
    z_gen = torch.randn(batch_size, latent_dim, generator=gen)
    gen_idx = torch.randint(0, n_data, (batch_size,), generator=gen) if with_labels and n_data is not None else None
    aug = torch.randint(0, 2**31, (2 * n_critic + 1,), generator=gen) if with_aug else None
    return StepNoise(
        torch.stack(idx) if idx else None, torch.stack(z), torch.stack(eps) if with_eps else None, z_gen, gen_idx, aug
    )


class ModelRNG:
    """The torch RNG state a trainer's models draw from (CPU, and the trainer's CUDA device), kept apart from the
    caller's: ``with model_rng:`` installs it as torch's global state and, on exit, keeps the advanced state and
    puts the caller's back. Compiled steps draw their random seeds from the same global generator, so they follow.
    """

    def __init__(self, seed: int, device: torch.device):
        self.device = device if device.type == "cuda" else None
        with torch.random.fork_rng(devices=[self.device] if self.device is not None else []):
            torch.manual_seed(seed)
            self.cpu = torch.get_rng_state()
            self.cuda = torch.cuda.get_rng_state(self.device) if self.device is not None else None

    def __enter__(self) -> "ModelRNG":
        self._saved = (
            torch.get_rng_state(),
            torch.cuda.get_rng_state(self.device) if self.device is not None else None,
        )
        torch.set_rng_state(self.cpu)
        if self.device is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
        return self

    def __exit__(self, *exc) -> None:
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(self._saved[0])
        if self.device is not None:
            self.cuda = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self._saved[1], self.device)

    def state(self) -> dict[str, torch.Tensor]:
        return {"cpu": self.cpu.clone(), **({"cuda": self.cuda.clone()} if self.cuda is not None else {})}

    def load(self, state: dict) -> None:
        self.cpu = torch.as_tensor(state["cpu"]).to(torch.uint8).clone()
        if self.device is not None and "cuda" in state:
            self.cuda = torch.as_tensor(state["cuda"]).to(torch.uint8).clone()
