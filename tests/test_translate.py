"""Unpaired translation (fastwgan.uses.translate): the losses on analytic cases, the penalty's gradient reaching each
critic, the fast trainer equal to the eager oracle (eager and compiled, no recompiles), exact resume, the
translator model, and one-line refusals of bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from equivalence import LOSS_TOL, PRESETS, assert_close_modules, assert_same_history
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import fastwgan as fw
from fastwgan.gan import objectives
from fastwgan.uses import translate


def domains(cs=1, ct=3, n=24, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (n, cs, size, size), dtype=torch.uint8, generator=g),
        torch.randint(0, 256, (n + 5, ct, size, size), dtype=torch.uint8, generator=g),
    )


def tiny_nets(cs, ct, seed, size=8):
    """1x1-convolution generators and MLP critics: every part of the step at a compile cost of seconds."""
    torch.manual_seed(seed)
    d = lambda c: nn.Sequential(nn.Flatten(), nn.Linear(c * size * size, 8), nn.Tanh(), nn.Linear(8, 1))  # noqa: E731
    return (
        nn.Sequential(nn.Conv2d(cs, ct, 1), nn.Tanh()),
        nn.Sequential(nn.Conv2d(ct, cs, 1), nn.Tanh()),
        d(cs),
        d(ct),
    )


def pair(loss, cs, ct, seed, compile=False, config=None, threads="auto", **kw):
    import copy

    cfg = fw.TrainConfig.preset(PRESETS[loss], loss=loss, batch_size=4, n_critic=2, seed=seed, **(config or {}))
    ref = translate.ReferenceTranslationTrainer(*tiny_nets(cs, ct, seed), cfg, **kw)
    if kw.get("semantic") is not None:
        kw = {**kw, "semantic": copy.deepcopy(kw["semantic"])}
    fast = translate.TranslationTrainer(*tiny_nets(cs, ct, seed), cfg, compile=compile, threads=threads, **kw)
    return ref, fast


# ------------------------------------------------------------------------------------------------ the losses
def test_generator_losses_on_an_analytic_case():
    g = torch.Generator().manual_seed(0)
    x_s, x_t = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.rand(3, 1, 4, 4, generator=g) * 2 - 1
    mean = lambda x: x.flatten(1).mean(1)  # noqa: E731  a critic: the mean pixel
    # G_st(x) = x + 0.5, G_ts(x) = x - 0.5: the cycle closes exactly, the identity is off by 0.5 everywhere
    loss, aux = translate.generator_losses(lambda x: x + 0.5, lambda x: x - 0.5, mean, mean, x_s, x_t, 10.0, 5.0)
    adversarial = -((x_s + 0.5).mean() + (x_t - 0.5).mean())
    assert aux["cycle"].item() == pytest.approx(0.0, abs=1e-7)
    assert aux["identity"].item() == pytest.approx(1.0, abs=1e-6)  # 0.5 + 0.5
    assert aux["adversarial"].item() == pytest.approx(adversarial.item(), abs=1e-6)
    assert loss.item() == pytest.approx(adversarial.item() + 5.0, abs=1e-5)
    # G_st(x) = 2x, G_ts(x) = x: each cycle is off by |x|, each identity by |x|; weights 10 and 0
    loss, aux = translate.generator_losses(lambda x: 2 * x, lambda x: x, mean, mean, x_s, x_t, 10.0, 0.0)
    cycle = x_s.abs().mean() + x_t.abs().mean()
    assert aux["cycle"].item() == pytest.approx(cycle.item(), rel=1e-6)
    assert aux["identity"].item() == 0.0
    assert loss.item() == pytest.approx((-(2 * x_s.mean() + x_t.mean()) + 10 * cycle).item(), rel=1e-5)


def test_semantic_consistency_is_cycada_cross_entropy():
    g = torch.Generator().manual_seed(3)
    x_s, x_t = torch.randn(6, 2, 3, 3, generator=g), torch.randn(6, 2, 3, 3, generator=g)
    w = torch.randn(18, 4, generator=g)
    f = lambda x: x.flatten(1) @ w  # noqa: E731  a linear classifier
    mean = lambda x: x.flatten(1).mean(1)  # noqa: E731
    g_st, g_ts = (lambda x: -x), (lambda x: x * 0.5)
    loss, aux = translate.generator_losses(g_st, g_ts, mean, mean, x_s, x_t, 0.0, 0.0, f, 2.0)
    sem = F.cross_entropy(f(-x_s), f(x_s).argmax(1)) + F.cross_entropy(f(x_t * 0.5), f(x_t).argmax(1))
    assert aux["semantic"].item() == pytest.approx(sem.item(), rel=1e-5)
    assert loss.item() == pytest.approx((aux["adversarial"] + 2.0 * sem).item(), rel=1e-5)
    x_s, x_t = domains(1, 3)
    with pytest.raises(ValueError, match="semantic: the classifier reads source images and translations"):
        translate.ReferenceTranslationTrainer(*tiny_nets(1, 3, 0), fw.TrainConfig(), semantic=classifier(1, 0)).fit(
            x_s, x_t, 1
        )


@pytest.mark.parametrize("calculus", ["eager", "functional"])
def test_critic_losses_of_linear_critics_are_analytic(calculus):
    # D(x) = <w, x>: grad_x D = w at every x_hat, so the penalty is lambda (||w|| - 1)^2 per critic
    g = torch.Generator().manual_seed(1)
    x_s, x_t = torch.randn(5, 1, 3, 3, generator=g), torch.randn(5, 3, 3, 3, generator=g)
    w_s, w_t = torch.randn(9, generator=g), torch.randn(27, generator=g)
    d_s, d_t = (lambda x: x.flatten(1) @ w_s), (lambda x: x.flatten(1) @ w_t)
    g_st, g_ts = (lambda x: x.expand(-1, 3, -1, -1) * 0.5), (lambda x: x.mean(1, keepdim=True))
    eps_s, eps_t = torch.rand(5, generator=g), torch.rand(5, generator=g)
    calc = objectives.EAGER if calculus == "eager" else objectives.compiled_calculus("torch", "torch")
    loss, aux = translate.critic_losses(g_st, g_ts, d_s, d_t, x_s, x_t, eps_s, eps_t, "gp", 10.0, calc)
    w_t_est = d_t(x_t).mean() - d_t(g_st(x_s)).mean()
    w_s_est = d_s(x_s).mean() - d_s(g_ts(x_t)).mean()
    pen = 10 * ((w_s.norm() - 1) ** 2 + (w_t.norm() - 1) ** 2)
    assert aux["w_t"].item() == pytest.approx(w_t_est.item(), rel=1e-5)
    assert aux["w_s"].item() == pytest.approx(w_s_est.item(), rel=1e-5)
    assert aux["gp_t"].item() == pytest.approx(((w_t.norm() - 1) ** 2).item(), rel=1e-5)
    assert loss.item() == pytest.approx((-w_t_est - w_s_est + pen).item(), rel=1e-5)


@pytest.mark.parametrize("loss", ["gp", "lp"])
def test_the_penalty_gradient_reaches_each_critic(loss):
    # The penalty's own gradient (loss with lambda 10 minus loss with lambda 0) is non-zero in BOTH critics'
    # parameters, and the fast trainer's (fastwgan.ops + torch.func) equals the oracle's (autograd).
    x_s, x_t = domains(1, 3, n=4)
    x_s, x_t = fw.data.to_float(x_s), fw.data.to_float(x_t[:4])
    eps_s, eps_t = torch.rand(4, generator=torch.Generator().manual_seed(2)), torch.full((4,), 0.3)
    grads = {}
    for weight in (0.0, 10.0):
        ref, fast = pair(loss, 1, 3, 0, config={"gp_weight": weight})
        with torch.no_grad():  # steeper critics: ||grad_x D|| > 1, where the one-sided penalty acts too
            for p in [*ref.critics.parameters(), *fast.critics.parameters()]:
                p.mul_(4)
        grads[weight] = [tr.critic_gradient(x_s, x_t, eps_s, eps_t)[0] for tr in (ref, fast)]
    n_s = sum(p.numel() for p in ref.d_s.parameters())
    pen_ref, pen_fast = grads[10.0][0] - grads[0.0][0], grads[10.0][1] - grads[0.0][1]
    torch.testing.assert_close(pen_fast, pen_ref, rtol=1e-4, atol=1e-6)
    assert pen_ref[:n_s].abs().max() > 1e-4, "the penalty's gradient does not reach D_s"
    assert pen_ref[n_s:].abs().max() > 1e-4, "the penalty's gradient does not reach D_t"


# ------------------------------------------------------------------------------------------------ equivalence
def classifier(c, seed):
    torch.manual_seed(seed + 1)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * 64, 3))


@given(
    seed=st.integers(0, 2**16),
    loss=st.sampled_from(["gp", "clip", "lp"]),
    channels=st.sampled_from([(1, 3), (3, 3), (3, 1)]),
    semantic=st.booleans(),
)
def test_fast_trainer_matches_the_oracle_eager(seed, loss, channels, semantic):
    cs, ct = channels
    x_s, x_t = domains(cs, ct, seed=seed)
    semantic = semantic and cs == ct  # CyCADA's semantic consistency (one classifier reads both domains)
    kw = {"semantic": classifier(cs, seed), "semantic_weight": 0.5} if semantic else {}
    ref, fast = pair(loss, cs, ct, seed, **kw)
    if semantic:
        assert fast.semantic is not ref.semantic  # a copy each: the frozen classifier is shared state otherwise
    assert ("semantic" in fast.metrics) == semantic
    ref.fit(x_s, x_t, 3, progress=False)
    fast.fit(x_s, x_t, 3, progress=False)
    assert_same_history(ref, fast)
    assert_close_modules(ref.critics, fast.critics, what="critics.")
    assert_close_modules(ref.generators, fast.generators, what="generators.")
    if cs == ct:
        assert ref.identity_weight == fast.identity_weight == 5.0  # 0.5 x cycle, CycleGAN's default
    else:
        assert ref.identity_weight == fast.identity_weight == 0.0  # no identity between different channels
    assert all(h["identity"] == 0.0 for h in ref.history) == (cs != ct)


@pytest.fixture(scope="module")
def compiled():
    """One compiled fast trainer (gp, 1 -> 3 channels) that every example below reuses: nothing may recompile."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # the graph counts below are this trainer's
    # threads=1: a new thread count is a new compile by design (fastwgan.core.threads), which is not what this tests
    return pair("gp", 1, 3, 0, compile=True, threads=1)[1]


