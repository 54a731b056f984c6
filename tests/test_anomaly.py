"""f-AnoGAN (fastwgan.uses.anomaly): the izi_f loss and score on an analytic case, G and D frozen, the fast encoder
trainer
against its eager twin, exact resume, one score convention (higher = more anomalous) for fanogan / critic / knn,
and the CLI (`fastwgan encode`, `fastwgan score --method`) end to end with its refusals."""

import json

import pytest
import torch
from torch import nn

import fastwgan as fw
from fastwgan.cli import inference, main
from fastwgan.core.guards import DivergenceError
from fastwgan.gan import models
from fastwgan.uses import anomaly


def _linear(w: torch.Tensor) -> nn.Linear:
    m = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        m.weight.copy_(w)
    return m


def _analytic():
    """G(z) = z, f(x) = A x (the critic's first layer), E(x) = x / 2, on 2-D points."""
    a = torch.tensor([[1.0, 2.0], [0.0, 3.0], [-1.0, 1.0]])
    G = models.Generator(_linear(torch.eye(2)), 2, (2,))
    D = models.Critic(nn.Sequential(_linear(a), _linear(torch.ones(1, 3))), (2,))
    E = anomaly.Encoder(nn.Identity(), 2, 2, (2,))
    with torch.no_grad():
        E.head.weight.copy_(0.5 * torch.eye(2))
        E.head.bias.zero_()
    return G, D, E, a


def test_loss_and_score_formulas():
    G, D, E, a = _analytic()
    x = torch.tensor([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]])
    et = anomaly.ReferenceEncoderTrainer(G, D, E, anomaly.EncoderConfig(kappa=2.0, lr=1e-3))
    s = et.score(x)
    img = ((0.5 * x) ** 2).mean(1)  # x - G(E(x)) = x / 2
    feat = ((0.5 * x @ a.T) ** 2).mean(1)  # f(x) - f(G(E(x))) = A x / 2
    torch.testing.assert_close(s["image"], img.double())
    torch.testing.assert_close(s["feature"], feat.double())
    torch.testing.assert_close(s["score"], (img + 2.0 * feat).double())
    # one training step's loss is the batch mean of the same residuals
    m = et._train_step(x)
    torch.testing.assert_close(m["loss"], (img + 2.0 * feat).mean())
    # the feature layer of a user critic, read through a hook, is the same f
    f = anomaly.critic_features(D, "body.0")
    torch.testing.assert_close(f(x), x @ a.T)
    with pytest.raises(ValueError, match="no submodule 'body.9'"):
        anomaly.critic_features(D, "body.9")
    with pytest.raises(ValueError, match="no features"):
        anomaly.critic_features(nn.Sequential(nn.Linear(2, 1)))


def _digits_gan(steps=20, seed=0):
    x, y = fw.data.digits_split("train")
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed)
    torch.manual_seed(seed)
    G, D = models.mlp((1, 8, 8), cfg.latent_dim, hidden=32)
    return fw.Trainer(G, D, cfg, compile=False).fit(x[y != 3], steps), x[y != 3]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["eager", "compiled"])
