"""Shared test set-up: hypothesis profiles, the GPU marker, and tests/ on sys.path for the helper modules
(``equivalence``) under pytest's importlib import mode."""
import os
import sys

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property tests: `deadline=None` because first calls compile; CI is derandomised and small so that the whole
# suite stays well under 10 minutes on 2 cores. `HYPOTHESIS_PROFILE=dev` draws more examples locally.
sys.path.insert(0, os.path.dirname(__file__))
# The evaluation digit classifier is deterministic: train it once per test session (subprocesses inherit this),
# never in the user's own cache.
if "FASTWGAN_CACHE" not in os.environ:
    import tempfile

    os.environ["FASTWGAN_CACHE"] = tempfile.mkdtemp(prefix="fastwgan-test-cache-")

settings.register_profile(
    "ci", max_examples=4, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
