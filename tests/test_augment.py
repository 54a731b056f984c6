"""DiffAugment in training (TrainConfig.augment, fastwgan.ops.augment): both trainers agree, inside the compiled step
with no recompiles; the critic sees the transforms (cutout squares, translation bands); the generator's gradient
passes through them; the penalty is taken on the augmented pair; runs resume bitwise."""

import pytest
import torch
from equivalence import assert_close_params, assert_same_history, fresh_graph_counts, unique_graphs
from hypothesis import given
from hypothesis import strategies as st

import fastwgan as fw
from fastwgan.core.images import to_float
from fastwgan.gan import models
from fastwgan.gan.trainer import Trainer
from fastwgan.ops import twins

POLICIES = ["color", "translation", "cutout", "color,translation,cutout"]


def _data(n=64, c=3, size=8, seed=0):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _make(kind, cfg, shape=(3, 8, 8)):
    torch.manual_seed(0)
    G, D = models.mlp(shape, cfg.latent_dim, hidden=32)
    if kind == "reference":
        return fw.ReferenceTrainer(G, D, cfg)
    # per-update graphs: they compile ~3x faster than the fused iteration (fastwgan.gan.trainer) and hold the same ops
    return Trainer(G, D, cfg, compile=kind == "compiled", threads=1, fuse_iteration=False)


@given(loss=st.sampled_from(["gp", "clip"]), policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**20))
def test_trainers_agree_with_augment(loss, policy, seed):
    cfg = fw.TrainConfig.preset(
        "wgan-gp" if loss == "gp" else "wgan-clip", batch_size=8, n_critic=2, seed=seed, augment=policy
    )
    x = _data(seed=seed)
    ref, fast = _make("reference", cfg).fit(x, 2), _make("eager", cfg).fit(x, 2)
    assert_same_history(ref, fast)
    assert_close_params(ref, fast)


@pytest.mark.slow
def test_compiled_step_with_augment_never_recompiles():
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, n_critic=2, augment="color,translation,cutout")
    x = _data()
    ref = _make("reference", cfg).fit(x, 3)
    fresh_graph_counts()
    fast = _make("compiled", cfg).fit(x, 1)
    graphs = unique_graphs()
    fast.fit(x, 3)  # two more steps, new seeds each call: the seeds are data, not constants
    assert unique_graphs() == graphs
    assert_same_history(ref, fast)
    assert_close_params(ref, fast)


def _critic_inputs(policy, size=16, seed=0):
    """The real batches the critic scores in one step of a run on white images (1.0 everywhere)."""
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=16, n_critic=1, augment=policy, seed=seed)
    t = _make("reference", cfg, shape=(1, size, size))
    seen = []
    hook = t.critic.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    t.fit(torch.full((32, 1, size, size), 255, dtype=torch.uint8), 1)
    hook.remove()
    return [s for s in seen if s.shape[0] == 16][0]  # the first full-batch call: D(T(real))


def test_cutout_is_visible_to_the_critic():
    real = _critic_inputs("cutout")  # (16, 1, 16, 16)
    for img in real[:, 0]:
        zero = img == 0
        assert torch.all(img[~zero] == 1.0)
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8  # a square of side 16 / 2, clipped at the border
        assert zero.sum() == len(rows) * len(cols)  # exactly a rectangle
        assert torch.equal(rows, torch.arange(rows[0], rows[-1] + 1))  # contiguous


def test_translation_is_visible_to_the_critic():
    real = _critic_inputs("translation")
    shifted = 0
    for img in real[:, 0]:
        zero = img == 0
        rows, cols = zero.all(1), zero.all(0)  # zero bands run the whole width / height
        assert torch.equal(zero, rows[:, None] | cols[None, :])  # nothing else is zero
        assert rows.sum() <= 2 and cols.sum() <= 2  # shifts of at most 16 / 8 pixels
        # the bands sit at one edge
        for band in (rows, cols):
            k = int(band.sum())
            assert k == 0 or bool(band[:k].all()) or bool(band[-k:].all())
        shifted += bool(zero.any())
    assert shifted >= 8  # most of the 16 samples moved (5 / 25 of shift pairs are (0, 0) on average)