@pytest.mark.slow
@given(seed=st.integers(0, 2**16))
def test_compiled_trainer_matches_the_oracle_without_recompiles(compiled, seed):
    from torch._dynamo.utils import counters

    x_s, x_t = domains(1, 3, seed=seed)
    ref = translate.ReferenceTranslationTrainer(*tiny_nets(1, 3, seed), compiled.config)
    compiled.load_state_dict(ref.state_dict())  # the drawn seed's networks, a fresh optimizer state and stream
    warm = counters["stats"]["unique_graphs"] > 0
    with torch._dynamo.config.patch(error_on_recompile=warm):
        compiled.fit(x_s, x_t, 3, progress=False)
    ref.fit(x_s, x_t, 3, progress=False)
    assert counters["stats"]["unique_graphs"] == 2  # the critic update and the generator update, once each
    assert_same_history(ref, compiled)
    assert_close_modules(ref.critics, compiled.critics, what="critics.")
    assert_close_modules(ref.generators, compiled.generators, what="generators.")


def test_a_resumed_run_continues_exactly(tmp_path):
    x_s, x_t = domains(3, 3)
    _, straight = pair("gp", 3, 3, 4)
    straight.fit(x_s, x_t, 4, progress=False)
    _, first = pair("gp", 3, 3, 4)
    first.fit(x_s, x_t, 2, out=tmp_path / "run", progress=False)
    # other initial weights: everything comes from the checkpoint (into the other twin)
    ref = translate.ReferenceTranslationTrainer(*tiny_nets(3, 3, 99), first.config)
    ref.load_state_dict(fw.checkpoint.load(tmp_path / "run"))
    ref.fit(x_s, x_t, 4, out=tmp_path / "run", progress=False)
    assert [h["step"] for h in ref.history] == [1, 2, 3, 4]
    for a, b in zip(ref.history, straight.history):
        for k in a:
            assert math.isclose(a[k], b[k], rel_tol=LOSS_TOL["rtol"], abs_tol=LOSS_TOL["atol"]), k
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())[-1] == "step_000004.png"


