"""Class-conditional training: the fast trainer equals the reference (both conditioning kinds, clip / gp / lp,
eager and compiled, no recompiles), the labels follow the documented stream, and the API refuses what it cannot
do. Tolerances as in test_trainer.py."""

import math

import cli_args
import pytest
import torch
from equivalence import GRAD_TOL, PRESETS, assert_close_params, assert_same_history, fresh_graph_counts, unique_graphs
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import fastwgan as fw
from fastwgan.cli import inference
from fastwgan.core import rng
from fastwgan.core.images import as_float
from fastwgan.gan.trainer import Trainer

K = 3


class CondG(nn.Module):
    """A small conditional generator: a class embedding concatenated to z."""

    def __init__(self, latent, shape, hidden=16):
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(K, latent)
        self.net = nn.Sequential(nn.Linear(2 * latent, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(shape)))
        self.calls = []  # (grad enabled, y) per call, when recording

    def forward(self, z, y):
        if self.calls is not None:
            self.calls.append((torch.is_grad_enabled(), y.clone()))
        return self.net(torch.cat([z, self.embed(y)], 1)).view(-1, *self.shape)


class CondD(nn.Module):
    """A small conditional critic: projection (Miyato & Koyama 2018) or an auxiliary classifier head."""

    def __init__(self, shape, kind, hidden=16):
        super().__init__()
        self.kind = kind
        self.phi = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), hidden), nn.ReLU())
        self.psi = nn.Linear(hidden, 1)
        self.head = nn.Embedding(K, hidden) if kind == "projection" else nn.Linear(hidden, K)

    def forward(self, x, y):
        h = self.phi(x)
        score = self.psi(h).squeeze(1)
        if self.kind == "projection":
            return score + (self.head(y) * h).sum(1)
        return score, self.head(h)


def make_models(shape, kind, seed, latent=4):
    torch.manual_seed(seed)
    G = CondG(latent, shape)
    G.calls = None
    return G, CondD(shape, kind)


def make_data(shape, n=40):
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, K, (n,), generator=g)
    if len(shape) == 1:
        return torch.randn(n, *shape, generator=g) + labels[:, None].float(), labels
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g), labels


def pair(loss, kind, shape, batch, seed, **fast_kw):
    cfg = fw.TrainConfig.preset(
        PRESETS[loss],
        loss=loss,
        batch_size=batch,
        latent_dim=4,
        seed=seed,
        n_critic=2,
        lr_d=1e-3,
        lr_g=1e-3,
        num_classes=K,
    )
    ref = fw.ReferenceTrainer(*make_models(shape, kind, seed), cfg)
    fast = Trainer(*make_models(shape, kind, seed), cfg, **fast_kw)
    return ref, fast


SHAPES = [(2,), (1, 8, 8), (3, 5, 5)]


@given(
    loss=st.sampled_from(["clip", "gp", "lp"]),
    kind=st.sampled_from(["projection", "acgan"]),
    shape=st.sampled_from(SHAPES),
    batch=st.sampled_from([2, 5, 8]),
    seed=st.integers(0, 3),
)
def test_eager_fast_path_matches_reference(loss, kind, shape, batch, seed):
    ref, fast = pair(loss, kind, shape, batch, seed, compile=False)
    data, labels = make_data(shape)
    ref.fit(data, 3, labels=labels, progress=False)
    fast.fit(data, 3, labels=labels, progress=False)
    assert_same_history(ref, fast)
    assert_close_params(ref, fast)
    has_ac = kind == "acgan"
    assert all((h["ac_loss"] is not None) == has_ac for h in ref.history)


