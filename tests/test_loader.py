"""fit(DataLoader): both trainers train on a loader's batches (x or (x, y)), agree with each other, resume exactly
by skipping, skip short batches once with a note (never a recompile), check sharding under torchrun, and keep the
caller's global RNG (fastwgan.data.sources)."""

import copy
import warnings

import pytest
import torch
from equivalence import assert_same_history, fresh_graph_counts, unique_graphs
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

import fastwgan as fw
from fastwgan import data
from fastwgan.core import rng
from fastwgan.data.sources import LoaderSource
from fastwgan.gan import models
from fastwgan.gan.trainer import Trainer

X, Y = data.load_digits(return_labels=True)  # (1797, 1, 8, 8) uint8, (1797,)


def _cfg(**kw):
    return fw.TrainConfig.preset("wgan-gp", **{"batch_size": 16, "seed": 3, **kw})


def _models(cfg, **kw):
    torch.manual_seed(0)
    return models.mlp((1, 8, 8), cfg.latent_dim, hidden=32, **kw)


def _make(kind, cfg, **kw):
    G, D = _models(cfg, **kw)
    if kind == "reference":
        return fw.ReferenceTrainer(G, D, cfg)
    return Trainer(G, D, cfg, compile=kind == "compiled", threads=1)


def _loader(n=100, labels=False, **kw):
    ds = TensorDataset(X[:n], Y[:n]) if labels else TensorDataset(X[:n])
    return DataLoader(ds, **{"batch_size": 16, "shuffle": True, **kw})


def _params(t):
    return [p.detach().clone() for m in (t.critic, t.generator) for p in m.parameters()]


def _assert_bitwise(a, b):
    for p, q in zip(_params(a), _params(b)):
        assert torch.equal(p, q)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["eager", "compiled"])
def test_trainers_agree_on_a_loader(kind):
    # 100 samples in batches of 16: 6 full batches and a short one per epoch; 4 steps x 5 batches cross 3 epochs
    cfg = _cfg()
    ref, fast = _make("reference", cfg), _make(kind, cfg)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ref.fit(_loader(), 4)
        fast.fit(_loader(), 4)
    short = [w for w in seen if "short batch of 4" in str(w.message)]
    assert len(short) == 2 and "drop_last=True" in str(short[0].message)  # one note per fit, not per batch
    assert ref.data_position == fast.data_position == (3, 2)  # 20 full batches: 6 per epoch, 2 into epoch 3
    assert_same_history(ref, fast)
    for p, q in zip(_params(ref), _params(fast)):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)


def test_loader_batches_reach_the_critic():
    # the critic's real inputs are exactly the loader's batches, in order, n_critic per step (no shuffling here)
    cfg = _cfg(n_critic=2)
    t = _make("eager", cfg)
    seen = []
    D = t.critic
    D.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()) if len(inp[0]) == 16 else None)
    t.fit(_loader(shuffle=False, drop_last=True), 2)
    from fastwgan.core.images import to_float

    reals = [to_float(X[i * 16 : (i + 1) * 16]) for i in range(4)]
    # each critic update scores real, fake, then the interpolation (3 calls), then the generator update one call
    got = [seen[0], seen[3], seen[7], seen[10]]
    for want, g in zip(reals, got):
        torch.testing.assert_close(g, want)


@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_conditional_loader(conditioning):
    cfg = _cfg(num_classes=10)
    ref = _make("reference", cfg, num_classes=10, conditioning=conditioning)
    fast = _make("eager", cfg, num_classes=10, conditioning=conditioning)
    labels_seen = []
    G = ref.generator
    G.register_forward_hook(lambda m, inp, out: labels_seen.append(inp[1].clone()) if len(inp[1]) == 16 else None)
    loader = _loader(labels=True, drop_last=True, shuffle=False)
    ref.fit(loader, 1)
    fast.fit(loader, 1)
    assert_same_history(ref, fast)
    # critic updates condition on their real batch's labels; the generator update on the last real batch's labels
    assert torch.equal(labels_seen[0], Y[:16]) and torch.equal(labels_seen[-1], Y[64:80])
    with pytest.raises(ValueError, match=r"class-conditional run needs \(x, y\) batches"):
        _make("eager", cfg, num_classes=10).fit(_loader(), 1)
    with pytest.raises(ValueError, match="fit.loader. takes no labels="):
        _make("eager", cfg, num_classes=10).fit(loader, 1, labels=Y)
    bad = DataLoader(TensorDataset(X[:32], torch.full((32,), 12)), batch_size=16)
    with pytest.raises(ValueError, match="label 12 .* num_classes=10"):
        _make("eager", cfg, num_classes=10).fit(bad, 1)


def test_unconditional_run_ignores_loader_labels():
    cfg = _cfg()
    a, b = _make("eager", cfg), _make("eager", cfg)
    a.fit(_loader(labels=True), 2)
    b.fit(_loader(labels=False), 2)
    _assert_bitwise(a, b)


