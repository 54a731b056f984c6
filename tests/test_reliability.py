"""Long runs lose nothing: exact resume, atomic checkpoints, signals, divergence guards, hostile input."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import cli_args
import numpy as np
import pytest
import torch
from torch import nn

import fastwgan as fw
from fastwgan.cli import main
from fastwgan.core import checkpoint
from fastwgan.core.guards import DivergenceError
from fastwgan.gan.trainer import Trainer

TOY = cli_args.TOY


def final_state(run):
    return checkpoint.load(run)


def assert_states_equal(a, b, exact=True):
    for net in ("critic", "generator"):
        for k in a[net]:
            if exact:
                assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
            else:
                torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-4, atol=1e-6)
    assert a["step"] == b["step"]


@pytest.mark.slow
@pytest.mark.parametrize("trainer", [["--trainer", "reference"], ["--no-compile"]])
def test_cli_resume_is_bitwise_equal_to_a_straight_run(tmp_path, trainer):
    # The fast trainer with a fixed thread count: "auto" may change it between steps, and with it the summation
    # order of parallel reductions (fastwgan.core.threads).
    fixed = ["--threads", "1"] if trainer[0] == "--no-compile" else []
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", *TOY, *trainer, *fixed, "--steps", "6", "--out", str(straight)]) == 0
    assert main(["train", *TOY, *trainer, *fixed, "--steps", "3", "--out", str(split)]) == 0
    # --no-compile is how this process runs, not part of the run's config: the resume says it again
    eager = [a for a in trainer if a == "--no-compile"]
    assert (
        main(["train", "--resume", str(split), "--steps", "6", "--no-progress", "--log-every", "1", *eager, *fixed])
        == 0
    )
    a, b = final_state(straight), final_state(split)
    assert_states_equal(a, b, exact=True)  # the parameters: bitwise
    if trainer[0] == "--trainer":
        assert a["history"] == b["history"]
    else:  # the fast path's logged metrics may differ in the last bit across processes (reduction order of
        # a fresh allocation), while every parameter stays bitwise equal
        for x, y in zip(a["history"], b["history"]):
            assert x.keys() == y.keys() and all(
                x[k] == y[k] or math.isclose(x[k], y[k], rel_tol=1e-6, abs_tol=1e-9) for k in x
            )
    assert [json.loads(x)["step"] for x in (split / "stats.jsonl").read_text().splitlines()] == list(range(1, 7))


@pytest.mark.slow
def test_compiled_resume_matches_within_fp32_tolerance(tmp_path):
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, latent_dim=4)
    data = fw.data.toy("8gaussians", n=64, seed=0)

    def make():
        torch.manual_seed(0)
        return Trainer(*fw.models.mlp((2,), 4, hidden=16, depth=2), cfg, compile=True)

    straight = make().fit(data, 4, progress=False)
    first = make().fit(data, 2, progress=False)
    checkpoint.save(first.state_dict(), tmp_path, step=2)
    resumed = make()
    resumed.load_state_dict(checkpoint.load(tmp_path))
    resumed.fit(data, 4, progress=False)
    assert_states_equal(straight.state_dict(), resumed.state_dict(), exact=False)


def test_a_crash_during_a_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    t = fw.ReferenceTrainer(*fw.models.mlp((2,), 4, hidden=8, depth=1), fw.TrainConfig(batch_size=4, latent_dim=4))
    t.fit(fw.data.toy("8gaussians", n=32), 1, progress=False)
    checkpoint.save(t.state_dict(), tmp_path, step=1)
    t.fit(fw.data.toy("8gaussians", n=32), 2, progress=False)
    real_replace = os.replace
    calls = []

    def dying_replace(src, dst):  # the weights land, then the process "dies" before the JSON half
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(t.state_dict(), tmp_path, step=2)
    monkeypatch.setattr(os, "replace", real_replace)
    st = checkpoint.load(tmp_path)
    assert st["step"] == 1  # latest.json still points at the complete step-1 checkpoint
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp litter
    fresh = fw.ReferenceTrainer(*fw.models.mlp((2,), 4, hidden=8, depth=1), fw.TrainConfig(batch_size=4, latent_dim=4))
    fresh.load_state_dict(st)
    assert fresh.step == 1


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "fastwgan",
        "train",
        *TOY,
        "--no-compile",
        "--steps",
        "100000",
        "--out",
        str(out),
        "--sample-every",
        "100000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        stats = out / "stats.jsonl"
        if stats.exists() and len(stats.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Resume with: fastwgan train --resume" in err and "Traceback" not in err
    st = checkpoint.load(out)
    k = st["step"]
    assert k >= 3 and len(st["history"]) == k
    assert main(["train", "--resume", str(out), "--steps", str(k + 2), "--no-progress"]) == 0
    assert checkpoint.load(out)["step"] == k + 2


class Poisoned(nn.Module):
    """A critic that returns NaN for `poison` forward calls once armed."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.poison = inner, 0

    def forward(self, x):
        y = self.inner(x)
        if self.poison > 0:
            self.poison -= 1
            return y * float("nan")
        return y


