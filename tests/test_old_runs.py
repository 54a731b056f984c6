"""Runs written by an earlier fastwgan keep loading, sampling and resuming (issue 23's guard): to the bit on the CPU
that wrote them, to float rounding on others (``same``).

tests/data/old_runs holds run folders written by fastwgan at commit 1531d0c, before the one-engine restructure
(``make.py`` there says how), and what that code computed from them (``expected.safetensors``). Every later version
must read them to the same bits: the networks' outputs, and a run resumed from its middle checkpoint must end on
exactly the checkpoint the uninterrupted run wrote. One thread, so the float sums keep one order; the ops'
plain-PyTorch twins, as when the runs were written (without TRITON_INTERPRET=1 the "auto" dispatch picks them on
CPU; ``make test`` sets it, so the tests say it here).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fastwgan as fw
from fastwgan.cli import main
from fastwgan.core import checkpoint
from fastwgan.ops import dispatch
from fastwgan.uses import adapt, anomaly, translate

OLD = Path(__file__).resolve().parent / "data" / "old_runs"
EXPECTED = load_file(str(OLD / "expected.safetensors"))
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def plain_pytorch_ops(monkeypatch):
    """The runs were written with the ops' twins ("auto" on a CPU without the Triton interpreter)."""
    monkeypatch.setattr(dispatch, "INTERPRET", False)


def heldout(n=32):
    return fw.data.load("digits-heldout")[:n]


def digits_m_v1(part: str) -> torch.Tensor:
    """digits-m as the old runs saw it (its first colour textures, independent per channel, replaced since):
    ``digits_m_v1.npz`` holds "train" (all 1297) and "heldout" (the first 32), uint8 (N, 3, 8, 8)."""
    with np.load(OLD / "digits_m_v1.npz") as z:
        return torch.from_numpy(z[part])


def copy_at(tmp_path: Path, run: str, step: int) -> Path:
    """A copy of old run ``run`` rolled back to its checkpoint at ``step`` (later checkpoints removed)."""
    dst = tmp_path / run
    shutil.copytree(OLD / run, dst)
    for ck in dst.rglob("checkpoints"):
        if not any(ck.glob(f"step_{step:06d}.json")):
            continue
        for js in ck.glob("step_*.json"):
            if int(js.stem.split("_")[1]) > step:
                js.unlink()
                js.with_suffix(".safetensors").unlink()
        (ck / "latest.json").write_text(json.dumps({"step": step, "checkpoint": f"step_{step:06d}.json"}))
    return dst


#: how far another CPU's rounding may move a value: the runs were written on an AMD EPYC; an Intel Xeon's vector
#: units round some sums differently (a W-estimate -0.022727964446 there, -0.022727947682 here), and two or three
#: resumed Adam steps, which normalise tiny gradients, carry that to parameters: measured at most 2.8e-4 apart on
#: the Xeon (a translation critic's bias). Forward passes of the old checkpoints differ far less. A changed
#: computation moves values by much more than this; the CPU that wrote the runs still compares to the bit.
RTOL, ATOL = 1e-3, 1e-3


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to the bit, or (another CPU) within float rounding: same dtype and shape, integers exact."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if torch.equal(a, b):
        return True
    if not a.is_floating_point():
        return False
    return bool(torch.allclose(a, b, rtol=RTOL, atol=ATOL))


def assert_same_state(a, b, where="state"):
    """A new checkpoint state ``a`` equal to the old one ``b`` to the bit: every tensor, every number, every record
    (timings aside). At the top level the new format may add entries; every old entry must be there, equal."""
    if where == "state" and isinstance(a, dict):
        a = {k: v for k, v in a.items() if k in b}
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and same(a, b), where
    elif isinstance(a, dict):
        skip = {"steps_per_s", "images_per_s", "first_step_s", "threads"}
        assert set(a) - skip == set(b) - skip, f"{where}: keys {set(a) ^ set(b)}"
        for k in set(a) - skip:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or abs(a - b) <= ATOL + RTOL * abs(b), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def final_state(run: Path, step: int) -> dict:
    return checkpoint.load(run / "checkpoints" / f"step_{step:06d}.json")


