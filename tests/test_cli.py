"""The `fastwgan` command: train writes a complete run folder, sample reads it back, bad input gets one clear line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import fastwgan
from fastwgan.cli import main
from fastwgan.core import checkpoint

SMALL = ["--batch-size", "8", "--width", "16", "--no-progress", "--log-every", "2", "--no-compile"]


@pytest.mark.slow
def test_train_digits_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    argv = [a for a in SMALL if a != "--no-compile"]  # the default: the fast trainer, compiled
    assert (
        main(
            [
                "train",
                "--data",
                "digits",
                "--steps",
                "4",
                "--out",
                str(out),
                "--sample-every",
                "2",
                "--checkpoint-every",
                "2",
                "--keep-checkpoints",
                "1",
                *argv,
            ]
        )
        == 0
    )
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["trainer"] == "fast"
    assert cfg["config"]["loss"] == "gp" and cfg["config"]["batch_size"] == 8 and cfg["preset"] == "wgan-gp"
    assert cfg["model"]["kind"] == "mlp" and cfg["model"]["data_shape"] == [1, 8, 8]
    assert "torch" in cfg["environment"]
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4]
    assert {"critic_loss", "w_estimate", "gp", "generator_loss", "images_per_s"} <= set(stats[0])
    assert stats[0]["first_step_s"] > 0 and "first_step_s" not in stats[1]  # compile timed apart
    assert stats[0]["threads"] >= 1  # the fast trainer's CPU thread count at that tick
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    grid = Image.open(out / "samples" / "step_000004.png")
    assert grid.size[0] > 8 * 8  # a grid of 8x8 digits
    assert (out / "plots" / "losses.png").stat().st_size > 1000
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["latest.json", "step_000004.json", "step_000004.safetensors"]  # keep=1 pruned step 2
    assert checkpoint.load(out)["step"] == 4


def test_sample_writes_grid_folder_and_npz(tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", "digits", "--steps", "2", "--out", str(out), *SMALL])
    assert main(["sample", "--checkpoint", str(out), "--n", "10", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").mode in ("L", "RGB")
    assert main(["sample", "--checkpoint", str(out), "--n", "7", "--out", str(tmp_path / "imgs")]) == 0
    files = sorted((tmp_path / "imgs").glob("*.png"))
    assert len(files) == 7 and Image.open(files[0]).size == (8, 8)
    assert main(["sample", "--checkpoint", str(out), "--n", "5", "--out", str(tmp_path / "s.npz")]) == 0
    arr = np.load(tmp_path / "s.npz")
    x = arr[arr.files[0]]
    assert x.shape == (5, 1, 8, 8) and x.dtype == np.uint8
    # the same seed gives the same samples; the default seed is fixed by the run
    main(["sample", "--checkpoint", str(out), "--n", "5", "--out", str(tmp_path / "t.npz")])
    assert np.array_equal(np.load(tmp_path / "t.npz")[arr.files[0]], x)


def test_toy_run_writes_scatter_and_points(tmp_path):
    out = tmp_path / "toy"
    assert main(["train", "--data", "toy:8gaussians", "--steps", "2", "--out", str(out), "--toy-n", "500", *SMALL]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"] == "wgan-gp-toy" and cfg["config"]["gp_weight"] == 0.1
    assert (out / "samples" / "step_000002.png").exists()
    assert main(["sample", "--checkpoint", str(out), "--n", "20", "--out", str(tmp_path / "p.npz")]) == 0
    pts = np.load(tmp_path / "p.npz")
    assert pts[pts.files[0]].shape == (20, 2)


def test_clip_preset_from_the_command_line(tmp_path):
    out = tmp_path / "clip"
    assert (
        main(
            [
                "train",
                "--data",
                "toy:25gaussians",
                "--preset",
                "wgan-clip",
                "--steps",
                "2",
                "--out",
                str(out),
                "--toy-n",
                "500",
                "--clip-value",
                "0.05",
                *SMALL[:-1],
                "--trainer",
                "reference",
            ]
        )
        == 0
    )
    assert json.loads((out / "config.json").read_text())["trainer"] == "reference"
    st = checkpoint.load(out)
    assert st["config"]["loss"] == "clip" and st["config"]["clip_value"] == 0.05
    assert all(bool(t.abs().max() <= torch.tensor(0.05)) for t in st["critic"].values())  # c in fp32


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--data", "/nonexistent/path", "--steps", "1"], "/nonexistent/path"),
        (["train", "--data", "toy:9gaussians", "--steps", "1"], "9gaussians"),
        (["train", "--data", "digits", "--steps", "1", "--batch-size", "0"], "TrainConfig.batch_size"),
        (["train", "--data", "digits", "--steps", "1", "--critic-norm", "batch"], "batch norm"),
        (["sample", "--checkpoint", "/nonexistent/run", "--out", "x.png"], "/nonexistent/run"),
    ],
)
def test_bad_input_gives_one_clear_error(argv, needle, capsys, tmp_path):
    argv = [a if a != "x.png" else str(tmp_path / "x.png") for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "fastwgan", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for opt in ("--data", "--preset", "--steps", "--out", "--gp-weight", "--clip-value", "--n-critic", "--betas"):
        assert opt in r.stdout


def test_threads_flag(tmp_path, capsys):
    out = tmp_path / "t1"
    assert (
        main(
            [
                "train",
                "--data",
                "toy:8gaussians",
                "--steps",
                "2",
                "--out",
                str(out),
                "--toy-n",
                "200",
                "--threads",
                "1",
                *SMALL,
            ]
        )
        == 0
    )
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", "toy:8gaussians", "--steps", "1", "--threads", bad, "--out", str(tmp_path / bad)])
        assert e.value.code == 2
        assert "--threads" in capsys.readouterr().err


def test_build_trainer_passes_the_thread_policy():
    from fastwgan.gan.restore import build_trainer

    cfg = fastwgan.TrainConfig.preset("wgan-gp-toy", batch_size=8)
    spec = dict(kind="mlp", data_shape=[2], latent_dim=cfg.latent_dim, hidden=8)
    assert build_trainer(cfg, spec, threads=1).threads.mode == 1
    assert build_trainer(cfg, spec).threads.mode == "auto"
    assert build_trainer(cfg, spec, trainer="reference").threads.mode is None  # the oracle leaves torch alone