def poisoned_trainer():
    torch.manual_seed(0)
    G, D = fw.models.mlp((2,), 4, hidden=8, depth=1)
    return fw.ReferenceTrainer(G, Poisoned(D), fw.TrainConfig(batch_size=4, latent_dim=4, n_critic=2))


def test_a_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    t = poisoned_trainer()

    def arm(trainer, record):
        if record["step"] == 2:
            trainer.critic.poison = 1

    with pytest.raises(DivergenceError, match="at step 3: critic_loss is nan"):
        t.fit(fw.data.toy("8gaussians", n=32), 10, out=tmp_path, log_every=1, checkpoint_every=1, callbacks=(arm,))
    st = checkpoint.load(tmp_path)
    assert st["step"] == 2
    assert all(torch.isfinite(v).all() for v in st["critic"].values())


def test_skip_mode_undoes_the_bad_step_and_goes_on():
    t = poisoned_trainer()

    def arm(trainer, record):
        if record["step"] == 2:
            trainer.critic.poison = 1

    before = {}

    def remember(trainer, record):
        before[record["step"]] = [p.clone() for p in trainer.critic.parameters()]

    t.fit(
        fw.data.toy("8gaussians", n=32), 5, log_every=1, callbacks=(remember, arm), on_nonfinite="skip", progress=False
    )
    assert t.skipped_steps == [3] and t.step == 5
    assert [h["step"] for h in t.history] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(v) for h in t.history for v in h.values() if v is not None)


def test_cli_reports_divergence_in_one_line(tmp_path, capsys):
    # lr 1e30 overflows the critic's weights within a step or two
    argv = [
        "train",
        *TOY,
        "--trainer",
        "reference",
        "--steps",
        "20",
        "--lr-d",
        "1e30",
        "--loss",
        "clip",
        "--optimizer",
        "adam",
        "--clip-value",
        "1e30",
        "--out",
        str(tmp_path / "r"),
    ]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "diverged at step" in err and "Traceback" not in err


def write_png(path, size=(8, 8), mode="L"):
    from PIL import Image

    Image.fromarray(np.full((size[1], size[0]) + ((3,) if mode == "RGB" else ()), 128, np.uint8), mode).save(path)


def hostile_cases(tmp_path):
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    write_png(trunc / "a.png")
    (trunc / "b.png").write_bytes((trunc / "a.png").read_bytes()[:30])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_png(mixed / "a.png", (8, 8), "L")
    write_png(mixed / "b.png", (12, 10), "RGB")
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    np.save(tmp_path / "strings.npy", np.array([["a"] * 8] * 8))
    (tmp_path / "notes.txt").write_text("hello")
    return {
        "truncated image": (["--data", str(trunc)], "b.png"),
        "mixed sizes": (["--data", str(mixed)], "mixed"),
        "zero-length array": (["--data", str(tmp_path / "empty.npy")], "empty.npy"),
        "wrong dtype": (["--data", str(tmp_path / "strings.npy")], "strings.npy"),
        "file where a folder is expected": (["--data", str(tmp_path / "notes.txt")], "notes.txt"),
    }


