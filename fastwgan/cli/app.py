"""The ``fastwgan`` parser and its dispatch: the commands' options come from their modules; here are the options
every command takes, the one-line errors and the exit codes (0; 2: bad input, in one line, the traceback with
--debug; 130: Ctrl-C; 128 + N: a training run stopped by signal N, resumable)."""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from . import adapt, domains, runs, scoring, train
from .distributed import leave_process_group, ranks_finish_together

#: The function behind each command.
COMMANDS = {
    "train": train.cmd_train,
    "sample": runs.cmd_sample,
    "evaluate": runs.cmd_evaluate,
    "score": scoring.cmd_score,
    "encode": scoring.cmd_encode,
    "translate": domains.cmd_translate,
    "adapt": adapt.cmd_adapt,
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where the help is, not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    try:
        triton = version("triton")
    except PackageNotFoundError:
        triton = "not installed"
    return f"fastwgan {__version__} (torch {torch.__version__}, triton {triton}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fastwgan", description="Train Wasserstein GANs (WGAN, WGAN-GP) on images.")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    train.add_parser(sub)
    runs.add_parsers(sub)
    scoring.add_parsers(sub)
    domains.add_parsers(sub)
    adapt.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The library's notes (logger "fastwgan": a run folder moved aside, stats lines dropped) as 'fastwgan: ...'
    # lines on stderr, for this command only.
    log = logging.getLogger("fastwgan")
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter("fastwgan: %(message)s"))
    log.addHandler(notes)
    level, log.level = log.level, (logging.DEBUG if args.debug else logging.INFO)
    try:
        code = COMMANDS[args.command](args)
        ranks_finish_together()
        return code
    except (ValueError, OSError, TypeError) as e:  # bad input: one clear line (the traceback with --debug)
        if args.debug:
            raise
        print(f"fastwgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (which stops cleanly itself): one line
        if args.debug:
            raise
        print(
            f"fastwgan {args.command}: interrupted (Ctrl-C); a run keeps what its last checkpoint holds",
            file=sys.stderr,
        )
        return 130
    finally:
        log.removeHandler(notes)
        log.setLevel(level)
        leave_process_group()
