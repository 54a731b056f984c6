"""The reference trainer pins the algorithms: these tests check the maths of Algorithm 1, not just that it runs."""

import math

import pytest
import torch
from torch import nn

import fastwgan as fw
from fastwgan.core import rng


class Linear(nn.Module):
    """D(x) = w . flatten(x) + b: grad_x D = w for every sample, so the penalty is (||w|| - 1)^2."""

    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, 1)

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(1)


class Quadratic(nn.Module):
    """D(x) = 0.5 * sum(a * x^2) over C, H, W: grad_x D = a * x differs per sample and per position."""

    def __init__(self, shape):
        super().__init__()
        self.a = nn.Parameter(torch.linspace(0.5, 2.0, math.prod(shape)).reshape(shape))

    def forward(self, x):
        return 0.5 * (self.a * x * x).flatten(1).sum(1)


class Recorder(nn.Module):
    """Wraps a critic and keeps every input it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def tiny_mlp(shape=(2,), latent=4, seed=0, norm="none"):
    torch.manual_seed(seed)
    return fw.models.mlp(data_shape=shape, latent_dim=latent, hidden=16, depth=2, critic_norm=norm)


def gp_config(**kw):
    return fw.TrainConfig.preset("wgan-gp", **{"batch_size": 8, "latent_dim": 4, **kw})


def test_linear_critic_penalty_is_analytic():
    torch.manual_seed(0)
    G, _ = tiny_mlp(shape=(1, 3, 5), latent=4)
    D = Linear(15)
    with torch.no_grad():
        D.lin.weight.mul_(7.0)  # make ||w|| far from 1
    t = fw.ReferenceTrainer(G, D, gp_config())
    w = D.lin.weight.detach().clone().reshape(-1)
    real, z, eps = torch.randn(8, 1, 3, 5), torch.randn(8, 4), torch.rand(8)
    with torch.no_grad():
        fake = G(z)
    m = t.critic_step(real, z, eps)
    assert m["gp"].item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    assert m["grad_norm"].item() == pytest.approx(w.norm().item(), rel=1e-6)
    # The critic's gradient: d/dw [mean D(fake) - mean D(real) + lambda (||w|| - 1)^2]
    expect = fake.flatten(1).mean(0) - real.flatten(1).mean(0) + 10.0 * 2 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(D.lin.weight.grad.reshape(-1), expect, rtol=1e-5, atol=1e-5)


def test_one_sided_penalty_is_zero_inside_the_unit_ball():
    G, _ = tiny_mlp(shape=(6,))
    D = Linear(6)
    with torch.no_grad():
        D.lin.weight.fill_(0.1)  # ||w|| < 1
    t = fw.ReferenceTrainer(G, D, gp_config(loss="lp"))
    m = t.critic_step(torch.randn(8, 6), torch.randn(8, 4), torch.rand(8))
    assert m["gp"].item() == 0.0
    t2 = fw.ReferenceTrainer(G, Linear(6), gp_config(loss="gp"))
    with torch.no_grad():
        t2.critic.lin.weight.fill_(0.1)
    assert t2.critic_step(torch.randn(8, 6), torch.randn(8, 4), torch.rand(8))["gp"].item() > 0.5


def test_eps_is_one_per_sample_broadcast_over_chw():
    G, _ = tiny_mlp(shape=(3, 4, 5))
    D = Recorder(Linear(60))
    t = fw.ReferenceTrainer(G, D, gp_config())
    real = torch.zeros(8, 3, 4, 5)
    eps = torch.rand(8)
    with torch.no_grad():
        fake = G(torch.ones(8, 4))
    t.critic_step(real, torch.ones(8, 4), eps)
    x_hat = D.seen[2]  # calls: D(real), D(fake), D(x_hat)
    torch.testing.assert_close(x_hat, (1 - eps).view(8, 1, 1, 1) * fake)
    # and the stream draws exactly one eps per sample per critic update
    noise = rng.draw_step(rng.make_generator(0), 100, n_critic=5, batch_size=8, latent_dim=4, with_eps=True)
    assert noise.eps.shape == (5, 8) and noise.z.shape == (5, 8, 4) and noise.idx.shape == (5, 8)


def test_penalty_norm_is_per_sample_over_all_non_batch_dims():
    shape = (2, 3, 4)
    G, _ = tiny_mlp(shape=shape)
    D = Quadratic(shape)
    t = fw.ReferenceTrainer(G, D, gp_config())
    real, z, eps = torch.randn(8, *shape), torch.randn(8, 4), torch.rand(8)
    with torch.no_grad():
        fake = G(z)
        x_hat = eps.view(8, 1, 1, 1) * real + (1 - eps.view(8, 1, 1, 1)) * fake
        norms = torch.sqrt(((D.a * x_hat) ** 2).sum(dim=(1, 2, 3)))  # (B,)
    m = t.critic_step(real, z, eps)
    assert m["gp"].item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-5)
    assert m["grad_norm"].item() == pytest.approx(norms.mean().item(), rel=1e-5)


def test_every_critic_parameter_is_clipped_after_every_critic_update(monkeypatch):
    cfg = fw.TrainConfig.preset("wgan-clip", batch_size=8, latent_dim=4, lr_d=0.05, clip_value=0.02)
    G, D = tiny_mlp(seed=1)
    t = fw.ReferenceTrainer(G, D, cfg)
    calls = []
    orig = fw.ReferenceTrainer.critic_step

    def checked(self, *a):
        out = orig(self, *a)
        calls.append(max(p.abs().max().item() for p in self.critic.parameters()))
        return out

    monkeypatch.setattr(fw.ReferenceTrainer, "critic_step", checked)
    t.fit(fw.data.toy("8gaussians", n=256, seed=0), steps=3, progress=False)
    assert len(calls) == 15 and all(c <= 0.02 for c in calls)
    assert max(calls) == pytest.approx(0.02)  # lr 0.05 pushes weights to the boundary: clipping really ran


@pytest.mark.parametrize("loss", ["clip", "gp"])
def test_a_critic_update_raises_the_w_estimate_on_a_fixed_batch(loss):
    preset = "wgan-clip" if loss == "clip" else "wgan-gp"
    G, D = tiny_mlp(seed=2)
    t = fw.ReferenceTrainer(G, D, fw.TrainConfig.preset(preset, batch_size=64, latent_dim=4, lr_d=1e-3))
    g = torch.Generator().manual_seed(0)
    real, z, eps = torch.randn(64, 2, generator=g) + 2.0, torch.randn(64, 4, generator=g), torch.rand(64, generator=g)
    t.critic_step(real, z, eps)  # (with clipping, the first update also brings the init into [-c, c])
    ws = [t.critic_step(real, z, eps)["w_estimate"].item() for _ in range(10)]  # each measured before its update
    assert all(b > a for a, b in zip(ws, ws[1:])), ws


def test_n_critic_updates_per_generator_update(monkeypatch):
    counts = {"critic": 0, "generator": 0}
    for name in ("critic", "generator"):
        orig = getattr(fw.ReferenceTrainer, f"{name}_step")

        def counted(self, *a, _o=orig, _n=name):
            counts[_n] += 1
            return _o(self, *a)

        monkeypatch.setattr(fw.ReferenceTrainer, f"{name}_step", counted)
    G, D = tiny_mlp()
    t = fw.ReferenceTrainer(G, D, gp_config(n_critic=4))
    t.fit(fw.data.toy("25gaussians", n=100, seed=0), steps=3, progress=False)
    assert counts == {"critic": 12, "generator": 3}
    assert [h["step"] for h in t.history] == [1, 2, 3]
    t.fit(fw.data.toy("25gaussians", n=100, seed=0), steps=5, progress=False)  # steps counts the whole run
    assert counts == {"critic": 20, "generator": 5} and t.step == 5


def _run(seed, steps=4, loss="gp"):
    G, D = tiny_mlp(seed=0)
    preset = "wgan-clip" if loss == "clip" else "wgan-gp"
    cfg = fw.TrainConfig.preset(preset, batch_size=8, latent_dim=4, seed=seed)
    return fw.ReferenceTrainer(G, D, cfg).fit(fw.data.toy("8gaussians", n=64, seed=0), steps, progress=False)


@pytest.mark.parametrize("loss", ["clip", "gp"])
def test_same_seed_same_history_and_different_seed_differs(loss):
    a, b, c = _run(0, loss=loss), _run(0, loss=loss), _run(1, loss=loss)
    assert a.history == b.history
    assert a.history != c.history
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters()):
        assert torch.equal(pa, pb)


def test_history_fields():
    h = _run(0, steps=2).history
    assert set(h[0]) == {"step", "critic_loss", "w_estimate", "gp", "grad_norm", "generator_loss"}
    assert all(math.isfinite(v) for v in h[-1].values())
    hc = _run(0, steps=2, loss="clip").history
    assert hc[0]["gp"] is None and hc[0]["grad_norm"] is None


def test_checkpoint_resume_is_bitwise(tmp_path):
    from fastwgan.core import checkpoint

    data = fw.data.toy("8gaussians", n=64, seed=0)
    straight = _run(0, steps=5)
    G, D = tiny_mlp(seed=0)
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, latent_dim=4, seed=0)
    first = fw.ReferenceTrainer(G, D, cfg).fit(data, 3, progress=False)
    checkpoint.save(first.state_dict(), tmp_path, step=3)
    G2, D2 = tiny_mlp(seed=9)  # different init: everything must come from the checkpoint
    resumed = fw.ReferenceTrainer(G2, D2, cfg)
    resumed.load_state_dict(checkpoint.load(tmp_path))
    resumed.fit(data, 5, progress=False)
    assert resumed.history == straight.history
    for a, b in zip(resumed.critic.parameters(), straight.critic.parameters()):
        assert torch.equal(a, b)


def test_sample_and_critic_score():
    t = _run(0, steps=2)
    x = t.sample(10)
    assert x.shape == (10, 2) and torch.equal(x, t.sample(10)) and not torch.equal(x, t.sample(10, seed=5))
    s = t.critic_score(x)
    assert s.shape == (10,) and torch.isfinite(s).all()
    assert t.sample(0).shape == (0, 2)


def test_bad_inputs_raise_clear_errors():
    G, D = tiny_mlp()
    t = fw.ReferenceTrainer(G, D, gp_config())
    with pytest.raises(ValueError, match="NaN"):
        t.fit(torch.tensor([[0.0, float("nan")]]), 1)
    with pytest.raises(ValueError, match="generator makes"):
        t.fit(torch.zeros(10, 3), 1)
    with pytest.raises(ValueError, match="N >= 1"):
        t.fit(torch.zeros(0, 2), 1)
    with pytest.raises(ValueError, match="dtype"):
        t.fit(torch.zeros(10, 2, dtype=torch.int32), 1)
    with pytest.raises(TypeError, match="tensor"):
        t.fit([[0.0, 1.0]], 1)
    with pytest.raises(ValueError, match="steps"):
        t.fit(torch.zeros(10, 2), -1)
    Gb, Db = tiny_mlp(norm="batch")
    with pytest.raises(ValueError, match="batch norm"):
        fw.ReferenceTrainer(Gb, Db, gp_config())
    fw.ReferenceTrainer(Gb, Db, fw.TrainConfig.preset("wgan-clip"))  # allowed with weight clipping
    with pytest.raises(ValueError, match="dtype"):
        fw.ReferenceTrainer(G, D, gp_config(dtype="bfloat16"))
    with pytest.raises(TypeError, match="TrainConfig"):
        fw.ReferenceTrainer(G, D, {"loss": "gp"})
