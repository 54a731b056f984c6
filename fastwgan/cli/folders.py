"""The run-folder rules of the commands, once, over ``fastwgan.core.run``: which run a command reads (RUN or
--checkpoint RUN), what kind of run a folder holds, where a training command writes (a new or empty folder,
--overwrite, or --resume: the run's own folder, to its own target) and what a run stopped by a signal says."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ..core.run import check_out, read_config, resume_folder, run_step

#: config.json's "kind" of each run a command trains (a GAN run records none) and that command.
TRAINED_BY = {None: "train", "translation": "translate train", "adaptation": "adapt", "fanogan-encoder": "encode"}


def run_arg(args, example: str | None = None) -> str:
    """The run a command reads: positional RUN or --checkpoint RUN, given once. A command that takes INPUT too reads
    ``CMD --checkpoint RUN INPUT`` with INPUT as its one positional. ``example``: the command line the error shows."""
    if hasattr(args, "input") and args.checkpoint and args.input is None:
        args.run, args.input = None, args.run
    if args.run and args.checkpoint and args.run != args.checkpoint:
        raise ValueError(f"the run is given twice ({args.run} and --checkpoint {args.checkpoint}): give RUN once")
    run = args.run or args.checkpoint
    if run is None:
        example = example or f"fastwgan {args.command} runs/digits-train-wgan-gp ..."
        raise ValueError(f"which run? give RUN, a run folder (e.g. `{example}`)")
    return run


def read_run(path, kind: str | None, flag: str = "--resume") -> dict:
    """The config.json of the run in folder ``path``, refused unless it is a run of ``kind`` (config.json's "kind",
    ``TRAINED_BY``; None: a GAN run)."""
    rc = read_config(path)
    have = rc.get("kind")
    if have != kind:
        what = f"a `fastwgan {TRAINED_BY[have]}` run" if have in TRAINED_BY else f"a run of kind {have!r}"
        raise ValueError(f"{flag}: {path} is {what}, not a `fastwgan {TRAINED_BY[kind]}` run")
    return rc


def refuse_resume_with_overwrite(args, what: str = "a run") -> None:
    """--resume and --overwrite together: refused (one continues, the other replaces)."""
    if args.resume and args.overwrite:
        raise ValueError(f"--resume continues {what} and --overwrite replaces it: give one of them")


def resume_steps(steps: int | None, at: int, target: int, run) -> int:
    """--steps of a continued run: the total it trains to (None: the run's own ``target``), past its step ``at``."""
    if steps is None:
        if target <= at:
            raise ValueError(
                f"--resume: {run} already reached its target of {target} steps; give a new total, e.g. "
                f"--steps {2 * target}"
            )
        return target
    if steps <= at:
        raise ValueError(
            f"--resume: {run} is already at step {at} and --steps is the run's total; ask for more than {at} "
            f"(e.g. --steps {at + steps})"
        )
    return steps


def continued(run: Path, kind: str | None, steps: int | None, default_steps: int) -> tuple[dict, int, int]:
    """The run --resume continues in folder ``run``: a run of ``kind`` with a checkpoint. Returns its config.json,
    its step and the total it trains to (``steps``, or its own target: config.json's "steps", else
    ``default_steps``)."""
    rc = read_run(run, kind)
    at = run_step(run)
    if not at:
        raise ValueError(f"--resume: {run} has no checkpoint to continue from")
    return rc, at, resume_steps(steps, at, int(rc.get("steps") or default_steps), run)


def training_folder(
    args, kind: str | None, default_steps: int, default_out=None
) -> tuple[Path, dict | None, int | None]:
    """Where a training command writes, checked before anything is written; sets ``args.steps`` to the total.

    --resume RUN: RUN's own folder (RUN is the folder, its checkpoints/ or its latest checkpoint:
    ``fastwgan.core.run.resume_folder``), a ``kind`` run with a checkpoint, to its own target or --steps. Otherwise
    --out (or ``default_out``): a new or empty folder, or one whose run --overwrite replaces
    (``fastwgan.core.run.check_out``); --steps defaults to ``default_steps``.

    Returns:
        (the folder, the continued run's config.json or None, the step of the run in the folder or None).
    """
    refuse_resume_with_overwrite(args)
    if args.resume:
        run = resume_folder(args.resume)
        if args.out is not None and Path(args.out).resolve() != run.resolve():
            raise ValueError(f"--resume continues {run} in its own folder; drop --out {args.out}")
        rc, at, args.steps = continued(run, kind, args.steps, default_steps)
        return run, rc, at
    args.steps = args.steps or default_steps
    out = args.out or default_out
    if out is None:
        raise ValueError(f"--out: name the run folder (e.g. --out runs/{args.command})")
    return Path(out), None, check_out(out, overwrite=args.overwrite)


def stopped(trainer, out: Path, command: str, resume: str | None = None) -> int:
    """The exit code of a finished training command: 0, or for a run a signal stopped (its checkpoint written)
    128 + the signal, after the line (rank 0) that names the command resuming it (``resume``: that command, when
    it is not ``fastwgan COMMAND --resume OUT``)."""
    if not trainer.stopped_by:
        return 0
    if getattr(trainer, "rank", 0) == 0:
        print(
            f"fastwgan {command}: stopped by {trainer.stopped_by} at step {trainer.step}; checkpoint written to "
            f"{Path(out) / 'checkpoints'}. Resume with: {resume or f'fastwgan {command} --resume {out}'}",
            file=sys.stderr,
        )
    return 128 + int(getattr(signal, trainer.stopped_by))