@pytest.mark.parametrize(
    "case", ["truncated image", "mixed sizes", "zero-length array", "wrong dtype", "file where a folder is expected"]
)
def test_hostile_data_gives_one_clear_line(tmp_path, capsys, case):
    extra, needle = hostile_cases(tmp_path)[case]
    code = main(["train", *extra, "--steps", "1", "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # nothing written for a run that cannot start


def test_checkpoint_from_another_model_is_refused_and_kept(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    main(["train", *TOY, "--trainer", "reference", "--steps", "1", "--out", str(a)])
    main(
        ["train", *TOY[:6], "--width", "32", "--no-progress", "--trainer", "reference", "--steps", "1", "--out", str(b)]
    )
    for f in (a / "checkpoints").iterdir():  # b's config with a's weights
        (b / "checkpoints" / f.name).write_bytes(f.read_bytes())
    before = {p.name: p.read_bytes() for p in (b / "checkpoints").iterdir()}
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(b), "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "does not match these models" in err and "Traceback" not in err
    assert main(["train", "--resume", str(b), "--steps", "3", "--no-progress"]) == 2
    assert {p.name: p.read_bytes() for p in (b / "checkpoints").iterdir()} == before


def test_unwritable_output_gives_one_clear_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    assert main(["train", *TOY, "--steps", "1", "--out", str(blocker)]) == 2
    assert "is not a folder" in capsys.readouterr().err and blocker.read_text() == "keep me"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permission bits: emulate the refusal the kernel would give
            import fastwgan.core.run as run_mod

            real_access = run_mod.os.access
            run_mod.os.access = lambda p, mode: False if str(p).startswith(str(ro)) else real_access(p, mode)
        else:
            run_mod = real_access = None
        assert main(["train", *TOY, "--steps", "1", "--out", str(ro)]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)
        if real_access is not None:
            run_mod.os.access = real_access


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception):
        main(["--debug", "train", "--data", str(tmp_path / "missing"), "--steps", "1", "--no-progress"])


COND_DIGITS = cli_args.COND_DIGITS


@pytest.mark.slow
@pytest.mark.parametrize("data", [TOY, COND_DIGITS], ids=["toy", "conditional-digits"])
def test_torchrun_two_gloo_processes_equal_single_process(tmp_path, data):
    # The same global batch (8) on 1 process or split 4 + 4 over 2 ranks with one gradient all-reduce per update:
    # the same parameters up to float summation order (conditional: each rank's labels come with its slice).
    # Log ticks, checkpoints and previews on different steps: rank 0 alone writes checkpoints and previews, and once
    # flushed its metrics there (an all-reduce the other rank never joined: gloo "op.preamble.length <= op.nbytes").
    args = [*data, "--no-compile", "--steps", "7", "--log-every", "3", "--checkpoint-every", "2", "--sample-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    r = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "fastwgan",
            "train",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    a, b = checkpoint.load(tmp_path / "one"), checkpoint.load(tmp_path / "two")
    assert_states_equal(a, b, exact=False)
    for x, y in zip(a["history"], b["history"]):  # metrics averaged over ranks = the global batch's
        assert math.isclose(x["critic_loss"], y["critic_loss"], rel_tol=1e-5, abs_tol=1e-7)
    assert r.stdout.count('"run"') == 1  # rank 0 alone reports (and writes the run folder)


def test_reference_trainer_refuses_multi_process(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    with pytest.raises(ValueError, match="single-process"):
        fw.ReferenceTrainer(*fw.models.mlp((2,), 4, hidden=8, depth=1), fw.TrainConfig(batch_size=4, latent_dim=4))
    with pytest.raises(ValueError, match="not divisible by the world size"):
        Trainer(*fw.models.mlp((2,), 4, hidden=8, depth=1), fw.TrainConfig(batch_size=5, latent_dim=4), compile=False)


@pytest.mark.slow
def test_bfloat16_trains_finite_and_converges_on_the_toy():
    from fastwgan.eval.metrics import toy_mode_coverage

    torch.manual_seed(0)
    cfg = fw.TrainConfig.preset("wgan-gp-toy", batch_size=64, lr_d=2e-3, lr_g=2e-3, dtype="bfloat16")
    tr = Trainer(*fw.models.mlp((2,), 2, hidden=64, depth=2), cfg, compile=False, impl="torch")  # (fast on CPU)
    toy = fw.data.toy("8gaussians", 5000, seed=0)
    before = toy_mode_coverage(tr.sample(2000), "8gaussians", n_std=10)
    tr.fit(toy, 100, progress=False)
    after = toy_mode_coverage(tr.sample(2000), "8gaussians", n_std=10)
    assert all(v is None or math.isfinite(v) for h in tr.history for v in h.values())
    assert after["modes_covered"] >= 6 > before["modes_covered"]
    assert after["high_quality"] > before["high_quality"] + 0.05


@pytest.mark.slow
def test_bfloat16_trains_finite_and_converges_on_the_digits():
    torch.manual_seed(0)
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=64, lr_d=1e-3, lr_g=1e-3, dtype="bfloat16", latent_dim=16)
    tr = Trainer(*fw.models.mlp((1, 8, 8), 16, hidden=128, depth=2), cfg, compile=False, impl="torch")
    digits = fw.data.load("digits")
    real = fw.data.to_float(digits)

    def moment_gap(x):  # per-pixel mean and std of the samples vs the data's
        return ((x.mean(0) - real.mean(0)).abs().mean() + (x.std(0) - real.std(0)).abs().mean()).item()

    before = moment_gap(tr.sample(1000))
    tr.fit(digits, 100, progress=False)
    assert all(v is None or math.isfinite(v) for h in tr.history for v in h.values())
    assert moment_gap(tr.sample(1000)) < 0.5 * before
