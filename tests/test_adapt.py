"""Feature alignment (fastwgan.uses.adapt: WDGRL, DANN, DIRT-T's refinement): the losses on analytic cases, the
penalty at the paper's points reaching the critic, VAT's direction against a float64 finite difference, the teacher
kept and refreshed, the fast trainer equal to the eager oracle (eager and compiled, no recompiles), and one-line
refusals of bad input (labels missing, mismatched domains, an empty domain, a critic where none is trained)."""

import pytest
import torch
import torch.nn.functional as F
from equivalence import (
    PRESETS,
    assert_close_modules,
    assert_penalty_reaches_critic,
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
from fastwgan.uses import adapt
from fastwgan.uses.domains import shift_images

K = 4


def domains(n=20, seed=0, channels=3):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (n, channels, 8, 8), dtype=torch.uint8, generator=g),
        torch.randint(0, K, (n,), generator=g),
        torch.randint(0, 256, (n + 3, channels, 8, 8), dtype=torch.uint8, generator=g),
    )


def tiny_nets(seed, channels=3):
    torch.manual_seed(seed)
    return (
        nn.Sequential(nn.Conv2d(channels, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 6), nn.Tanh()),
        nn.Linear(6, K),
        nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1)),
    )


def nets_for(seed, method="wdgrl"):
    """tiny_nets, without the critic for DIRT-T (it trains none)."""
    e, c, d = tiny_nets(seed)
    return e, c, None if method == "dirtt" else d


def pair(loss, seed, compile=False, config=None, threads="auto", **method):
    """The twins on tiny networks; ``method``: the trainers' method, clf_steps, entropy_weight (default WDGRL,
    clf_steps 1)."""
    cfg = fw.TrainConfig.preset(PRESETS[loss], loss=loss, batch_size=5, n_critic=2, seed=seed, **(config or {}))
    method = {"clf_steps": 1, **method}
    m = method.get("method", "wdgrl")
    return (
        adapt.ReferenceAdaptTrainer(*nets_for(seed, m), cfg, 0.5, **method),
        adapt.AdaptTrainer(*nets_for(seed, m), cfg, 0.5, compile=compile, threads=threads, **method),
    )


# ------------------------------------------------------------------------------------------------ the losses
@pytest.mark.parametrize("calculus", ["eager", "functional"])
def test_domain_critic_loss_of_a_linear_critic_is_analytic(calculus):
    # f_w(h) = <w, h>: its gradient is w at every point of H = {h_s, h_t, interpolates}: penalty (||w|| - 1)^2
    g = torch.Generator().manual_seed(0)
    h_s, h_t, w = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g) + 1, torch.randn(5, generator=g)
    calc = objectives.EAGER if calculus == "eager" else objectives.compiled_calculus("torch", "torch")
    loss, aux = adapt.domain_critic_loss(lambda h: h @ w, h_s, h_t, torch.rand(6, generator=g), "gp", 10.0, calc)
    wd = (h_s @ w).mean() - (h_t @ w).mean()
    assert aux["w_estimate"].item() == pytest.approx(wd.item(), rel=1e-5)
    assert aux["gp"].item() == pytest.approx(((w.norm() - 1) ** 2).item(), rel=1e-5)
    assert loss.item() == pytest.approx((-wd + 10 * (w.norm() - 1) ** 2).item(), rel=1e-5)


def test_the_penalty_points_are_the_papers():
    # H = {h_s, h_t, eps h_s + (1 - eps) h_t}: a critic whose gradient norm is |h| (f_w(h) = |h|^2 / 2) has
    # penalty mean over the 3B points of (|h| - 1)^2
    g = torch.Generator().manual_seed(1)
    h_s, h_t, eps = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.rand(4, generator=g)
    _, aux = adapt.domain_critic_loss(lambda h: h.square().sum(1) / 2, h_s, h_t, eps, "gp", 10.0)
    pts = torch.cat([h_s, h_t, eps[:, None] * h_s + (1 - eps[:, None]) * h_t])
    assert aux["gp"].item() == pytest.approx(((pts.norm(dim=1) - 1) ** 2).mean().item(), rel=1e-5)


