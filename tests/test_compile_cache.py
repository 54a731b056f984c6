"""A compile killed mid-write must not break every later run: fastwgan heals a corrupt inductor cache entry.

Seen on this project's CI machine: a harness killed a child during its cold compile, inductor left zero-byte
``.main.so`` files in its on-disk cache, and from then on every process compiling the same graph failed with
"ImportError: ...main.so: file too short" until the files were deleted by hand. Each run here is a fresh process on
a PRIVATE cache folder (never the user's), so the second run really loads what the first one wrote.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastwgan.core import compile as fw_compile

CHILD = r"""
import json, torch
import fastwgan as fw
torch.manual_seed(0)
cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, latent_dim=4, n_critic=2)
tr = fw.Trainer(*fw.models.mlp((2,), 4, hidden=8, depth=1), cfg, compile=True, threads=1, impl="torch")
tr.fit(fw.data.toy("8gaussians", 64, seed=0), 3, progress=False)
print(json.dumps(tr.history))
"""


def _train(cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TORCHINDUCTOR_CACHE_DIR=str(cache), TRITON_CACHE_DIR=str(cache / "triton"))
    r = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def _truncate(libs, age_s=0.0):
    """What a kill mid-write leaves: the files exist, empty (``age_s``: that long ago)."""
    import time

    assert libs, "the compile wrote no shared objects"
    for lib in libs:
        lib.write_bytes(b"")
        os.utime(lib, (time.time() - age_s,) * 2)


def _notes(r):
    return [line for line in r.stderr.splitlines() if "corrupt" in line]


@pytest.mark.slow
def test_a_truncated_compiled_artifact_is_removed_and_compiled_again(tmp_path):
    cache = tmp_path / "inductor"
    clean = json.loads(_train(cache).stdout)
    # 1. the failure seen: empty kernel libraries, written just now ("ImportError: ...main.so: file too short")
    _truncate(sorted(cache.rglob("*.main.so")))
    healed = _train(cache)
    assert len(_notes(healed)) == 1 and "inductor cache" in _notes(healed)[0], healed.stderr[-3000:]
    assert json.loads(healed.stdout) == clean  # the same training, bit for bit
    # 2. every shared object empty, minutes ago (inductor's ISA probes too: an empty probe turns vectorisation off
    # silently and the cached kernels no longer compile): swept before the first compile
    _truncate(sorted(cache.rglob("*.so")), age_s=600)
    healed = _train(cache)
    assert len(_notes(healed)) == 1 and "empty files" in _notes(healed)[0], healed.stderr[-3000:]
    assert json.loads(healed.stdout) == clean
    assert all(lib.stat().st_size > 0 for lib in cache.rglob("*.so"))


def test_only_files_inside_the_cache_folder_are_named(tmp_path, monkeypatch):
    cache = tmp_path / "inductor"
    (cache / "ab").mkdir(parents=True)
    inside, outside = cache / "ab" / "c4g2.main.so", tmp_path / "user_data.so"
    (cache / "ab" / "c4g2.main.cpp").write_text("source")
    inside.write_bytes(b"")
    outside.write_bytes(b"")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    try:
        raise ImportError(f"{outside}: bad") from ImportError(f"{inside}: file too short; {cache}/ab/c4g2.main.cpp")
    except ImportError as e:
        assert fw_compile.corrupt_cache_files(e) == [os.path.realpath(inside)]
    assert fw_compile.corrupt_cache_files(RuntimeError("no path here")) == []


def test_an_error_that_names_no_cache_file_propagates_untouched(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    calls = []

    def boom():
        calls.append(1)
        raise RuntimeError("a genuine compile error")

    with pytest.raises(RuntimeError, match="genuine"):
        fw_compile.heal_cache(boom)
    assert calls == [1]  # not retried