def test_fast_encoder_matches_reference_and_freezes_the_gan(kind):
    gan, x = _digits_gan()
    G, D = gan.generator, gan.critic
    before = [p.detach().clone() for p in list(G.parameters()) + list(D.parameters())]
    D.train()
    cfg = anomaly.EncoderConfig(seed=4, batch_size=16)
    ref = anomaly.ReferenceEncoderTrainer(G, D, anomaly.encoder_for(G.spec, seed=1), cfg).fit(x, 12, log_every=4)
    fast = anomaly.EncoderTrainer(G, D, anomaly.encoder_for(G.spec, seed=1), cfg, compile=kind == "compiled")
    fast.fit(x, 12, log_every=4)
    for r, f in zip(ref.history, fast.history):
        for key in ("loss", "image", "feature"):
            assert r[key] == pytest.approx(f[key], rel=1e-4, abs=1e-6), key
    for p, q in zip(ref.encoder.parameters(), fast.encoder.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    after = list(G.parameters()) + list(D.parameters())
    assert all(torch.equal(b, p) for b, p in zip(before, after))  # G and D bitwise unchanged
    assert all(p.grad is None for p in after)  # and given no gradients
    assert D.training  # their modes are restored after training


@pytest.mark.slow
def test_encoder_resume_is_bitwise(tmp_path):
    gan, x = _digits_gan()
    G, D = gan.generator, gan.critic
    cfg = anomaly.EncoderConfig(batch_size=16)
    whole = anomaly.EncoderTrainer(G, D, anomaly.encoder_for(G.spec), cfg, compile=False).fit(x, 10)
    half = anomaly.EncoderTrainer(G, D, anomaly.encoder_for(G.spec), cfg, compile=False)
    half.fit(x, 5, out=tmp_path / "enc")
    twin = anomaly.EncoderTrainer(G, D, anomaly.encoder_for(G.spec), cfg, compile=False)
    twin.load_state_dict(fw.checkpoint.load(tmp_path / "enc"))
    twin.fit(x, 10)
    assert all(torch.equal(p, q) for p, q in zip(whole.encoder.parameters(), twin.encoder.parameters()))
    assert (tmp_path / "enc" / "stats.jsonl").read_text().count("\n") == 1
    with pytest.raises(ValueError, match="another config"):
        anomaly.EncoderTrainer(
            G, D, anomaly.encoder_for(G.spec), anomaly.EncoderConfig(kappa=2.0), compile=False
        ).load_state_dict(fw.checkpoint.load(tmp_path / "enc"))


def test_divergence_and_bad_input_are_named():
    gan, x = _digits_gan(steps=2)
    G, D = gan.generator, gan.critic
    et = anomaly.EncoderTrainer(G, D, anomaly.encoder_for(G.spec), compile=False)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 8, 8\)"):
        et.fit(torch.zeros(10, 1, 9, 9), 2)
    with pytest.raises(ValueError, match="NaN"):
        et.score(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="positive finite"):
        anomaly.EncoderConfig(lr=0.0)
    bad = anomaly.EncoderTrainer(
        models.Generator(
            nn.Sequential(nn.Linear(gan.config.latent_dim, 64), nn.Hardtanh(float("nan"), float("nan"))),
            gan.config.latent_dim,
            (1, 8, 8),
        ),
        D,
        anomaly.encoder_for(G.spec),
        compile=False,
    )
    with pytest.raises(DivergenceError, match="at step 1: loss is nan"):  # the first bad step, found at
        bad.fit(x, 4, log_every=2)  # the tick of step 2


@pytest.mark.slow
def test_score_convention_for_every_method():
    gan, x = _digits_gan()
    held = fw.data.digits_split("heldout")[0][:40]
    crit = anomaly.score("critic", held, trainer=gan)["score"]
    torch.testing.assert_close(crit, -gan.critic_score(held).double())  # minus "more like the data"
    # knn: a training image scores 0, brute force agrees, chunks and a DataLoader give the same numbers
    k2 = anomaly.score("knn", held, train=x, k=2)["score"]
    d = torch.cdist(fw.data.to_float(held).flatten(1).double(), fw.data.to_float(x).flatten(1).double())
    torch.testing.assert_close(k2, d.topk(2, largest=False).values.mean(1))
    torch.testing.assert_close(anomaly.knn_scores(x, held, k=2, chunk=7), k2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=100)
    torch.testing.assert_close(anomaly.knn_scores(loader, held, k=2), k2)
    assert anomaly.knn_scores(x, x[:5]).abs().max() < 1e-6  # (cdist in double, through a matrix product)
    # fanogan: the encoder's own score
    et = anomaly.EncoderTrainer(gan.generator, gan.critic, anomaly.encoder_for(gan.generator.spec), compile=False).fit(
        x, 5
    )
    fan = anomaly.score("fanogan", held, encoder_trainer=et)
    torch.testing.assert_close(fan["score"], fan["image"] + fan["feature"])
    # (the residuals themselves grow with the distance from what G can make: test_loss_and_score_formulas)
    noise = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert anomaly.score("knn", noise, train=x)["score"].min() > anomaly.score("knn", held, train=x)["score"].max()
    with pytest.raises(ValueError, match="method must be one of"):
        anomaly.score("mahalanobis", held)
    with pytest.raises(ValueError, match="fastwgan encode"):
        anomaly.score("fanogan", held)
    with pytest.raises(ValueError, match="training images of shape"):
        anomaly.knn_scores(x, torch.zeros(2, 1, 9, 9))