def test_alignment_loss_is_cross_entropy_plus_lambda_times_the_estimate():
    g = torch.Generator().manual_seed(2)
    x_s, x_t, y = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.randint(0, 3, (5,))
    w = torch.randn(3, 3, generator=g)
    loss, aux = adapt.alignment_loss(lambda x: x * 2, lambda h: h @ w, lambda h: h.sum(1), x_s, y, x_t, 0.7)
    ce = F.cross_entropy((x_s * 2) @ w, y)
    wd = (x_s * 2).sum(1).mean() - (x_t * 2).sum(1).mean()
    assert aux["classifier_loss"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert aux["wd"].item() == pytest.approx(wd.item(), rel=1e-5)
    assert loss.item() == pytest.approx((ce + 0.7 * wd).item(), rel=1e-5)


def test_dann_losses_are_the_domain_cross_entropy_and_its_reversal():
    g = torch.Generator().manual_seed(4)
    x_s, x_t, y = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) + 1, torch.randint(0, 3, (6,))
    w, v = torch.randn(3, generator=g), torch.randn(3, 3, generator=g)
    s, t = x_s @ w, x_t @ w
    bce = (F.softplus(-s).mean() + F.softplus(t).mean()) / 2  # -log sigmoid(s) for source = 1, target = 0
    loss, aux = adapt.domain_critic_loss(lambda h: h @ w, x_s, x_t, None, "gp", 10.0, method="dann")
    assert loss.item() == pytest.approx(bce.item(), rel=1e-5)
    assert aux["domain_accuracy"].item() == pytest.approx(((s > 0).float().mean() + (t <= 0).float().mean()) / 2)
    total, aux = adapt.alignment_loss(lambda x: x, lambda h: h @ v, lambda h: h @ w, x_s, y, x_t, 0.3, "dann")
    ce = F.cross_entropy(x_s @ v, y)
    assert aux["domain_loss"].item() == pytest.approx(bce.item(), rel=1e-5)
    assert total.item() == pytest.approx((ce - 0.3 * bce).item(), rel=1e-5)  # the extractor ascends L_dom


def test_the_entropy_term_is_the_target_predictions_entropy():
    g = torch.Generator().manual_seed(5)
    x_s, x_t, y = torch.randn(5, 3, generator=g), torch.randn(7, 3, generator=g), torch.randint(0, 3, (5,))
    v = torch.randn(3, 3, generator=g)
    p = F.softmax(x_t @ v, 1)
    h = -(p * p.log()).sum(1).mean()
    args = (lambda x: x, lambda z: z @ v, lambda z: z.sum(1), x_s, y, x_t, 0.0)
    off, aux = adapt.alignment_loss(*args)
    on, _ = adapt.alignment_loss(*args, "wdgrl", 0.25)
    assert aux["target_entropy"].item() == pytest.approx(h.item(), rel=1e-5)
    assert (on - off).item() == pytest.approx(0.25 * h.item(), rel=1e-5)
    assert aux["feature_norm_t"].item() == pytest.approx(x_t.norm(dim=1).mean().item(), rel=1e-5)


@pytest.mark.parametrize("calculus", ["eager", "functional"])
def test_vat_direction_is_the_limit_of_the_papers_power_step(calculus):
    # the exact H d against the official finite step, taken in float64 (where xi = 1e-6 is not lost to rounding)
    calc = objectives.EAGER if calculus == "eager" else objectives.compiled_calculus("torch", "torch")
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(256, K))
    g = torch.Generator().manual_seed(2)
    x, d = torch.randn(6, 3, 8, 8, generator=g), torch.randn(6, 3, 8, 8, generator=g)
    r = adapt.vat_direction(net, x, d, net(x), calc)
    assert r.shape == x.shape and not r.requires_grad
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.ones(6))
    net64, x64 = net.double(), x.double()
    step = (1e-6 * d.double() / d.double().flatten(1).norm(dim=1).view(-1, 1, 1, 1)).requires_grad_(True)
    p = F.log_softmax(net64(x64), dim=1).detach()
    kl = (p.exp() * (p - F.log_softmax(net64(x64 + step), dim=1))).sum()
    (fd,) = torch.autograd.grad(kl, step)
    cos = (F.normalize(fd.flatten(1), dim=1) * r.double().flatten(1)).sum(1)
    assert cos.min() > 0.9999, cos


