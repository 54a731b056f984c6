"""The commands under torchrun (WORLD_SIZE > 1): joining the process group, finishing together, leaving it."""

from __future__ import annotations

import os

import torch

from ..core.config import TrainConfig


def init_distributed(cfg: TrainConfig) -> TrainConfig:
    """Under torchrun: join the process group (NCCL on CUDA, gloo on CPU) and pick this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return cfg
    import torch.distributed as dist

    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return cfg.replace(device=f"cuda:{local}")
    return cfg.replace(device="cpu")


def ranks_finish_together() -> None:
    """Under torchrun, after a command ended normally on every rank: a barrier before the process group is torn
    down. Rank 0 writes the run folder's last files after the last collective, so the other ranks used to destroy
    their gloo process group and exit first, and 1 run in ~13 aborted at exit ("terminate called without an active
    exception", SIGABRT on rank 1 after rank 0 had finished: tests/test_reliability.py's torchrun test, measured with
    a busy process on one core)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def leave_process_group() -> None:
    """At the end of every command: destroy the process group if one was joined."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