@given(
    loss=st.sampled_from(["clip", "gp", "lp"]),
    kind=st.sampled_from(["projection", "acgan"]),
    shape=st.sampled_from(SHAPES),
    batch=st.sampled_from([3, 8]),
    seed=st.integers(0, 3),
)
def test_first_critic_step_gradients_match(loss, kind, shape, batch, seed):
    ref, fast = pair(loss, kind, shape, batch, seed, compile=False)
    g = torch.Generator().manual_seed(seed)
    data, labels = make_data(shape, n=batch)
    real = as_float(data)
    z, eps = torch.randn(batch, 4, generator=g), torch.rand(batch, generator=g)
    eps = eps if loss != "clip" else None
    flat_grad, aux = fast.critic_gradient(real, z, eps, labels)
    m = ref.critic_step(real, z, eps, labels)
    for (name, p), gv in zip(ref.critic.named_parameters(), fast.flat_d.views(flat_grad)):
        torch.testing.assert_close(gv, p.grad, **GRAD_TOL, msg=lambda s: f"d loss / d {name}: {s}")
    assert set(aux) == set(m)
    for k in m:
        assert math.isclose(aux[k].item(), m[k].item(), rel_tol=1e-5, abs_tol=1e-6), k


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss,kind,fuse", [("gp", "acgan", False), ("clip", "projection", False), ("gp", "projection", True)]
)
def test_compiled_matches_reference_without_recompiling(loss, kind, fuse):
    import torch._dynamo

    fresh_graph_counts()
    ref, fast = pair(loss, kind, (2,), 8, 0, compile=True, fuse_iteration=fuse, threads=1)
    data, labels = make_data((2,))
    ref.fit(data, 4, labels=labels, progress=False)
    fast.fit(data, 1, labels=labels, progress=False)
    graphs = 1 if fuse else 3
    assert unique_graphs() == graphs
    with torch._dynamo.config.patch(error_on_recompile=True):
        fast.fit(data, 4, labels=labels, progress=False)
    assert unique_graphs() == graphs
    assert_same_history(ref, fast)
    assert_close_params(ref, fast)


def test_labels_follow_the_documented_stream():
    # The critic's fakes get the real batch's labels (x_hat interpolates two samples of one class); the generator
    # update's labels are labels[gen_idx], drawn after z_gen (fastwgan/rng.py).
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=4, latent_dim=4, seed=7, n_critic=3, num_classes=K)
    G, D = make_models((2,), "projection", 0)
    G.calls = []
    data, labels = make_data((2,), n=30)
    fw.ReferenceTrainer(G, D, cfg).fit(data, 2, labels=labels, progress=False)
    gen = rng.make_generator(cfg.seed)
    expected = []
    for _ in range(2):
        noise = rng.draw_step(gen, 30, 3, 4, 4, True, True)
        expected += [(False, labels[noise.idx[k]]) for k in range(3)] + [(True, labels[noise.gen_idx])]
    train_calls = [c for c in G.calls if len(c[1]) == 4]  # the sample grids call G on other batch sizes
    assert len(train_calls) == len(expected)
    for (grad_on, y), (want_grad, want_y) in zip(train_calls, expected):
        assert grad_on == want_grad and torch.equal(y, want_y)


def test_generator_labels_follow_the_training_distribution():
    gen = rng.make_generator(0)
    labels = torch.tensor([0] * 90 + [1] * 10)
    drawn = torch.cat([labels[rng.draw_step(gen, 100, 1, 64, 2, False, True).gen_idx] for _ in range(100)])
    assert abs(drawn.float().mean().item() - 0.1) < 0.02  # class 1 is 10% of the data and of the draws


def test_sample_and_score_take_labels():
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=4, latent_dim=4, num_classes=K)
    G, D = make_models((2,), "acgan", 0)
    t = fw.ReferenceTrainer(G, D, cfg)
    data, labels = make_data((2,), n=20)
    t.fit(data, 1, labels=labels, progress=False)
    z = torch.randn(6, 4, generator=t.sample_noise_generator())
    with torch.no_grad():
        assert torch.equal(t.sample(6, labels=2), G(z, torch.full((6,), 2)))
        assert torch.equal(t.sample(6), G(z, torch.arange(6) % K))  # default: balanced, sample i is class i % K
        assert torch.equal(t.sample(6, labels=torch.tensor([0, 1, 2, 2, 1, 0])), G(z, torch.tensor([0, 1, 2, 2, 1, 0])))
    s = t.critic_score(data[:5], labels=labels[:5])
    with torch.no_grad():
        assert torch.allclose(s, D(data[:5], labels[:5])[0])
    for bad, match in [(dict(labels=3), "num_classes"), (dict(labels=torch.tensor([0, 1])), "but 2 labels")]:
        with pytest.raises(ValueError, match=match):
            t.sample(6, **bad)
    with pytest.raises(ValueError, match="give labels="):
        t.critic_score(data[:5])