def test_refinement_loss_is_entropy_plus_vat_plus_weighted_teacher_kl():
    torch.manual_seed(0)
    extract, classify, _ = tiny_nets(0)
    x_s, y_s, x_t = domains(seed=4)
    x_s, x_t, d = fw.data.to_float(x_s[:5]), fw.data.to_float(x_t[:5]), torch.randn(5, 3, 8, 8)
    logits = classify(extract(x_t))
    teacher = logits.detach() + torch.randn(5, K)
    loss, aux = adapt.refinement_loss(extract, classify, teacher, x_s, y_s[:5], x_t, d, 0.7, 0.0)
    p, lq = F.softmax(teacher, 1), F.log_softmax(logits, 1)
    kl = (p * (p.log() - lq)).sum(1).mean()
    entropy = -(lq.exp() * lq).sum(1).mean()
    assert aux["vat"].item() == pytest.approx(0.0, abs=1e-6)  # radius 0: no perturbation
    assert aux["teacher_kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert aux["target_entropy"].item() == pytest.approx(entropy.item(), rel=1e-5)
    assert loss.item() == pytest.approx((entropy + 0.7 * kl).item(), rel=1e-5)
    ce = F.cross_entropy(classify(extract(x_s)), y_s[:5])
    assert aux["classifier_loss"].item() == pytest.approx(ce.item(), rel=1e-5)
    # the source is only read: no gradient reaches the classifier from it
    loss_t, _ = adapt.refinement_loss(extract, classify, teacher, x_s, y_s[:5], x_t, d, 0.7, 1.5)
    x_s2 = torch.zeros_like(x_s)
    loss_t2, aux2 = adapt.refinement_loss(extract, classify, teacher, x_s2, y_s[:5], x_t, d, 0.7, 1.5)
    assert loss_t.item() == pytest.approx(loss_t2.item(), rel=1e-6) and aux2["vat"] > 0


def test_the_defaults_name_the_published_settings():
    cfg = adapt.default_config("wdgrl")
    assert (cfg.optimizer, cfg.betas, cfg.lr_d, cfg.lr_g, cfg.n_critic, cfg.gp_weight) == (
        "adam",
        (0.9, 0.999),
        1e-4,
        1e-4,
        5,
        10.0,
    )
    t = adapt.ReferenceAdaptTrainer(*tiny_nets(0), cfg)
    assert (t.method, t.weight, t.clf_steps, t.entropy_weight, t.shift) == ("wdgrl", 0.1, 1, 0.0, False)
    d = adapt.ReferenceAdaptTrainer(*tiny_nets(0), adapt.default_config("dann"), method="dann")
    assert (d.weight, d.clf_steps, d.config.n_critic) == (1.0, 1, 1)
    r = adapt.ReferenceAdaptTrainer(*nets_for(0, "dirtt"), adapt.default_config("dirtt"), method="dirtt")
    assert (r.weight, r.config.optimizer, r.config.lr_g, r.config.betas) == (1.0, "adam", 1e-3, (0.5, 0.999))
    assert adapt.TEACHER_EVERY == 5000 and adapt.vat_radius((3, 32, 32)) == 3.5
    assert adapt.vat_radius((1, 8, 8)) == pytest.approx(3.5 / 48**0.5)


def test_the_step_trains_on_both_batches_shifted_by_the_streams_draws():
    # the draw's shifts (after idx and eps: the docstring's stream) move each image of both batches
    x_s, y_s, x_t = domains(seed=7)
    ref, seen = pair("gp", 7, shift=True)[0], []
    features = ref._features
    ref._features = lambda a, b: seen.append((a, b)) or features(a, b)
    ref.fit(x_s, x_t, 1, labels=y_s, progress=False)
    g = torch.Generator().manual_seed(7)
    b, k = ref.config.batch_size, ref.config.n_critic
    idx_s, idx_t = torch.randint(0, len(x_s), (b,), generator=g), torch.randint(0, len(x_t), (b,), generator=g)
    torch.rand(k, b, generator=g)  # eps
    s_s, s_t = torch.randint(-1, 2, (b, 2), generator=g), torch.randint(-1, 2, (b, 2), generator=g)
    (a, c), to_float = seen[0], fw.data.to_float
    torch.testing.assert_close(a, shift_images(to_float(x_s[idx_s]), s_s))
    torch.testing.assert_close(c, shift_images(to_float(x_t[idx_t]), s_t))
    assert not torch.equal(a, to_float(x_s[idx_s]))  # the shifts moved something


def test_the_photometric_step_varies_the_source_batch_by_the_streams_draws():
    # after the shifts in the stream: a sign per image, then a gain and an offset per image and channel; only the
    # source batch changes (the target is what the classifier must read as it is)
    x_s, y_s, x_t = domains(seed=5)
    ref, seen = pair("gp", 5, shift=True, photometric=True)[0], []
    features = ref._features
    ref._features = lambda a, b: seen.append((a, b)) or features(a, b)
    ref.fit(x_s, x_t, 1, labels=y_s, progress=False)
    g = torch.Generator().manual_seed(5)
    b, k, c = ref.config.batch_size, ref.config.n_critic, x_s.shape[1]
    idx_s, idx_t = torch.randint(0, len(x_s), (b,), generator=g), torch.randint(0, len(x_t), (b,), generator=g)
    torch.rand(k, b, generator=g)  # eps
    s_s, s_t = torch.randint(-1, 2, (b, 2), generator=g), torch.randint(-1, 2, (b, 2), generator=g)
    sign = torch.where(torch.rand(b, 1, generator=g) < 0.5, -1.0, 1.0)
    gain, offset = sign * (0.3 + 0.7 * torch.rand(b, c, generator=g)), torch.rand(b, c, generator=g) - 0.5
    (a, t), to_float = seen[0], fw.data.to_float
    shifted = shift_images(to_float(x_s[idx_s]), s_s)
    torch.testing.assert_close(a, (gain[:, :, None, None] * shifted + offset[:, :, None, None]).clamp(-1, 1))
    torch.testing.assert_close(t, shift_images(to_float(x_t[idx_t]), s_t))
    assert ((gain < 0).all(1) | (gain > 0).all(1)).all() and 0 < (gain < 0).float().mean() < 1  # polarity per image
    assert ((gain.abs() >= 0.3) & (gain.abs() <= 1) & (offset.abs() <= 0.5)).all()
    assert ref.photometric and adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig()).photometric is False


