"""Streaming image folders (fastwgan.data.streaming, `fastwgan train --stream`): the streamed images are the ones `load`
gives, bad files are named, the CLI streams when the folder exceeds the memory budget, and memory stays bounded
(peak RSS measured in a subprocess, against loading the folder whole)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastwgan import data
from fastwgan.cli import main
from fastwgan.data import streaming


def _folder(root, n, size=8, classes=("a", "b"), gray_every=0, seed=0):
    r = np.random.default_rng(seed)
    for i in range(n):
        d = root / classes[i % len(classes)] if classes else root
        d.mkdir(parents=True, exist_ok=True)
        a = r.integers(0, 256, (size, size, 3), dtype=np.uint8)
        img = Image.fromarray(a)
        if gray_every and i % gray_every == 0:
            img = img.convert("L")
        img.save(d / f"{i:05d}.png")
    return root


def test_dataset_matches_load(tmp_path):
    folder = _folder(tmp_path / "f", 7, gray_every=3)  # mixed modes: both paths convert every image to RGB
    ds = streaming.ImageFolderDataset(folder, labels=True)
    x, y = data.load(folder, labels=True)
    assert len(ds) == 7 and ds.shape == tuple(x.shape[1:]) and ds.nbytes == x.numel()
    for i in range(7):
        xi, yi = ds[i]
        assert torch.equal(xi, x[i]) and yi == int(y[i])
    gray = streaming.ImageFolderDataset(folder, image_size=5, channels=1)
    want = data.load(folder, image_size=5, channels=1)
    assert torch.equal(torch.stack([gray[i] for i in range(7)]), want) and gray.labels is None


def test_dataset_names_bad_files(tmp_path):
    folder = _folder(tmp_path / "f", 4, classes=())
    (folder / "00002.png").write_bytes(b"not an image")
    with pytest.raises(data.DataError, match="00002.png: corrupt or unreadable"):
        streaming.ImageFolderDataset(folder)
    folder = _folder(tmp_path / "g", 4, size=32, classes=())
    raw = (folder / "00001.png").read_bytes()
    (folder / "00001.png").write_bytes(raw[: len(raw) // 2])  # the header reads, the pixels do not
    ds = streaming.ImageFolderDataset(folder)
    with pytest.raises(data.DataError, match="00001.png: corrupt or truncated"):
        ds[1]
    with pytest.raises(data.DataError, match="no such folder"):
        streaming.ImageFolderDataset(tmp_path / "missing")
    _folder(tmp_path / "h", 2, size=8, classes=())
    Image.new("RGB", (9, 9)).save(tmp_path / "h" / "z.png")
    with pytest.raises(data.DataError, match="different sizes"):
        streaming.ImageFolderDataset(tmp_path / "h")


def _train(tmp_path, folder, *extra, name="run"):
    out = tmp_path / name
    rc = main(
        [
            "train",
            "--data",
            str(folder),
            "--steps",
            "2",
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--trainer",
            "reference",
            "--no-progress",
            "--model",
            "mlp",
            "--width",
            "16",
            "--workers",
            "0",
            *extra,
        ]
    )
    assert rc == 0
    return json.loads((out / "config.json").read_text())["data"]


def test_cli_streams_past_the_budget(tmp_path, capsys):
    folder = _folder(tmp_path / "f", 24)  # 24 x 3 x 8 x 8 = 4608 bytes decoded
    assert _train(tmp_path, folder, "--memory-budget", "1e-6", name="small")["streamed"]  # ~1 KB budget
    assert "streamed from disk" in capsys.readouterr().err
    # a folder that fits the default budget is loaded whole (the decision alone: no training needed)
    from argparse import Namespace

    from fastwgan.cli.train_data import streamed_folder

    args = Namespace(data=str(folder), stream="auto", memory_budget=None, image_size=None, channels=None)
    assert streamed_folder(args, labels=False) is None
    assert isinstance(
        streamed_folder(Namespace(**{**vars(args), "stream": "on"}), labels=False), streaming.ImageFolderDataset
    )
    cond = _train(tmp_path, folder, "--stream", "on", "--conditional", name="cond")
    assert cond["streamed"] and cond["labels"] and cond["shape"] == [24, 3, 8, 8]
    spec = json.loads((tmp_path / "cond" / "config.json").read_text())
    assert spec["config"]["num_classes"] == 2 and spec["data"]["class_names"] == ["a", "b"]
    # resume continues the way the run read its data, at the loader's position
    assert main(["train", "--resume", str(tmp_path / "cond"), "--steps", "4", "--no-progress"]) == 0
    assert json.loads((tmp_path / "cond" / "config.json").read_text())["data"]["streamed"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "digits-train", "--stream", "on"], "--stream on: streaming decodes image folders; digits-train"),
        (["--stream", "on", "--eval-every", "2"], "--eval-every: evaluation reads the whole training set"),
        (["--memory-budget", "0", "--stream", "on"], "--memory-budget: expected a positive size"),
        (["--workers", "-1", "--stream", "on"], "--workers: expected 0 or more"),
    ],
)
def test_cli_stream_errors(tmp_path, capsys, args, message):
    folder = _folder(tmp_path / "f", 4)
    argv = ["train", "--data", str(folder), "--steps", "1", "--out", str(tmp_path / "r"), "--no-progress", *args]
    assert main(argv) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)")
def test_streaming_memory_is_bounded(tmp_path):
    # benchmarks/stream_memory.py at one size: 4000 incompressible 128x128 RGB images (500 distinct, the rest hard
    # links), 188 MiB decoded. Loading whole holds them (two to three times while stacking); streaming holds a few
    # batches of 8. Measured: the growth of the resident set's peak while `main` runs; identical runs vary by tens
    # of MiB (allocator, lazy imports), hence the margins.
    out = tmp_path / "mem.json"
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "benchmarks" / "stream_memory.py"),
            "--sizes",
            "4000",
            "--unique",
            "500",
            "--workdir",
            str(tmp_path),
            "--json",
            str(out),
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    rows = {r["stream"]: r for r in json.loads(out.read_text())["rows"]}
    decoded = rows["off"]["decoded_mib"]
    print(rows)
    assert rows["off"]["peak_growth_mib"] > decoded  # the decoded folder is held
    assert rows["off"]["peak_growth_mib"] - rows["on"]["peak_growth_mib"] > 0.6 * decoded  # and streaming does not
