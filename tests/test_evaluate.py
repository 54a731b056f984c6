"""`fastwgan evaluate`, `score`, streamed `sample`, `train --eval-every`, and the digit classifier's cache."""

import json

import numpy as np
import pytest
import torch

from fastwgan import data, load_trainer
from fastwgan.cli import inference, main
from fastwgan.eval import classifier

SMALL = ["--batch-size", "8", "--width", "16", "--no-progress", "--log-every", "2", "--no-compile"]


@pytest.fixture(autouse=True)
def quick_classifier(monkeypatch):
    monkeypatch.setattr(classifier, "EPOCHS", 1)  # the cache key holds the epochs, so runs never mix them


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "--data", "digits-train", "--steps", "2", "--out", str(out), *SMALL]) == 0
    return out


def test_evaluate_toy_run_writes_metrics_json(tmp_path, capsys):
    out = tmp_path / "toy"
    assert (
        main(["train", "--data", "toy:25gaussians", "--steps", "2", "--toy-n", "500", "--out", str(out), *SMALL]) == 0
    )
    assert main(["evaluate", str(out), "--n", "400"]) == 0
    table = capsys.readouterr().out
    assert "modes covered" in table and "high-quality fraction" in table
    m = json.loads((out / "metrics.json").read_text())
    assert m["step"] == 2 and m["source"] == "toy:25gaussians"
    assert m["metrics"]["modes"] == 25 and 0 <= m["metrics"]["modes_covered"] <= 25
    assert m["metrics"]["high_quality_real"] > 0.95 and m["metrics"]["swd"] > m["metrics"]["swd_real"]


def test_evaluate_digits_run_reports_classifier_fid_next_to_real(digits_run, capsys):
    assert main(["evaluate", str(digits_run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert m["n"] == 500 and m["fid_classifier"] > m["fid_classifier_real"] >= 0  # 2 steps: far from real
    assert m["swd"] > m["swd_real"] > 0
    assert (digits_run / "eval" / classifier.FILE).is_file()  # cached in the run folder
    assert main(["evaluate", str(digits_run), "--json"]) == 0  # reuses the cache: the same numbers
    assert json.loads(capsys.readouterr().out)["metrics"] == m


def test_evaluate_stacked_digits_counts_modes_of_1000(tmp_path, capsys):
    out = tmp_path / "stacked"
    assert main(["train", "--data", "stacked-digits", "--steps", "2", "--out", str(out), *SMALL]) == 0
    capsys.readouterr()  # train's own JSON line
    assert main(["evaluate", str(out), "--n", "2000", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert m["modes"] == 1000 and 0 <= m["modes_covered"] <= 1000 and m["kl_uniform"] >= 0
    assert m["modes_covered_real"] > 300  # 2000 real samples hit ~865 modes; a 1-epoch classifier misreads some


def test_digit_classifier_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTWGAN_CACHE", str(tmp_path / "user"))  # an empty user cache for this test
    model, info = classifier.digit_classifier(tmp_path / "run1")
    again, info2 = classifier.digit_classifier(tmp_path / "run1")
    assert not info["cached"] and info2["cached"] and info2["heldout_accuracy"] == info["heldout_accuracy"]
    # trained once: a new run folder finds it in the user cache and keeps a copy beside its metrics
    third, info3 = classifier.digit_classifier(tmp_path / "run2")
    assert info3["cached"] and (tmp_path / "run2" / classifier.FILE).is_file()
    (tmp_path / "user" / classifier.FILE).write_bytes(b"corrupt")
    monkeypatch.setenv("FASTWGAN_CACHE", "")  # no user cache at all
    assert classifier.user_cache() is None and classifier.digit_classifier(tmp_path / "run2")[1]["cached"]
    x = data.digits_split("heldout")[0][:20]
    torch.testing.assert_close(classifier.features(model, x), classifier.features(again, x))
    stacked, modes = data.stacked_digits(10, seed=3)
    assert classifier.predict_stacked(model, stacked).shape == (10,)


def test_score_csv_round_trip(digits_run, tmp_path):
    x = data.digits_split("heldout")[0][:13]
    np.save(tmp_path / "in.npy", x.numpy())
    assert (
        main(["score", "--checkpoint", str(digits_run), str(tmp_path / "in.npy"), "--out", str(tmp_path / "s.csv")])
        == 0
    )
    names, scores = inference.read_scores_csv(tmp_path / "s.csv")
    trainer, _ = load_trainer(digits_run)
    assert names == [f"in.npy[{i}]" for i in range(13)]  # the array's name and the row
    torch.testing.assert_close(scores, -trainer.critic_score(x).double(), rtol=1e-7, atol=1e-7)  # higher = anomalous
    # an image folder: names are the file names, in load order
    data.save_image_folder(x[:3], tmp_path / "imgs")
    assert (
        main(["score", "--checkpoint", str(digits_run), str(tmp_path / "imgs"), "--out", str(tmp_path / "f.csv")]) == 0
    )
    names, folder_scores = inference.read_scores_csv(tmp_path / "f.csv")
    assert names == ["000000.png", "000001.png", "000002.png"]
    torch.testing.assert_close(folder_scores, scores[:3], rtol=1e-7, atol=1e-7)


def test_write_scores_csv_rejects_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="names"):
        inference.write_scores_csv(tmp_path / "x.csv", ["a"], torch.zeros(2))


@pytest.mark.parametrize("n, batch", [(10, 4), (7, 7), (5, 1024)])
def test_sample_batching_writes_exactly_n(digits_run, tmp_path, n, batch):
    npz, folder = tmp_path / "s.npz", tmp_path / "imgs"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(digits_run),
                "--n",
                str(n),
                "--batch-size",
                str(batch),
                "--out",
                str(npz),
                "--no-progress",
            ]
        )
        == 0
    )
    with np.load(npz) as z:
        assert z.files == ["images"] and z["images"].shape == (n, 1, 8, 8) and z["images"].dtype == np.uint8
        arr = z["images"]
    assert data.load(str(npz)).shape == (n, 1, 8, 8)  # the dataset's format: load reads it back
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(digits_run),
                "--n",
                str(n),
                "--batch-size",
                str(batch),
                "--out",
                str(folder),
                "--no-progress",
            ]
        )
        == 0
    )
    files = sorted(folder.glob("*.png"))
    assert len(files) == n
    assert np.array_equal(data.load(str(folder)).numpy(), arr)  # same seed, same batches, same images
    assert not list(tmp_path.glob("*.npy"))  # the temporary memmap is gone