def test_bad_labels_are_refused_before_training(tmp_path):
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=4, latent_dim=4, num_classes=K)
    data, labels = make_data((2,), n=20)
    t = fw.ReferenceTrainer(*make_models((2,), "projection", 0), cfg)
    with pytest.raises(ValueError, match="fit needs labels="):
        t.fit(data, 1, progress=False)
    bad = labels.clone()
    bad[3] = K
    with pytest.raises(ValueError, match=str(K)):
        t.fit(data, 1, labels=bad, progress=False, out=tmp_path / "r")
    with pytest.raises(ValueError):
        t.fit(data, 1, labels=labels[:10], progress=False)
    assert t.step == 0 and not (tmp_path / "r").exists()
    G, D = fw.models.mlp((2,), 4, hidden=8, depth=1)
    with pytest.raises(ValueError, match="num_classes is None"):
        fw.ReferenceTrainer(G, D, cfg.replace(num_classes=None)).fit(data, 1, labels=labels, progress=False)
    with pytest.raises(ValueError, match="num_classes"):
        fw.TrainConfig(num_classes=1)


def test_a_conditional_run_writes_one_grid_row_per_class(tmp_path):
    from PIL import Image

    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=4, latent_dim=4, num_classes=K)
    data, labels = make_data((1, 8, 8), n=20)
    fw.ReferenceTrainer(*make_models((1, 8, 8), "projection", 0), cfg).fit(
        data, 1, labels=labels, out=tmp_path / "r", progress=False
    )
    w, h = Image.open(tmp_path / "r" / "samples" / "step_000001.png").size
    assert (w, h) == (8 * (32 + 2) + 2, K * (32 + 2) + 2)  # 8 per row, K rows, 8 px digits shown x4


# ---------------------------------------------------------------- the bundled conditional models in both trainers
def bundled(kind, conditioning, seed, latent=4):
    torch.manual_seed(seed)
    if kind == "mlp":
        return fw.models.mlp((1, 8, 8), latent, hidden=16, depth=2, num_classes=K, conditioning=conditioning)
    return fw.models.dcgan(28, 1, latent, width=4, num_classes=K, conditioning=conditioning)  # conditional BN in G


@given(
    loss=st.sampled_from(["clip", "gp"]),
    conditioning=st.sampled_from(["projection", "acgan"]),
    kind=st.sampled_from(["mlp", "dcgan"]),
    batch=st.sampled_from([3, 6]),
    seed=st.integers(0, 3),
)
def test_bundled_conditional_models_match_in_both_trainers(loss, conditioning, kind, batch, seed):
    cfg = fw.TrainConfig.preset(
        PRESETS[loss],
        loss=loss,
        batch_size=batch,
        latent_dim=4,
        seed=seed,
        n_critic=2,
        lr_d=1e-3,
        lr_g=1e-3,
        num_classes=K,
    )
    ref = fw.ReferenceTrainer(*bundled(kind, conditioning, seed), cfg)
    fast = Trainer(*bundled(kind, conditioning, seed), cfg, compile=False)
    assert fast.batch_calls == (kind == "mlp")  # conditional batch norm: one generator call per update
    shape = (1, 8, 8) if kind == "mlp" else (1, 28, 28)
    data, labels = make_data(shape, n=24)
    ref.fit(data, 2, labels=labels, progress=False)
    fast.fit(data, 2, labels=labels, progress=False)
    assert_same_history(ref, fast)
    assert_close_params(ref, fast)