@pytest.mark.parametrize("loss", ["gp", "lp"])
def test_the_penalty_gradient_reaches_the_critic(loss):
    g = torch.Generator().manual_seed(3)
    h_s, h_t, eps = torch.randn(5, 6, generator=g) * 3, torch.randn(5, 6, generator=g), torch.rand(5, generator=g)
    assert_penalty_reaches_critic(lambda config: pair(loss, 0, config=config), h_s, h_t, eps)


# ------------------------------------------------------------------------------------------------ equivalence
@given(
    seed=st.integers(0, 2**16),
    loss=st.sampled_from(["gp", "clip", "lp"]),
    method=st.sampled_from(adapt.METHODS),
    clf_steps=st.integers(1, 3),
    entropy_weight=st.sampled_from([0.0, 0.3]),
    shift=st.booleans(),
    photometric=st.booleans(),
)
def test_fast_trainer_matches_the_oracle_eager(seed, loss, method, clf_steps, entropy_weight, shift, photometric):
    x_s, y_s, x_t = domains(seed=seed)
    kw = {"clf_steps": clf_steps, "entropy_weight": entropy_weight, "shift": shift, "photometric": photometric}
    ref, fast = pair(loss, seed, method=method, **kw)
    ref.fit(x_s, x_t, 3, labels=y_s, progress=False)
    fast.fit(x_s, x_t, 3, labels=y_s, progress=False)
    assert_same_history(ref, fast)
    if method != "dirtt":
        assert_close_modules(ref.critic, fast.critic, what="critic.")
    assert_close_modules(ref.model, fast.model, what="model.")
    torch.testing.assert_close(fast.predict(x_t), ref.predict(x_t))