# ------------------------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("size,cin,cout", [(8, 1, 3), (16, 3, 1), (28, 1, 1), (32, 3, 3), (64, 3, 1)])
def test_translator_maps_images_to_images(size, cin, cout):
    t = fw.models.translator(size, cin, cout, width=4, blocks=1)
    y = t(torch.rand(2, cin, size, size) * 2 - 1)
    assert y.shape == (2, cout, size, size) and y.abs().max() <= 1
    again = fw.models.translator(**t.spec)
    assert [p.shape for p in again.parameters()] == [p.shape for p in t.parameters()]
    # instance norm: a sample's translation does not depend on the rest of its batch
    x = torch.rand(3, cin, size, size)
    torch.testing.assert_close(t(x)[:1], t(x[:1]))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"image_size": 6}, "8..64"),
        ({"image_size": 34}, "divisible by 4"),
        ({"image_size": 9}, "divisible by 2"),
        ({"channels_in": 2}, "channels_in must be 1 or 3"),
        ({"width": 0}, "positive"),
    ],
)
def test_translator_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        fw.models.translator(**{"image_size": 8, "channels_in": 1, "channels_out": 3, **kw})


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_refused_with_one_line():
    x_s, x_t = domains(1, 3)
    ref, _ = pair("gp", 1, 3, 0)
    with pytest.raises(ValueError, match="one size, got 8x8 .source. and 16x16 .target."):
        ref.fit(x_s, torch.zeros(4, 3, 16, 16, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="target: the domain is empty"):
        ref.fit(x_s, x_t[:0], 1)
    with pytest.raises(ValueError, match="source: expected images .N, C, H, W., got shape .24, 64."):
        ref.fit(x_s.flatten(1), x_t, 1)
    with pytest.raises(ValueError, match="source: contains NaN"):
        ref.fit(torch.full((4, 1, 8, 8), float("nan")), x_t, 1)
    with pytest.raises(ValueError, match="g_st: calling it on images of shape .2, 3, 8, 8. failed"):
        ref.fit(x_t, x_t, 1)  # a 1-channel generator fed 3-channel images
    with pytest.raises(ValueError, match="identity_weight: .* source has 1 channels and the target 3"):
        translate.ReferenceTranslationTrainer(*tiny_nets(1, 3, 0), fw.TrainConfig(), identity_weight=5.0).fit(
            x_s, x_t, 1
        )
    with pytest.raises(ValueError, match="two-domain trainers train in float32"):
        translate.TranslationTrainer(*tiny_nets(1, 3, 0), fw.TrainConfig(dtype="bfloat16"), compile=False)
    with pytest.raises(ValueError, match="cycle_weight must be a non-negative finite number"):
        translate.ReferenceTranslationTrainer(*tiny_nets(1, 3, 0), fw.TrainConfig(), cycle_weight=-1.0)
    with pytest.raises(ValueError, match="direction must be one of"):
        ref.translate(x_s, "sideways")
    with pytest.raises(ValueError, match="batch norm is not allowed"):
        g1, g2, _, d_t = tiny_nets(1, 3, 0)
        translate.ReferenceTranslationTrainer(
            g1, g2, nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(64, 1)), d_t, fw.TrainConfig()
        )
    ref.fit(x_s, x_t, 1, progress=False)
    with pytest.raises(ValueError, match=r"translate\('t2s'\): images have 1 channels but the networks take 3"):
        ref.translate(x_s, "t2s")
    out = ref.translate(x_s[:3], "s2t")
    assert out.shape == (3, 3, 8, 8) and out.dtype == torch.float32 and out.abs().max() <= 1
