"""The run folder (DESIGN.md section 5): one folder per run, plain files a person can open.

    RUN/config.json              everything needed to rerun: train config, model spec, data spec, versions
    RUN/stats.jsonl              one JSON line per log tick (means over the ticks since the last one)
    RUN/samples/step_NNNNNN.png  fixed-noise sample grid (images) or scatter plot (2-D toys)
    RUN/plots/losses.png         critic loss, W-estimate, gradient penalty, generator loss
    RUN/checkpoints/             step_NNNNNN.safetensors + step_NNNNNN.json, latest.json (atomic)
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from . import checkpoint, plots


def environment() -> dict:
    """Versions and machine, recorded with every run and benchmark."""
    env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["device_name"] = torch.cuda.get_device_name()
    return env


class RunWriter:
    """Writes a run folder. Creating it checks that ``out`` is a writable folder (clear error otherwise)."""

    def __init__(self, out: str | os.PathLike, run_config: dict | None = None):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"run folder: {self.out} exists and is not a folder")
        if self.out.is_dir() and not os.access(self.out, os.W_OK):
            raise PermissionError(f"run folder: {self.out} is not writable")
        try:
            for sub in ("samples", "plots", "checkpoints"):
                (self.out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"run folder: cannot create {self.out} ({e.strerror})") from None
        if not os.access(self.out, os.W_OK):
            raise PermissionError(f"run folder: {self.out} is not writable")
        if run_config is not None:
            checkpoint.atomic_write_json(self.out / "config.json", {**run_config, "environment": environment()})

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def log(self, record: dict) -> None:
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
        with open(self.out / "stats.jsonl", "a") as f:
            f.write(json.dumps(clean) + "\n")

    def samples(self, step: int, x: torch.Tensor, real: torch.Tensor | None = None) -> Path:
        path = self.out / "samples" / f"step_{step:06d}.png"
        if x.dim() == 2 and x.shape[1] == 2:  # 2-D toy: a scatter plot over the real data
            plots.scatter(x, path, real=real, title=f"step {step}")
        else:
            from .data import save_grid

            if x.dim() == 4 and x.shape[-1] < 32:  # small images (8x8 digits): nearest-neighbour x4 to be seen
                x = x.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)
            save_grid(x, path)
        return path

    def plots(self, history: list[dict]) -> None:
        if history:
            plots.plot_losses(history, self.out / "plots" / "losses.png")

    def checkpoint(self, state: dict, step: int, keep: int = 3) -> Path:
        return checkpoint.save(state, self.checkpoint_dir, step, keep=keep)


def read_config(run: str | os.PathLike) -> dict:
    """The ``config.json`` of a run folder (clear error if it is not one)."""
    p = Path(run)
    if not p.exists():
        raise FileNotFoundError(f"run folder: {p} does not exist")
    cfg = p / "config.json" if p.is_dir() else p
    if not cfg.is_file():
        raise FileNotFoundError(f"run folder: {cfg} not found (is {p} a fastwgan run folder?)")
    try:
        return json.loads(cfg.read_text())
    except ValueError as e:
        raise ValueError(f"run folder: {cfg} is not valid JSON ({e})") from None