@pytest.fixture(scope="module")
def compiled():
    fresh_graph_counts()  # the graph counts below are this trainer's
    # threads=1: a new thread count is a new compile by design (fastwgan.core.threads), which is not what this tests
    # (threads="auto" moved to 1 thread when the 2 cores were shared, and the graph recompiled: found under load)
    return pair("gp", 0, compile=True, threads=1)[1]


@pytest.mark.slow
@given(seed=st.integers(0, 2**16))
def test_compiled_trainer_matches_the_oracle_without_recompiles(compiled, seed):
    x_s, y_s, x_t = domains(seed=seed)
    ref = adapt.ReferenceAdaptTrainer(*tiny_nets(seed), compiled.config, 0.5, clf_steps=1)
    compiled.load_state_dict(ref.state_dict())
    with no_recompile_once_warm():
        compiled.fit(x_s, x_t, 3, labels=y_s, progress=False)
    ref.fit(x_s, x_t, 3, labels=y_s, progress=False)
    assert unique_graphs() == 3  # features, critic update, model update
    assert_same_history(ref, compiled)
    assert_close_modules(ref.model, compiled.model, what="model.")


@pytest.mark.slow
@given(seed=st.integers(0, 2**16))
def test_compiled_refinement_matches_the_oracle_without_recompiles(seed):
    # DIRT-T's step (VAT's Jacobian-vector product inside the parameters' gradient) as one compiled graph
    x_s, y_s, x_t = domains(seed=seed)
    fast = _compiled_dirtt()
    ref = adapt.ReferenceAdaptTrainer(*nets_for(seed, "dirtt"), fast.config, 0.5, clf_steps=1, method="dirtt")
    fast.load_state_dict(ref.state_dict())
    with no_recompile_once_warm():
        fast.fit(x_s, x_t, 3, labels=y_s, progress=False)
    ref.fit(x_s, x_t, 3, labels=y_s, progress=False)
    assert_same_history(ref, fast)
    assert_close_modules(ref.model, fast.model, what="model.")


_DIRTT = []


def _compiled_dirtt():
    if not _DIRTT:
        _DIRTT.append(pair("gp", 0, compile=True, threads=1, method="dirtt")[1])
    return _DIRTT[0]


@pytest.mark.parametrize("method", adapt.METHODS)
def test_a_resumed_run_continues_exactly(tmp_path, method):
    x_s, y_s, x_t = domains(seed=6)
    straight = pair("gp", 6, method=method, clf_steps=2)[1]
    straight.fit(x_s, x_t, 4, labels=y_s, progress=False)
    first = pair("gp", 6, method=method, clf_steps=2)[1]
    first.fit(x_s, x_t, 2, labels=y_s, out=tmp_path / "run", progress=False)
    # other initial weights: everything comes from the checkpoint (into the other twin)
    ref = adapt.ReferenceAdaptTrainer(*nets_for(99, method), first.config, 0.5, method=method, clf_steps=2)
    ref.load_state_dict(fw.checkpoint.load(tmp_path / "run"))
    if method == "dirtt":  # the teacher is the run's first weights, from the checkpoint
        assert ref.teacher_step == 0
        for k, v in straight.teacher.items():
            torch.testing.assert_close(ref.teacher[k], v)
    ref.fit(x_s, x_t, 4, labels=y_s, out=tmp_path / "run", progress=False)
    assert [h["step"] for h in ref.history] == [1, 2, 3, 4]
    assert_same_history(ref, straight)
    assert_close_modules(ref.model, straight.model, what="model.")