def test_generator_gradient_flows_through_augment():
    # cutout zeroes a square of the fake before the critic: the generator's output gets no gradient there, and a
    # gradient elsewhere (through T, to G's parameters)
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=4, n_critic=1, augment="cutout", seed=1)
    t = _make("reference", cfg, shape=(1, 16, 16))
    grads = []

    def keep(m, inp, out):
        if out.requires_grad:
            out.register_hook(lambda g: grads.append(g.clone()))

    t.generator.register_forward_hook(keep)
    t.fit(torch.full((8, 1, 16, 16), 200, dtype=torch.uint8), 1)
    (g,) = grads  # the generator update's d loss / d G(z): (4, 1, 16, 16)
    for gi in g[:, 0]:
        zero = gi == 0
        assert 0 < zero.sum() <= 64 and (~zero).sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in t.generator.parameters())


def test_penalty_is_taken_on_the_augmented_pair():
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, n_critic=1, augment="color,translation,cutout")
    t = _make("reference", cfg)
    gen = torch.Generator().manual_seed(3)
    real, z, eps = to_float(_data(8)), torch.randn(8, cfg.latent_dim, generator=gen), torch.rand(8, generator=gen)
    aug = torch.tensor([11, 12])
    D = t.critic
    with torch.no_grad():
        fake = t.generator(z)
    tr, tf = twins.diff_augment(real, aug[0], cfg.augment), twins.diff_augment(fake, aug[1], cfg.augment)
    x_hat = (eps.view(-1, 1, 1, 1) * tr + (1 - eps.view(-1, 1, 1, 1)) * tf).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x_hat).sum(), x_hat)
    want_gp = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    want_w = D(tr).mean() - D(tf).mean()
    m = t.critic_step(real, z, eps, aug=aug)
    torch.testing.assert_close(m["gp"], want_gp.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(m["w_estimate"], want_w.detach(), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_augment_resumes_bitwise(tmp_path):
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, n_critic=2, augment="translation,cutout")
    x = _data()
    whole = _make("eager", cfg).fit(x, 4)
    half = _make("eager", cfg).fit(x, 2)
    fw.checkpoint.save(half.state_dict(), tmp_path, 2)
    twin = _make("eager", cfg)
    twin.load_state_dict(fw.checkpoint.load(tmp_path))
    twin.fit(x, 4)
    for p, q in zip(whole.generator.parameters(), twin.generator.parameters()):
        assert torch.equal(p, q)


def test_augment_needs_images():
    cfg = fw.TrainConfig.preset("wgan-gp-toy", augment="cutout")
    torch.manual_seed(0)
    G, D = models.mlp((2,), cfg.latent_dim, hidden=8)
    with pytest.raises(ValueError, match=r"augment='cutout' transforms images \(N, C, H, W\)"):
        fw.ReferenceTrainer(G, D, cfg).fit(torch.randn(64, 2), 1)


def test_cli_augment(tmp_path, capsys):
    import json

    from fastwgan.cli import main

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                "digits-train",
                "--steps",
                "2",
                "--out",
                str(out),
                "--trainer",
                "reference",
                "--no-progress",
                "--augment",
                "cutout,translation",
                "--width",
                "16",
            ]
        )
        == 0
    )
    assert json.loads((out / "config.json").read_text())["config"]["augment"] == "translation,cutout"
    capsys.readouterr()
    assert (
        main(["train", "--data", "digits-train", "--steps", "2", "--out", str(tmp_path / "bad"), "--augment", "flip"])
        != 0
    )
    assert "TrainConfig.augment: unknown policy 'flip'" in capsys.readouterr().err