def test_cli_encode_and_score(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "digits-train",
                "--steps",
                "4",
                "--out",
                str(run),
                "--width",
                "16",
                "--trainer",
                "reference",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["score", str(run), "digits-heldout", "--method", "fanogan"]) == 2
    assert f"train one with `fastwgan encode {run}`" in capsys.readouterr().err
    assert main(["encode", str(run), "--steps", "6", "--no-compile", "--no-progress", "--batch-size", "16"]) == 0
    info = json.loads((run / "encoder" / "config.json").read_text())
    assert info["gan_step"] == 4 and info["config"]["kappa"] == 1.0
    capsys.readouterr()
    assert main(["encode", str(run), "--steps", "8"]) == 2  # refuse, naming what the user meant
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err
    assert main(["encode", str(run), "--steps", "8", "--resume", "--no-compile", "--no-progress"]) == 0
    for method in ("fanogan", "critic", "knn"):
        out = tmp_path / f"{method}.csv"
        args = ["score", str(run), "digits-heldout", "--method", method, "--out", str(out)]
        assert main(args + (["--maps", str(tmp_path / "maps.png")] if method == "fanogan" else [])) == 0
        header = out.read_text().splitlines()[0]
        # digits-heldout carries labels: the CSV keeps them beside the score
        assert header == ("index,name,score,label,image,feature" if method == "fanogan" else "index,name,score,label")
        names, scores = inference.read_scores_csv(out)
        assert len(names) == 500 and bool(torch.isfinite(scores).all())
    assert (tmp_path / "maps.png").stat().st_size > 0
    trainer, _ = fw.load_trainer(run)
    _, crit = inference.read_scores_csv(tmp_path / "critic.csv")
    torch.testing.assert_close(
        crit.float(), -trainer.critic_score(fw.data.load("digits-heldout")), rtol=1e-6, atol=1e-6
    )
    # the GAN moves on: the encoder no longer inverts it, and score says so
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["score", str(run), "digits-heldout", "--method", "fanogan"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["score", str(run), "digits-heldout", "--maps", str(tmp_path / "m.png")]) == 2
    assert "--method fanogan" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_runs_on_idx_files(tmp_path):
    # benchmarks/anomaly_digits.py reads real MNIST the same way; here a tiny IDX pair of 8x8 digits it writes
    import subprocess
    import sys
    from pathlib import Path

    from datafiles import idx_bytes

    x, y = fw.data.digits_split("train")
    xs, ys = fw.data.digits_split("heldout")
    for name, (a, b) in {"train": (x[:300], y[:300]), "t10k": (xs[:100], ys[:100])}.items():
        (tmp_path / f"{name}-images-idx3-ubyte").write_bytes(idx_bytes(a[:, 0].numpy()))
        (tmp_path / f"{name}-labels-idx1-ubyte").write_bytes(idx_bytes(b.numpy().astype("uint8")))
    script = Path(__file__).parents[1] / "benchmarks" / "anomaly_digits.py"
    out = tmp_path / "r.json"
    p = subprocess.run(
        [
            sys.executable,
            str(script),
            "--quick",
            "--no-compile",
            "--protocols",
            "all-vs-one",
            "--digits",
            "3",
            "--data",
            str(tmp_path / "train-images-idx3-ubyte"),
            "--test-data",
            str(tmp_path / "t10k-images-idx3-ubyte"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["digit"] == 3 and row["n_train"] == int((y[:300] != 3).sum())
    assert row["n_anomalous"] == int((ys[:100] == 3).sum())
    assert all(0 <= row[m] <= 1 for m in ("fanogan", "critic", "knn"))
    assert "| 3 |" in p.stdout

    # the other protocol without f-AnoGAN, then the runs merged: one with both, refused where settings differ
    def bench(*args):
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600)

    train, test = (str(tmp_path / f"{n}-images-idx3-ubyte") for n in ("train", "t10k"))
    quick = ["--quick", "--no-compile", "--digits", "3", "--data", train, "--test-data", test]
    for name, extra in {"ovr": ["--no-fanogan"], "ovr_f": []}.items():
        q = bench(*quick, "--protocols", "one-vs-rest", *extra, "--json", str(tmp_path / f"{name}.json"))
        assert q.returncode == 0, q.stderr[-2000:]
    (ovr,) = json.loads((tmp_path / "ovr.json").read_text())["rows"]
    assert "fanogan" not in ovr and "fanogan" not in ovr["runs"][0] and {"critic", "critic-knn"} <= set(ovr)
    assert ovr["n_train"] == int((y[:300] == 3).sum())
    q = bench("--merge", str(tmp_path / "ovr_f.json"), str(out), "--json", str(tmp_path / "both.json"))
    assert q.returncode == 0, q.stderr[-2000:]
    both = json.loads((tmp_path / "both.json").read_text())
    assert [r["protocol"] for r in both["rows"]] == ["all-vs-one", "one-vs-rest"]
    assert both["settings"]["protocols"] == ["all-vs-one", "one-vs-rest"]
    q = bench("--merge", str(out), str(tmp_path / "ovr.json"))
    assert q.returncode != 0 and "no_fanogan" in q.stderr
    # another seed of the same row: its runs join the row's, the figures over all of them; a seed twice is refused
    kept = str(tmp_path / "kept")
    s1_args = [*quick, "--protocols", "one-vs-rest", "--no-fanogan", "--seeds", "1"]
    q = bench(*s1_args, "--keep", kept, "--json", str(tmp_path / "s1.json"))
    assert q.returncode == 0, q.stderr[-2000:]
    (s1,) = json.loads((tmp_path / "s1.json").read_text())["rows"]
    # the kept critics scored again (no training): the same figures; another critic-knn setting is another result
    q = bench(*s1_args, "--from-critics", kept, "--json", str(tmp_path / "again.json"))
    assert q.returncode == 0, q.stderr[-2000:]
    (again,) = json.loads((tmp_path / "again.json").read_text())["rows"]
    assert [r["critic-knn"] for r in again["runs"]] == [r["critic-knn"] for r in s1["runs"]]
    assert again["knn-k5"] == s1["knn-k5"] and 0 <= s1["knn-k5"] <= 1
    other = ["--critic-knn-k", "2", "--critic-knn-norm", "l2", "--critic-knn-pixels", "no"]
    q = bench(*s1_args, "--from-critics", kept, *other, "--json", str(tmp_path / "k2.json"))
    assert q.returncode == 0, q.stderr[-2000:]
    settings = json.loads((tmp_path / "k2.json").read_text())["settings"]["critic_knn"]
    assert settings == {"k": 2, "normalize": True, "pixels": False}
    q = bench("--merge", str(tmp_path / "s1.json"), str(tmp_path / "k2.json"))
    assert q.returncode != 0 and "critic_knn" in q.stderr
    q = bench("--merge", str(tmp_path / "ovr.json"), str(tmp_path / "s1.json"), "--json", str(tmp_path / "seeds.json"))
    assert q.returncode == 0, q.stderr[-2000:]
    (row,) = json.loads((tmp_path / "seeds.json").read_text())["rows"]
    assert sorted({r["seed"] for r in row["runs"]}) == [0, 1] and len(row["runs"]) == 4
    want = (sum(r["critic-knn"] for r in ovr["runs"] + s1["runs"])) / 4
    assert row["critic-knn"] == pytest.approx(want) and row["knn"] == ovr["knn"]
    q = bench("--merge", str(tmp_path / "ovr.json"), str(tmp_path / "ovr.json"))
    assert q.returncode != 0 and "seed 0 measured twice" in q.stderr
