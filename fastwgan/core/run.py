"""The run folder (DESIGN.md section 5): one folder per run, plain files a person can open.

RUN/config.json              everything needed to rerun: train config, model spec, data spec, versions
RUN/stats.jsonl              one JSON line per log tick (means over the ticks since the last one)
RUN/samples/step_NNNNNN.png  fixed-noise sample grid (images) or scatter plot (2-D toys)
RUN/plots/losses.png         critic loss, W-estimate, gradient penalty, generator loss
RUN/checkpoints/             step_NNNNNN.safetensors + step_NNNNNN.json, latest.json (atomic)
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from . import checkpoint, plots

log = logging.getLogger("fastwgan")

# What makes a folder a run folder (any one of them): a folder holding none of these but other files is not one.
RUN_MARKERS = ("config.json", "stats.jsonl", "checkpoints")


class RunFolderError(ValueError):
    """A run folder cannot be written as asked (it holds another run, or is not a run folder)."""


def run_step(out: str | os.PathLike) -> int | None:
    """The step of the run in folder ``out``: its latest checkpoint's step, 0 for a run with no checkpoint yet
    (config or stats only), None when ``out`` is absent, empty, or holds no run."""
    out = Path(out)
    if not out.is_dir() or not any(out.iterdir()):
        return None
    latest = out / "checkpoints" / checkpoint.LATEST
    if latest.is_file():
        try:
            return int(json.loads(latest.read_text())["step"])
        except (ValueError, KeyError, TypeError) as e:
            raise checkpoint.CheckpointError(f"checkpoint: {latest} is corrupt ({e})") from None
    return 0 if any((out / m).exists() for m in RUN_MARKERS) else None


def check_out(out: str | os.PathLike, *, step: int = 0, overwrite: bool = False) -> int | None:
    """Check that a trainer at ``step`` may write the run folder ``out``, before anything is written.

    A run folder belongs to one run: an absent or empty folder takes a new run; a folder holding a run takes only
    that run's continuation (a trainer at a step >= the run's latest checkpoint), or, with ``overwrite``, a new
    run that replaces it. A non-empty folder that is not a run folder is never written.

    Returns:
        the step of the run already in ``out`` (None: none).
    Raises:
        RunFolderError naming the folder, its step and the ways on.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run folder: {out} exists and is not a folder")
    have = run_step(out)
    if have is None:
        if out.is_dir() and any(out.iterdir()):
            raise RunFolderError(
                f"run folder: {out} is not empty and holds no fastwgan run; choose a new or empty folder"
            )
        return None
    if step == 0 and not overwrite:
        raise RunFolderError(
            f"run folder: {out} already holds a run (at step {have}); continue it with "
            f"`fastwgan train --resume {out}` (Python: fastwgan.load_trainer), or start over "
            "with --overwrite (Python: fit(..., overwrite=True))"
        )
    if 0 < step < have:
        raise RunFolderError(
            f"run folder: {out} holds a run at step {have}, ahead of this trainer's step {step}; "
            "write to another folder"
        )
    return have


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment() -> dict:
    """Versions and machine, recorded with every run and benchmark. ``cpu``: the processor's name and the vector
    unit torch's CPU kernels use (two x86 CPUs can round some sums differently: the same seed then gives results
    that differ in the last digits)."""
    env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()}
    env["cpu"] = f"{_cpu_name()} ({torch.backends.cpu.get_cpu_capability()})"
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
    """Writes a run folder for a trainer at ``step`` (0: a new run).

    Creating it checks the folder (``check_out``: a run folder belongs to one run; clear error otherwise). A
    continued run keeps the folder: ``stats.jsonl`` lines after ``step`` (logged after the checkpoint the run
    resumed from) are dropped and config.json keeps its entries that ``run_config`` does not set; ``defaults``
    fill only the entries neither sets (fit's record of a bundled model's spec). With
    ``overwrite``, a run already in the folder is moved aside atomically (one rename, to ``OUT.replaced-TIME``)
    and deleted when the new run writes its first checkpoint; if the new run ends before that (``close``), the
    partial new folder is removed and the old run is moved back.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        run_config: dict | None = None,
        *,
        step: int = 0,
        overwrite: bool = False,
        defaults: dict | None = None,
    ):
        self.out = Path(out)
        self.replaced: Path | None = None  # where the overwritten run waits for the new run's first checkpoint
        self.ticks: list[dict] = []  # the stats.jsonl records (the plots draw evaluation metrics from them)
        have = check_out(self.out, step=step, overwrite=overwrite)
        if self.out.is_dir() and not os.access(self.out, os.W_OK):
            raise PermissionError(f"run folder: {self.out} is not writable")
        old_config: dict = {}
        if have is not None and step == 0:  # overwrite
            self.replaced = self.out.with_name(f"{self.out.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            os.rename(self.out, self.replaced)
            log.info(
                "moved the run in %s (step %d) aside to %s; it is deleted when this run writes its first checkpoint",
                self.out,
                have,
                self.replaced,
            )
        elif have is not None:  # a continuation
            self._truncate_stats(step)
            stats = self.out / "stats.jsonl"
            if stats.is_file():
                for line in stats.read_text().splitlines():
                    try:
                        self.ticks.append(json.loads(line))
                    except ValueError:
                        pass
            if (self.out / "config.json").is_file():
                old_config = read_config(self.out)
        try:
            for sub in ("samples", "plots", "checkpoints"):
                (self.out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"run folder: cannot create {self.out} ({e.strerror})") from None
        if not os.access(self.out, os.W_OK):
            raise PermissionError(f"run folder: {self.out} is not writable")
        if run_config is not None:
            checkpoint.atomic_write_json(
                self.out / "config.json", {**(defaults or {}), **old_config, **run_config, "environment": environment()}
            )

    def _truncate_stats(self, step: int) -> None:
        path = self.out / "stats.jsonl"
        if not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        keep = [ln for ln in lines if not ln.strip() or json.loads(ln).get("step", 0) <= step]
        if len(keep) != len(lines):
            checkpoint.atomic_write_bytes(path, "".join(keep).encode())
            log.info(
                "dropped %d stats.jsonl lines after step %d (logged after the checkpoint this run continues from)",
                len(lines) - len(keep),
                step,
            )

    def close(self) -> None:
        """End of the run: an overwritten run still set aside (no checkpoint yet) is moved back."""
        if self.replaced is None:
            return
        shutil.rmtree(self.out, ignore_errors=True)
        os.rename(self.replaced, self.out)
        log.info("the new run wrote no checkpoint: moved the old run back to %s", self.out)
        self.replaced = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def log(self, record: dict) -> None:
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
        self.ticks.append(clean)
        with open(self.out / "stats.jsonl", "a") as f:
            f.write(json.dumps(clean) + "\n")

    def samples(self, step: int, x: torch.Tensor, real: torch.Tensor | None = None, nrow: int | None = None) -> Path:
        """The fixed-noise picture of ``step``: a scatter over ``real`` (2-D toys) or a grid, ``nrow`` images per row
        (a class-conditional run: one row per class)."""
        path = self.out / "samples" / f"step_{step:06d}.png"
        if x.dim() == 2 and x.shape[1] == 2:  # 2-D toy: a scatter plot over the real data
            plots.scatter(x, path, real=real, title=f"step {step}")
        else:
            from .images import save_grid

            # small images (8x8 digits) enlarged to be seen (images.view_scale)
            save_grid(x, path, nrow=nrow, scale=None)
        return path

    def plots(self, history: list[dict], panels=plots.GAN_PANELS) -> None:
        """plots/losses.png: ``panels`` (``fastwgan.core.plots.plot_losses``) from the history and the logged ticks."""
        if history:
            plots.plot_losses(history, self.out / "plots" / "losses.png", panels, self.ticks)

    def checkpoint(self, state: dict, step: int, keep: int = 3) -> Path:
        path = checkpoint.save(state, self.checkpoint_dir, step, keep=keep)
        if self.replaced is not None:  # the new run now stands on its own: the overwritten one goes
            shutil.rmtree(self.replaced)
            log.info("deleted the overwritten run %s (this run's first checkpoint is written)", self.replaced)
            self.replaced = None
        return path


def resume_folder(path: str | os.PathLike, flag: str = "--resume") -> Path:
    """The run folder that ``--resume PATH`` continues: PATH is the run folder, its checkpoints/ folder or its latest
    checkpoint file (a run continues from its latest checkpoint; an earlier one is refused in one line)."""
    from . import checkpoint

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag}: {p} does not exist (give a run folder, e.g. {flag} runs/digits)")
    root = next((d for d in (p, *p.parents) if (d / "config.json").is_file()), None)
    if root is None:
        raise ValueError(
            f"{flag}: {p} is not in a run folder (no config.json there or above): give the run folder, "
            "its checkpoints/ folder or its latest checkpoint"
        )
    if p.is_file():
        latest = checkpoint.resolve(root)
        if p.resolve() != latest.resolve():
            raise ValueError(
                f"{flag}: {p} is not the run's latest checkpoint ({latest.name}); a run continues from "
                f"its latest: give the run folder {root}"
            )
    return root


class Progress:
    """A training loop's progress: a tqdm bar on a terminal; where stderr is not one (nohup, CI, a pipe, a log file)
    and ``progress`` is None (auto), one plain line every ``every_s`` seconds and at the end instead, so a long run
    is never silent. ``progress=False`` (or a rank other than 0) shows nothing; True forces the bar.

    Args:
        total, initial: the steps to reach and the step the loop starts at.
        desc: what trains (the lines start ``fastwgan: <desc>:``).
        progress: None (auto), True or False.
        rank: the process's rank under torchrun (only rank 0 reports).
        every_s: seconds between plain lines.
    """

    def __init__(
        self, total: int, initial: int, desc: str, progress: bool | None, rank: int = 0, every_s: float = 30.0
    ):
        import sys

        from tqdm.auto import tqdm

        quiet = rank != 0 or progress is False
        tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            initial=min(initial, total),
            desc=desc,
            unit="step",
            dynamic_ncols=True,
            disable=quiet or (progress is None and not tty),
        )
        self.lines = not quiet and progress is None and not tty
        self.total, self.desc, self.every_s = total, desc, every_s
        self.n = self.n0 = self.shown = initial
        self.t0 = self.t_shown = time.monotonic()
        self.postfix: dict = {}

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.n += n
        if self.lines and time.monotonic() - self.t_shown >= self.every_s:
            self._line()

    def set_postfix(self, values: dict) -> None:
        self.bar.set_postfix(values)
        self.postfix = dict(values)

    def _line(self) -> None:
        import sys

        now = time.monotonic()
        rate = (self.n - self.n0) / max(now - self.t0, 1e-9)
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(
            f"fastwgan: {self.desc}: step {self.n}/{self.total} ({rate:.3g} steps/s){extra}",
            file=sys.stderr,
            flush=True,
        )
        self.t_shown, self.shown = now, self.n

    def close(self) -> None:
        if self.lines and self.shown != self.n:
            self._line()
        self.bar.close()


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