# ---------------------------------------------------------------- the CLI end to end
COND = [*cli_args.COND_DIGITS, *cli_args.REFERENCE]


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    from fastwgan.cli import main

    out = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", *COND, "--conditioning", "acgan", "--steps", "2", "--out", str(out)]) == 0
    return out


def test_cli_trains_samples_and_resumes_a_conditional_run(cond_run, tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from fastwgan.cli import main

    cfg = json.loads((cond_run / "config.json").read_text())
    assert cfg["config"]["num_classes"] == 10 and cfg["model"]["conditioning"] == "acgan"
    assert cfg["data"]["labels"] is True and cfg["data"]["class_names"] == [str(d) for d in range(10)]
    stats = [json.loads(x) for x in (cond_run / "stats.jsonl").read_text().splitlines()]
    assert all(s["ac_loss"] is not None and s["ac_loss"] > 0 for s in stats)
    w, h = Image.open(cond_run / "samples" / "step_000002.png").size
    assert h == 10 * (32 + 2) + 2  # one row per class
    assert main(["sample", str(cond_run), "--per-class", "3", "--out", str(tmp_path / "s.npz")]) == 0
    z = np.load(tmp_path / "s.npz")
    assert z["images"].shape == (30, 1, 8, 8) and z["labels"].tolist() == [d for d in range(10) for _ in range(3)]
    assert main(["sample", str(cond_run), "--per-class", "2", "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [str(d) for d in range(10)]
    assert all(len(list((tmp_path / "f" / str(d)).glob("*.png"))) == 2 for d in range(10))
    x, y = fw.data.load(str(tmp_path / "f"), labels=True)  # ImageFolder layout: read back as labelled data
    assert x.shape == (20, 1, 8, 8) and sorted(y.tolist()) == sorted(list(range(10)) * 2)
    assert main(["sample", str(cond_run), "--class", "7", "--n", "4", "--out", str(tmp_path / "c.npz")]) == 0
    assert np.load(tmp_path / "c.npz")["labels"].tolist() == [7] * 4
    assert main(["train", "--resume", str(cond_run), "--steps", "3", "--no-progress"]) == 0
    assert fw.checkpoint.load(cond_run)["step"] == 3
    capsys.readouterr()
    assert main(["sample", str(cond_run), "--class", "10", "--n", "2", "--out", str(tmp_path / "d.npz")]) == 2
    assert "10" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_evaluates_a_conditional_digits_run(cond_run, capsys):
    import json

    from fastwgan.cli import main

    assert main(["evaluate", str(cond_run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    for key in ("conditional_accuracy", "cas", "fid_classifier_per_class"):
        assert 0 <= m[key] and math.isfinite(m[key]) and key + "_real" in m
    assert m["cas_real"] > 0.95 and len(m["fid_classifier_by_class"]) == 10


def test_cli_scores_a_conditional_run_against_labels(cond_run, tmp_path, capsys):
    from fastwgan.cli import main

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["score", str(cond_run), "digits-heldout", "--out", str(a)]) == 0  # the input's own labels
    assert main(["score", str(cond_run), "digits-heldout", "--class", "3", "--out", str(b)]) == 0
    trainer, _ = fw.load_trainer(cond_run)
    x, y = fw.data.load("digits-heldout", labels=True)
    for path, labels in ((a, y), (b, 3)):
        _, scores = inference.read_scores_csv(path)
        torch.testing.assert_close(scores.float(), -trainer.critic_score(x, labels=labels), rtol=1e-6, atol=1e-6)
    capsys.readouterr()
    npy = tmp_path / "x.npy"
    import numpy as np

    np.save(npy, x.numpy())
    assert main(["score", str(cond_run), str(npy)]) == 2  # no labels in a .npy and no --class
    assert "--class K" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--data", "toy:8gaussians", "--conditional"], "has no labels"),
        (["--data", "stacked-digits", "--conditional"], "stacked-digits"),
    ],
)
def test_cli_refuses_unlabelled_sources(argv, needle, tmp_path, capsys):
    from fastwgan.cli import main

    assert main(["train", *argv, "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not (tmp_path / "r").exists()
