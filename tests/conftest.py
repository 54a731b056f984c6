"""Shared test set-up: hypothesis profiles and the run's seed, the GPU marker, and tests/ on sys.path for the
helper modules (``equivalence``) under pytest's importlib import mode."""

import os
import sys

import pytest
import torch
from hypothesis import HealthCheck, settings

# tests/ on sys.path for the helper modules under pytest's importlib import mode.
sys.path.insert(0, os.path.dirname(__file__))
# The evaluation digit classifier is deterministic: train it once per test session (subprocesses inherit this),
# never in the user's own cache.
if "FASTWGAN_CACHE" not in os.environ:
    import tempfile

    os.environ["FASTWGAN_CACHE"] = tempfile.mkdtemp(prefix="fastwgan-test-cache-")

# Property tests explore (STYLE habit 5): the "ci" profile (the default, what `make test` runs) draws at least
# 25 examples per property, NOT derandomised, from one seed per run that moves with the commit under test
# (FASTWGAN_TEST_SEED, else derived from `git rev-parse HEAD`, else random), printed in the header; a failure
# reproduces with `FASTWGAN_TEST_SEED=<seed> make test` (or `pytest --hypothesis-seed=<seed> tests/...`). No
# example database in CI: the seed alone decides what is drawn. A test may cap its examples lower only with a
# comment saying why, and never below 10 (MIN_EXAMPLES). `deadline=None`: first calls compile.
# "quick" (`make test-quick`) draws 10 per property; "dev" 100 for a thorough local run.
MIN_EXAMPLES = 10
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=25, database=None, **_COMMON)
settings.register_profile("quick", max_examples=MIN_EXAMPLES, database=None, **_COMMON)
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _commit_seed() -> tuple[int, str]:
    """The run's hypothesis seed and where it came from."""
    env = os.environ.get("FASTWGAN_TEST_SEED")
    if env:
        return int(env), "FASTWGAN_TEST_SEED"
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=os.path.dirname(__file__), capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    if len(head) >= 8:
        return int(head[:8], 16), f"commit {head[:12]}"
    import random

    return random.SystemRandom().randrange(2**32), "random (no git commit)"


def pytest_configure(config):
    from hypothesis import core

    given = config.getoption("--hypothesis-seed", None)
    if given is not None:  # hypothesis's own option wins (its plugin has set it)
        config._fastwgan_seed = (given, "--hypothesis-seed")
        return
    seed, source = _commit_seed()
    core.global_force_seed = seed
    config._fastwgan_seed = (seed, source)


def pytest_sessionstart(session):
    # printed even under -q (make test): the line a failure's reproduction starts from
    seed, source = session.config._fastwgan_seed
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"fastwgan property tests: hypothesis profile {settings.get_current_profile_name()!r} "
            f"({settings.default.max_examples} examples per property), seed {seed} ({source}); reproduce with "
            f"FASTWGAN_TEST_SEED={seed} make test (or .venv/bin/python -m pytest --hypothesis-seed={seed} TEST)"
        )


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