@pytest.mark.parametrize("kind", ["reference", "compiled"])
def test_resume_with_a_loader_is_bitwise(kind, tmp_path):
    cfg = _cfg()
    whole = _make(kind, cfg)
    whole.fit(_loader(), 5)
    half = _make(kind, cfg)
    half.fit(_loader(), 2)
    fw.checkpoint.save(half.state_dict(), tmp_path, 2)  # through the checkpoint file: the position survives it
    state = fw.checkpoint.load(tmp_path)
    twin = _make(kind, cfg)
    twin.load_state_dict(state)
    assert twin.data_position == (1, 4)  # 10 full batches: 6 in epoch 0 (and a short one), 4 in epoch 1
    twin.fit(_loader(), 5)
    _assert_bitwise(whole, twin)
    assert whole.data_position == twin.data_position


class _Jitter(Dataset):
    """A dataset with a random transform: each item draws from the worker's global RNG."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        return X[i].float() / 127.5 - 1 + 0.1 * torch.rand(1, 8, 8)


def test_workers_and_shuffling_follow_the_seed():
    # two runs, each with a 2-worker shuffling loader and a random per-item transform: identical batches
    cfg = _cfg()
    runs = []
    for _ in range(2):
        torch.manual_seed(torch.seed())  # a fresh global state, as a fresh process has
        t = _make("eager", cfg)
        t.fit(DataLoader(_Jitter(), batch_size=16, shuffle=True, num_workers=2, drop_last=True), 2)
        runs.append(t)
    _assert_bitwise(*runs)


def test_fit_keeps_the_callers_global_rng():
    t = _make("eager", _cfg())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    t.fit(_loader(), 2)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.slow
def test_short_batches_never_recompile():
    cfg = _cfg()
    t = _make("compiled", cfg)
    fresh_graph_counts()
    t.fit(_loader(), 1)  # compiles; no epoch end yet
    frames = unique_graphs()
    assert frames > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(_loader(), 4)  # crosses 3 epoch ends, each with a short batch skipped
    assert unique_graphs() == frames  # not one more graph


def test_loader_errors():
    cfg = _cfg()
    t = _make("eager", cfg)
    with pytest.raises(ValueError, match="DataLoader's batch_size is 8 but the run trains on batches of 16"):
        t.fit(_loader(batch_size=8), 1)
    with pytest.raises(ValueError, match="no batches"):
        t.fit([], 1)
    with pytest.raises(ValueError, match="a batch of 20 samples"):
        t.fit([X[:20]], 1)
    with pytest.raises(ValueError, match="no batch of 16 samples"):
        t.fit([X[:8], X[:8]], 1)
    with pytest.raises(ValueError, match="a generator"):
        t.fit((X[i * 16 : (i + 1) * 16] for i in range(3)), 2)  # 10 batches needed, 3 yielded once
    with pytest.raises(ValueError, match="contains NaN"):
        t.fit([torch.full((16, 1, 8, 8), float("nan"))], 1)
    with pytest.raises(ValueError, match=r"samples have shape \(1, 9, 9\)"):
        t.fit([torch.zeros(16, 1, 9, 9)], 1)
    with pytest.raises(TypeError, match="iterable of batches"):
        t.fit("digits", 1)
    assert t.step == 0


def test_torchrun_needs_a_sharded_loader():
    kw = dict(batch_size=8, n_critic=1, device=torch.device("cpu"), num_classes=None, seed=0)
    with pytest.raises(ValueError, match="DistributedSampler"):
        LoaderSource(_loader(batch_size=8), world_size=2, rank=0, **kw)
    ds = TensorDataset(X[:64])
    with pytest.raises(ValueError, match="shards for 4 replicas as rank 1, but this is rank 0 of 2"):
        LoaderSource(DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds, 4, 1)), world_size=2, rank=0, **kw)
    sampler = DistributedSampler(ds, 2, 0, shuffle=True, seed=0)
    src = LoaderSource(DataLoader(ds, batch_size=8, sampler=sampler), world_size=2, rank=0, **kw)
    for _ in range(5):  # 4 batches per epoch on this shard: the fifth opens epoch 1 (set_epoch)
        src.next(rng.draw_step(rng.make_generator(0), None, 1, 8, 2, True))
    assert sampler.epoch == 1 and src.position == (1, 1)


def test_readme_style_loop_equals_fit_on_the_same_batches():
    # the loader path and the tensor path differ only in where batches come from: feeding the tensor path's own
    # batches (idx drawn with the same generator) through a loader gives the same first step
    cfg = _cfg(n_critic=1)
    a = _make("eager", cfg)
    gen = rng.make_generator(cfg.seed)
    noise = rng.draw_step(gen, 100, 1, 16, cfg.latent_dim, True)
    src = a.batch_source(X[:100])
    m_tensor = a._step(src, noise)
    b = _make("eager", cfg)
    loader_noise = copy.copy(noise)
    loader_noise.idx = None
    batch_src = b.batch_source([X[:100][noise.idx[0]]])
    m_loader = b._step(batch_src, loader_noise)
    for k in m_tensor:
        assert torch.equal(m_tensor[k], m_loader[k]), k
    _assert_bitwise(a, b)


def test_loader_models_are_checked():
    cfg = _cfg()
    G, _ = _models(cfg)
    D = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))  # three scores per sample
    with pytest.raises(ValueError, match="critic: returns shape"):
        Trainer(G, D, cfg, compile=False).fit(_loader(), 1)