def test_write_samples_streams_batches(digits_run, tmp_path, monkeypatch):
    trainer, _ = load_trainer(digits_run)
    seen = []
    real = trainer.sample_from
    monkeypatch.setattr(trainer, "sample_from", lambda z, bs=1024, y=None: seen.append(len(z)) or real(z, bs, y=y))
    inference.write_samples(trainer, 11, tmp_path / "x.npz", batch_size=4, progress=False, data_shape=(1, 8, 8))
    assert seen == [4, 4, 3]  # never more than one batch of noise or images at a time


def test_toy_samples_to_npz_and_score(tmp_path):
    out = tmp_path / "toy"
    main(["train", "--data", "toy:8gaussians", "--steps", "2", "--toy-n", "300", "--out", str(out), *SMALL])
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(out),
                "--n",
                "9",
                "--batch-size",
                "4",
                "--out",
                str(tmp_path / "p.npz"),
                "--no-progress",
            ]
        )
        == 0
    )
    with np.load(tmp_path / "p.npz") as z:
        assert z["x"].shape == (9, 2) and z["x"].dtype == np.float32
    assert main(["score", "--checkpoint", str(out), str(tmp_path / "p.npz"), "--out", str(tmp_path / "s.csv")]) == 0
    assert len(inference.read_scores_csv(tmp_path / "s.csv")[0]) == 9


@pytest.mark.slow
def test_train_eval_every_logs_metrics_into_stats(tmp_path):
    out = tmp_path / "toy"
    assert (
        main(
            [
                "train",
                "--data",
                "toy:25gaussians",
                "--steps",
                "5",
                "--toy-n",
                "300",
                "--out",
                str(out),
                "--eval-every",
                "4",
                *SMALL,
            ]
        )
        == 0
    )
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4, 5]
    assert "eval_modes_covered" not in stats[0]
    assert {"eval_modes_covered", "eval_high_quality", "eval_swd", "eval_w_estimate_heldout"} <= set(stats[1])
    assert "eval_modes_covered" in stats[2]  # the last step is always evaluated


def test_evaluate_and_sample_a_given_checkpoint(digits_run, tmp_path, capsys):
    step = digits_run / "checkpoints" / "step_000002.json"
    assert main(["evaluate", str(digits_run), "--checkpoint", str(step), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert (digits_run / "eval" / "metrics_step_000002.json").is_file()
    assert (
        main(["sample", "--checkpoint", str(step), "--n", "3", "--out", str(tmp_path / "s.npz"), "--no-progress"]) == 0
    )


def test_digits_split_is_fixed_disjoint_and_loadable():
    (xt, _), (xh, _) = data.digits_split("train"), data.digits_split("heldout")
    assert len(xt) == 1297 and len(xh) == 500
    both = np.concatenate([xt.reshape(len(xt), -1).numpy(), xh.reshape(len(xh), -1).numpy()])
    x_all = data.load_digits().reshape(1797, -1).numpy()
    assert sorted(map(bytes, both)) == sorted(map(bytes, x_all))  # a partition of the bundled set (as a multiset)
    assert torch.equal(data.load("digits-train"), xt) and torch.equal(data.load("digits-heldout"), xh)
    assert torch.equal(data.digits_split("train")[0], xt)  # fixed
    assert data.load("stacked-digits").shape == (data.STACKED_SIZE, 3, 8, 8)
    with pytest.raises(data.DataError, match="part"):
        data.digits_split("test")


class _OneMode(torch.nn.Module):
    """A generator that puts every sample on one of the 25 modes."""

    def __init__(self):
        super().__init__()
        self.centre = torch.nn.Parameter(data.toy_modes("25gaussians")[0][12].clone())

    def forward(self, z):
        return self.centre + 0.01 * z[:, :2]


def test_one_mode_generator_scores_one_of_25_through_evaluate():
    import fastwgan as fw
    from fastwgan.eval.evaluate import evaluate_trainer

    cfg = fw.TrainConfig.preset("wgan-gp-toy", device="cpu")
    critic = fw.models.mlp(data_shape=(2,), latent_dim=cfg.latent_dim, hidden=8)[1]
    m = evaluate_trainer(fw.ReferenceTrainer(_OneMode(), critic, cfg), "toy:25gaussians", n=2000)
    assert m["modes_covered"] == 1 and m["high_quality"] > 0.99 and m["high_quality_real"] > 0.98