def test_an_old_gan_run_loads_samples_and_resumes_bitwise(tmp_path):
    trainer, rc = fw.load_trainer(OLD / "gan", threads=1)
    assert trainer.step == 6 and rc["steps"] == 6
    assert same(trainer.sample(16, seed=5), EXPECTED["gan_sample"])
    assert same(trainer.critic_score(heldout()), EXPECTED["gan_critic"])
    run = copy_at(tmp_path, "gan", 3)
    assert main(["train", "--resume", str(run), "--no-progress", "--threads", "1", "--no-compile"]) == 0
    assert_same_state(final_state(run, 6), final_state(OLD / "gan", 6))


def test_an_old_encoder_scores_and_resumes_bitwise(tmp_path):
    trainer, _ = fw.load_trainer(OLD / "gan", threads=1)
    assert same(anomaly.load_encoder(OLD / "gan", trainer).score(heldout())["score"], EXPECTED["encoder_score"])
    run = copy_at(tmp_path, "gan", 6)  # the GAN as it was; its encoder rolled back to step 2
    enc = run / "encoder"
    shutil.rmtree(enc)
    shutil.copytree(copy_at(tmp_path / "e", "gan", 2) / "encoder", enc)
    assert (
        main(["encode", str(run), "--steps", "4", "--resume", "--no-progress", "--log-every", "1", "--no-compile"]) == 0
    )
    assert_same_state(final_state(enc, 4), final_state(OLD / "gan" / "encoder", 4))


def test_an_old_translation_run_translates_and_resumes_bitwise(tmp_path):
    tr = translate.load_translation(OLD / "translate", threads=1)
    assert same(tr.translate(heldout(8)), EXPECTED["translate_s2t"])
    run = copy_at(tmp_path, "translate", 2)
    # its target was "digits-m-train" with the first textures: resume on those images, from a file
    np.savez(tmp_path / "digits_m_v1_train.npz", images=digits_m_v1("train").numpy())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["target"] == "digits-m-train"
    cfg["data"]["target"] = str(tmp_path / "digits_m_v1_train.npz")
    (run / "config.json").write_text(json.dumps(cfg, indent=1))
    assert main(["translate", "train", "--resume", str(run), "--no-progress", "--threads", "1", "--no-compile"]) == 0
    assert_same_state(final_state(run, 4), final_state(OLD / "translate", 4))


#: the adaptation run's settings, then the defaults (weight 1, one classifier update per critic round)
OLD_ADAPT = {"weight": 1.0, "clf_steps": 1, "shift": False}  # the settings then (no shifts before issue 24)


def test_an_old_adaptation_checkpoint_predicts_and_resumes_bitwise(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_old_runs", OLD / "make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8)
    trainer = adapt.AdaptTrainer(*make.small_adapt_networks(), cfg, **OLD_ADAPT, compile=False)
    trainer.load_state_dict(checkpoint.load(OLD / "adapt"))
    assert same(trainer.predict(digits_m_v1("heldout")), EXPECTED["adapt_predict"])
    run = copy_at(tmp_path, "adapt", 2)
    resumed = adapt.AdaptTrainer(*make.small_adapt_networks(), cfg, **OLD_ADAPT, compile=False, threads=1)
    resumed.load_state_dict(checkpoint.load(run))
    src, y = fw.data.load("digits-train", channels=3, labels=True)
    resumed.fit(src, digits_m_v1("train"), 4, labels=y, progress=False)
    checkpoint.save(resumed.state_dict(), tmp_path / "resumed", resumed.step)  # JSON's keys, as the old run's
    state = checkpoint.load(tmp_path / "resumed")
    for rec in state["history"]:  # logged since (issue 24); everything the old run logged must match
        for key in ("target_entropy", "feature_norm_s", "feature_norm_t"):
            rec.pop(key, None)
    assert_same_state(state, final_state(OLD / "adapt", 4))
