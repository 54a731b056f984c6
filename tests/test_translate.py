"""Unpaired translation (fastwgan.uses.translate): the losses on analytic cases (CyCADA's semantic term with true
source labels and the confidence mask), the penalty's gradient reaching each critic, the fast trainer equal to the
eager oracle (eager and compiled, no recompiles; labels on and off, thresholds), labels from tensors and loaders,
exact resume, the translator model, and one-line refusals of bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from equivalence import (
    LOSS_TOL,
    PRESETS,
    assert_close_modules,
    assert_same_history,
    fresh_graph_counts,
    no_recompile_once_warm,
    unique_graphs,
)
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


def test_semantic_term_uses_true_source_labels_and_confident_targets():
    g = torch.Generator().manual_seed(3)
    x_s, x_t = torch.randn(6, 2, 3, 3, generator=g), torch.randn(8, 2, 3, 3, generator=g)
    w = 0.3 * torch.randn(18, 4, generator=g)  # confidences well inside (0.25, 1)
    f = lambda x: x.flatten(1) @ w  # noqa: E731  a linear classifier
    mean = lambda x: x.flatten(1).mean(1)  # noqa: E731
    g_st, g_ts = (lambda x: -x), (lambda x: x * 0.5)
    y_s = torch.tensor([0, 1, 2, 3, 0, 1])  # the true classes, not what f reads
    conf, read_t = F.softmax(f(x_t), 1).max(1)
    threshold = conf.median().item()  # about half the target images count
    mask = conf >= threshold
    assert 0 < mask.sum() < len(mask)
    ce_t = F.cross_entropy(f(x_t * 0.5), read_t, reduction="none")
    s2t = F.cross_entropy(f(-x_s), y_s)
    run = lambda **kw: translate.generator_losses(g_st, g_ts, mean, mean, x_s, x_t, 0.0, 0.0, f, 2.0, **kw)  # noqa: E731
    loss, aux = run(y_s=y_s, semantic_threshold=threshold)
    sem = s2t + ce_t[mask].mean()
    assert aux["semantic"].item() == pytest.approx(sem.item(), rel=1e-5)
    assert aux["semantic_confident"].item() == pytest.approx(mask.float().mean().item())
    assert loss.item() == pytest.approx((aux["adversarial"] + 2.0 * sem).item(), rel=1e-5)
    # no labels: f's reading of the source; threshold 0: every target image (the paper's eq. 4)
    _, aux = run(semantic_threshold=0.0)
    old = F.cross_entropy(f(-x_s), f(x_s).argmax(1)) + F.cross_entropy(f(x_t * 0.5), read_t)
    assert aux["semantic"].item() == pytest.approx(old.item(), rel=1e-5)
    # no target image this confident: the t -> s term is 0, and G_ts(x) = a x gets no gradient from it;
    # None, or 1.0 and above: no t -> s term at all
    above = conf.max().item() + 1e-3
    assert above < 1
    a, b = torch.ones((), requires_grad=True), torch.ones((), requires_grad=True)  # G_st(x) = -b x
    for threshold in (above, None, 1.0):
        _, aux = run(y_s=y_s, semantic_threshold=threshold)
        assert aux["semantic"].item() == pytest.approx(s2t.item(), rel=1e-6)
        assert ("semantic_confident" in aux) == (threshold == above)
        t_sem, confident = translate.semantic_term(f, x_s, x_t, -b * x_s, a * x_t, y_s, threshold)
        (grad,) = torch.autograd.grad(t_sem, a, allow_unused=True)
        assert grad is None or grad.item() == 0.0
        assert (confident is None) == (threshold != above)


def test_semantic_needs_one_channel_count():
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
    """A 3-class linear classifier whose max softmax on random images spreads over about 0.35..0.8: a threshold
    of 0.5 counts some target images and not others."""
    torch.manual_seed(seed + 1)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * 64, 3))


def source_labels(n=24, seed=0, classes=3):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed + 7))


@given(
    seed=st.integers(0, 2**16),
    loss=st.sampled_from(["gp", "clip", "lp"]),
    channels=st.sampled_from([(1, 3), (3, 3), (3, 1)]),
    semantic=st.booleans(),
    labels=st.booleans(),
    threshold=st.sampled_from([None, 0.0, 0.5, 0.9]),
)
def test_fast_trainer_matches_the_oracle_eager(seed, loss, channels, semantic, labels, threshold):
    cs, ct = channels
    x_s, x_t = domains(cs, ct, seed=seed)
    semantic = semantic and cs == ct  # CyCADA's semantic consistency (one classifier reads both domains)
    kw = {"semantic": classifier(cs, seed), "semantic_weight": 0.5, "semantic_threshold": threshold}
    ref, fast = pair(loss, cs, ct, seed, **(kw if semantic else {}))
    if semantic:
        assert fast.semantic is not ref.semantic  # a copy each: the frozen classifier is shared state otherwise
    assert ("semantic" in fast.metrics) == semantic
    assert ("semantic_confident" in fast.metrics) == (semantic and threshold is not None)
    y = source_labels(len(x_s), seed) if semantic and labels else None
    ref.fit(x_s, x_t, 3, labels=y, progress=False)
    fast.fit(x_s, x_t, 3, labels=y, progress=False)
    assert_same_history(ref, fast)
    assert_close_modules(ref.critics, fast.critics, what="critics.")
    assert_close_modules(ref.generators, fast.generators, what="generators.")
    if cs == ct:
        assert ref.identity_weight == fast.identity_weight == 5.0  # 0.5 x cycle, CycleGAN's default
    else:
        assert ref.identity_weight == fast.identity_weight == 0.0  # no identity between different channels
    assert all(h["identity"] == 0.0 for h in ref.history) == (cs != ct)
    if semantic and threshold == 0:  # every target image counts
        assert all(h["semantic_confident"] == 1.0 for h in ref.history)


@pytest.fixture(scope="module")
def compiled():
    """One compiled fast trainer (gp, 1 -> 3 channels) that every example below reuses: nothing may recompile."""
    fresh_graph_counts()  # the graph counts below are this trainer's
    # threads=1: a new thread count is a new compile by design (fastwgan.core.threads), which is not what this tests
    return pair("gp", 1, 3, 0, compile=True, threads=1)[1]


@pytest.mark.slow
@given(seed=st.integers(0, 2**16))
def test_compiled_trainer_matches_the_oracle_without_recompiles(compiled, seed):
    x_s, x_t = domains(1, 3, seed=seed)
    ref = translate.ReferenceTranslationTrainer(*tiny_nets(1, 3, seed), compiled.config)
    compiled.load_state_dict(ref.state_dict())  # the drawn seed's networks, a fresh optimizer state and stream
    with no_recompile_once_warm():
        compiled.fit(x_s, x_t, 3, progress=False)
    ref.fit(x_s, x_t, 3, progress=False)
    assert unique_graphs() == 2  # the critic update and the generator update, once each
    assert_same_history(ref, compiled)
    assert_close_modules(ref.critics, compiled.critics, what="critics.")
    assert_close_modules(ref.generators, compiled.generators, what="generators.")


@pytest.fixture(scope="module", params=[False, True], ids=["no-labels", "labels"])
def compiled_semantic(request):
    """A compiled fast trainer with the semantic term (threshold 0.5: a mask of mixed values), fed source labels
    or not; reused by every example (one graph per update, whatever the mask)."""
    fresh_graph_counts()
    kw = {"semantic": classifier(1, 0), "semantic_threshold": 0.5}
    return pair("gp", 1, 1, 0, compile=True, threads=1, **kw)[1], request.param


@pytest.mark.slow
@given(seed=st.integers(0, 2**16))
def test_compiled_semantic_trainer_matches_the_oracle_without_recompiles(compiled_semantic, seed):
    import copy

    fast, labelled = compiled_semantic
    x_s, x_t = domains(1, 1, seed=seed)
    y = source_labels(len(x_s), seed) if labelled else None
    ref = translate.ReferenceTranslationTrainer(
        *tiny_nets(1, 1, seed), fast.config, semantic=copy.deepcopy(fast.semantic), semantic_threshold=0.5
    )
    fast.load_state_dict(ref.state_dict())
    with no_recompile_once_warm():
        fast.fit(x_s, x_t, 3, labels=y, progress=False)
    ref.fit(x_s, x_t, 3, labels=y, progress=False)
    assert unique_graphs() == 2
    assert_same_history(ref, fast)
    assert_close_modules(ref.generators, fast.generators, what="generators.")


def test_source_labels_are_the_rows_images(tmp_path):
    """Labels equal to the classifier's own reading of every source image give the unlabelled run exactly (so
    each image meets its own label), from tensors and from a DataLoader of (x, y); other labels change it."""
    from torch.utils.data import DataLoader, TensorDataset

    x_s, x_t = domains(3, 3)
    f = classifier(3, 0)
    with torch.no_grad():
        read = f(fw.data.to_float(x_s)).argmax(1)
    kw = {"semantic": f, "semantic_threshold": 0.5}
    runs = {}
    for name, labels in (("none", None), ("read", read), ("other", (read + 1) % 3)):
        runs[name] = pair("gp", 3, 3, 0, **kw)[0].fit(x_s, x_t, 2, labels=labels, progress=False)
    assert_same_history(runs["none"], runs["read"])
    assert runs["other"].history[-1]["semantic"] != pytest.approx(runs["none"].history[-1]["semantic"])
    for name, labels in (("none", None), ("read", True)):
        src = DataLoader(TensorDataset(x_s, read), batch_size=4, drop_last=True)
        tgt = DataLoader(TensorDataset(x_t), batch_size=4, drop_last=True)
        runs[name] = pair("gp", 3, 3, 0, **kw)[1].fit(src, tgt, 2, labels=labels, progress=False)
    assert_same_history(runs["none"], runs["read"])
    from fastwgan.core.run import read_config

    out = tmp_path / "run"  # a labelled run records it, checkpoints, and resumes into the other twin
    first = pair("gp", 3, 3, 0, **kw)[1].fit(x_s, x_t, 1, labels=read, out=out, progress=False)
    assert read_config(out)["semantic_labels"] is True and read_config(out)["semantic_threshold"] == 0.5
    ref = translate.ReferenceTranslationTrainer(*tiny_nets(3, 3, 9), first.config, **kw)
    ref.load_state_dict(fw.checkpoint.load(out))
    ref.fit(x_s, x_t, 2, labels=read, out=out, progress=False)
    assert [h["step"] for h in ref.history] == [1, 2]


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


def test_bad_labels_are_refused_with_one_line():
    from torch.utils.data import DataLoader, TensorDataset

    x_s, x_t = domains(1, 1)
    sem = translate.ReferenceTranslationTrainer(*tiny_nets(1, 1, 0), fw.TrainConfig(), semantic=classifier(1, 0))
    bad = [
        (source_labels(23), "labels: 24 images but 23 labels"),
        (torch.full((24,), 3), "labels: label 3 at index 0 is out of range for num_classes=3"),
        (torch.full((24,), -1), "labels: labels must be >= 0"),
        (torch.zeros(24, 2, dtype=torch.int64), "labels: labels must be a 1-D tensor"),
        (True, "labels=True is for a source DataLoader"),
    ]
    for labels, match in bad:
        with pytest.raises(ValueError, match=match) as e:
            sem.fit(x_s, x_t, 1, labels=labels)
        assert "\n" not in str(e.value)
    cfg = fw.TrainConfig(batch_size=4)
    sem = translate.ReferenceTranslationTrainer(*tiny_nets(1, 1, 0), cfg, semantic=classifier(1, 0))
    target = DataLoader(TensorDataset(x_t), batch_size=4)
    loader = DataLoader(TensorDataset(x_s, source_labels()), batch_size=4)
    with pytest.raises(ValueError, match="labels: a source DataLoader yields its labels in its batches"):
        sem.fit(loader, target, 1, labels=source_labels())
    late = torch.cat([source_labels(4), torch.full((20,), 3)])  # out of range after the first batch
    with pytest.raises(ValueError, match="batch 1 of epoch 0: label 3 at index 0 is out of range for num_classes=3"):
        sem.fit(DataLoader(TensorDataset(x_s, late), batch_size=4), target, 1, labels=True)
    with pytest.raises(ValueError, match=r"needs \(x, y\) batches"):
        sem.fit(DataLoader(TensorDataset(x_s), batch_size=4), target, 1, labels=True)
    with pytest.raises(ValueError, match="labels: only the semantic term reads source labels"):
        pair("gp", 1, 1, 0)[0].fit(x_s, x_t, 1, labels=source_labels())
    with pytest.raises(ValueError, match="semantic_threshold must be None or a number >= 0"):
        translate.ReferenceTranslationTrainer(*tiny_nets(1, 1, 0), fw.TrainConfig(), semantic_threshold=-0.1)
    assert sem.step == 0