def test_the_teacher_is_the_start_then_refreshed_every_teacher_every_steps(monkeypatch):
    monkeypatch.setattr(adapt.base, "TEACHER_EVERY", 3)
    x_s, y_s, x_t = domains(seed=8)
    ref = pair("gp", 8, method="dirtt")[0]
    start = {k: p.detach().clone() for k, p in ref.model.named_parameters()}
    ref.fit(x_s, x_t, 3, labels=y_s, progress=False)
    assert ref.teacher_step == 0
    for k, v in start.items():
        torch.testing.assert_close(ref.teacher[k], v)
    at3 = {k: p.detach().clone() for k, p in ref.model.named_parameters()}
    assert any(not torch.equal(at3[k], v) for k, v in start.items())
    ref.fit(x_s, x_t, 5, labels=y_s, progress=False)
    assert ref.teacher_step == 3
    for k, v in at3.items():
        torch.testing.assert_close(ref.teacher[k], v)


def test_digit_networks_carry_the_digit_classifier():
    from fastwgan.eval.classifier import DigitClassifier

    extractor, head, critic = adapt.digit_networks(3)
    clf = DigitClassifier(3)
    extractor.load_state_dict(clf.body.state_dict())  # same layout: a trained classifier warm-starts WDGRL
    head.load_state_dict(clf.head.state_dict())
    assert critic(extractor(torch.zeros(2, 3, 8, 8))).shape == (2,)
    e28, _, _ = adapt.digit_networks(1, num_classes=5, image_size=28)
    assert e28(torch.zeros(2, 1, 28, 28)).shape == (2, 128)


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_refused_with_one_line():
    x_s, y_s, x_t = domains()
    ref, _ = pair("gp", 0)
    with pytest.raises(ValueError, match="labels: adaptation trains the classifier on labelled source data"):
        ref.fit(x_s, x_t, 1)
    with pytest.raises(ValueError, match="labels"):
        ref.fit(x_s, x_t, 1, labels=y_s[:-1])
    with pytest.raises(ValueError, match="out of range for num_classes=4"):
        ref.fit(x_s, x_t, 1, labels=torch.full_like(y_s, K))
    with pytest.raises(ValueError, match="target: the domain is empty"):
        ref.fit(x_s, x_t[:0], 1, labels=y_s)
    with pytest.raises(ValueError, match=r"one shape, got \(3, 8, 8\) \(source\) and \(1, 8, 8\) \(target\)"):
        ref.fit(x_s, x_t[:, :1], 1, labels=y_s)
    with pytest.raises(ValueError, match="weight must be a non-negative finite number"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), -1.0)
    with pytest.raises(ValueError, match="entropy_weight must be a non-negative finite number"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), entropy_weight=float("nan"))
    with pytest.raises(ValueError, match="method must be one of"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), method="mmd")
    with pytest.raises(ValueError, match="clf_steps must be an integer >= 1, got 0"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), clf_steps=0)
    with pytest.raises(ValueError, match="shift must be True or False, got 1"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), shift=1)
    with pytest.raises(ValueError, match="photometric must be True or False, got 'yes'"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), photometric="yes")
    with pytest.raises(ValueError, match="critic: method 'dirtt' trains no critic: give critic=None"):
        adapt.ReferenceAdaptTrainer(*tiny_nets(0), fw.TrainConfig(), method="dirtt")
    with pytest.raises(ValueError, match="critic: method 'wdgrl' trains a domain critic on the features"):
        adapt.AdaptTrainer(*nets_for(0, "dirtt"), fw.TrainConfig(), compile=False)
