"""fastwgan.gan.models with num_classes: G(z, y); projection critic D(x, y) -> (B,); AC critic D(x, y) -> ((B,), (B,
K)).

Also pins the unconditional models (num_classes=None) to today's parameter names and shapes.
"""

import json

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad
from torch.nn.modules.batchnorm import _BatchNorm

from fastwgan.gan import models

K, LATENT, B = 5, 6, 4
CASES = [  # (kind, data_shape, options): small, so the file is fast
    ("mlp", (1, 8, 8), dict(hidden=16, depth=2)),
    ("mlp", (2,), dict(hidden=16, depth=2)),
    ("dcgan", (1, 32, 32), dict(width=4)),
    ("dcgan", (3, 32, 32), dict(width=4)),
    ("resnet", (3, 32, 32), dict(dim=8)),
]
IDS = ["mlp-1x8x8", "mlp-2", "dcgan-1x32", "dcgan-3x32", "resnet-3x32"]
CONDS = models.CONDITIONINGS


def _pair(kind, shape, kw, cond, norm="none", seed=0):
    torch.manual_seed(seed)
    return models.build(kind, shape, LATENT, critic_norm=norm, num_classes=K, conditioning=cond, **kw)


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, LATENT, generator=g),
        torch.randn(B, *shape, generator=g),
        torch.tensor([0, 3, 1, 4]),
    )  # z (B, latent), x (B, *shape), y (B,) int64


def _score(out):
    return out[0] if isinstance(out, tuple) else out


def _phi(D, x):
    """phi(x) rebuilt by hand from the critic's own submodules: everything before the last linear layer."""
    if isinstance(D.body, nn.Sequential):
        h = x
        for m in list(D.body)[:-1]:
            h = m(h)
        return h, D.body[-1]
    return torch.relu(D.body.blocks(x)).mean(dim=(2, 3)), D.body.output


# ----------------------------------------------------------------------------------------------------------------
# Shapes, structure, spec
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_shapes_and_structure(kind, shape, kw, cond):
    G, D = _pair(kind, shape, kw, cond)
    z, _, y = _inputs(shape)
    x = G(z, y)
    assert x.shape == (B, *shape)
    out = D(x, y)
    if cond == "acgan":
        score, logits = out
        assert score.shape == (B,) and logits.shape == (B, K)
        assert D(x)[1].shape == (B, K)  # y may be left out of an AC critic
    else:
        assert out.shape == (B,)
    assert torch.isfinite(_score(out)).all()
    D.eval()
    assert _score(D(x[:1], y[:1])).shape == (1,)  # B = 1 still gives (B,)
    assert G.spec == D.spec and G.spec["num_classes"] == K and G.spec["conditioning"] == cond
    assert models.is_conditional(G) and models.is_conditional(D)
    assert models.critic_has_classifier(D) == (cond == "acgan")
    assert not models.has_batch_norm(D)  # critic_norm "none": the penalty stays per-sample
    assert models.has_batch_norm(G) == (kind != "mlp")  # conditional batch norm counts as batch norm


@pytest.mark.parametrize("kind,shape,kw", [c for c in CASES if c[0] != "mlp"], ids=IDS[2:])
def test_every_generator_batch_norm_is_conditional(kind, shape, kw):
    torch.manual_seed(0)
    G0, _ = models.build(kind, shape, LATENT, **kw)
    G, _ = _pair(kind, shape, kw, "projection")
    cbns = [m for m in G.modules() if isinstance(m, (models.ConditionalBatchNorm1d, models.ConditionalBatchNorm2d))]
    bns = [m for m in G.modules() if isinstance(m, _BatchNorm)]
    assert len(cbns) == len(bns) == sum(isinstance(m, _BatchNorm) for m in G0.modules())
    assert all(any(c.bn is b for c in cbns) for b in bns)  # no plain batch norm left outside a CBN
    for c in cbns:
        assert not c.bn.affine and c.gain.weight.shape == c.shift.weight.shape == (K, c.num_features)
        assert (c.gain.weight == 1).all() and (c.shift.weight == 0).all()
    if kind == "dcgan":
        assert isinstance(G.body[1], models.ConditionalBatchNorm1d)  # the 1-D batch norm after the first Linear


def test_conditional_batch_norm_formula():
    torch.manual_seed(0)
    cbn = models.ConditionalBatchNorm2d(3, K)
    nn.init.normal_(cbn.gain.weight)
    nn.init.normal_(cbn.shift.weight)
    x, y = torch.randn(4, 3, 5, 7), torch.tensor([2, 0, 2, 4])
    ref = nn.functional.batch_norm(x, None, None, training=True)
    want = ref * cbn.gain.weight[y][:, :, None, None] + cbn.shift.weight[y][:, :, None, None]
    torch.testing.assert_close(cbn(x, y), want)
    cbn1 = models.ConditionalBatchNorm1d(3, K)
    assert cbn1(torch.randn(4, 3), y).shape == (4, 3)


def test_mlp_generator_concatenates_a_class_embedding():
    G, _ = _pair("mlp", (2,), dict(hidden=16, depth=2), "projection")
    assert isinstance(G.embed, nn.Embedding) and G.embed.weight.shape == (K, LATENT)
    assert G.body[0].in_features == 2 * LATENT
    z, _, y = _inputs((2,))
    torch.testing.assert_close(G(z, y), G.body(torch.cat([z, G.embed.weight[y]], 1), y))


@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_critic_keeps_the_unconditional_parameter_names(kind, shape, kw, cond):
    """The conditional critic is the unconditional one plus `embed` (projection) or `classifier` (AC)."""
    torch.manual_seed(0)
    _, D0 = models.build(kind, shape, LATENT, **kw)
    _, D = _pair(kind, shape, kw, cond)
    extra = {"embed.weight"} if cond == "projection" else {"classifier.weight", "classifier.bias"}
    assert set(D.state_dict()) == set(D0.state_dict()) | extra
    F = _phi(D0, torch.zeros(1, *shape))[0].shape[1]
    assert (D.embed.weight.shape == (K, F)) if cond == "projection" else (D.classifier.weight.shape == (K, F))


# ----------------------------------------------------------------------------------------------------------------
# The two critic formulas, and that y really conditions
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["none", "layer"])
@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_projection_formula(kind, shape, kw, norm):
    _, D = _pair(kind, shape, kw, "projection", norm=norm)
    _, x, y = _inputs(shape)
    h, psi = _phi(D, x)  # (B, F), Linear(F, 1)
    want = psi(h)[:, 0] + (D.embed.weight[y] * h).sum(1)  # psi(phi(x)) + <embed(y), phi(x)>
    torch.testing.assert_close(D(x, y), want)
    torch.testing.assert_close(D.features(x), h)


@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_acgan_heads(kind, shape, kw):
    _, D = _pair(kind, shape, kw, "acgan")
    _, x, y = _inputs(shape)
    h, psi = _phi(D, x)
    score, logits = D(x, y)
    torch.testing.assert_close(score, psi(h)[:, 0])
    torch.testing.assert_close(logits, D.classifier(h))
    score2, logits2 = D(x, (y + 1) % K)  # y is ignored
    assert torch.equal(score, score2) and torch.equal(logits, logits2)


@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_labels_condition_the_generator(kind, shape, kw):
    G, _ = _pair(kind, shape, kw, "projection")
    with torch.no_grad():  # CBN starts at gain 1, bias 0 for every class: move it
        for m in G.modules():
            if isinstance(m, (models.ConditionalBatchNorm1d, models.ConditionalBatchNorm2d)):
                m.gain.weight.normal_(1.0, 0.3)
                m.shift.weight.normal_(0.0, 0.3)
    G.eval()  # running stats: each sample depends on its own (z, y)
    z, _, y = _inputs(shape)
    y2 = y.clone()
    y2[-1] = (y[-1] + 1) % K
    with torch.no_grad():
        a, b = G(z, y), G(z, y2)
    torch.testing.assert_close(a[:-1], b[:-1])
    assert (a[-1] - b[-1]).abs().max() > 1e-4


@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_labels_condition_the_projection_critic(kind, shape, kw):
    _, D = _pair(kind, shape, kw, "projection")
    _, x, y = _inputs(shape)
    y2 = y.clone()
    y2[-1] = (y[-1] + 1) % K
    with torch.no_grad():
        a, b = D(x, y), D(x, y2)
    torch.testing.assert_close(a[:-1], b[:-1])
    assert (a[-1] - b[-1]).abs() > 1e-6


@pytest.mark.parametrize("norm", ["none", "layer"])
@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_critic_is_per_sample(kind, shape, kw, cond, norm):
    """The penalty needs D(x, y)[i] to depend on (x[i], y[i]) only, in train mode."""
    _, D = _pair(kind, shape, kw, cond, norm=norm)
    D.train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, *shape, generator=g), torch.tensor([1, 0, 2, 3, 4, 0])
    x2, y2 = x.clone(), torch.tensor([1, 4, 4, 0, 1, 2])
    x2[1:] = torch.randn(5, *shape, generator=g) * 3 + 1
    with torch.no_grad():
        a, b = D(x, y), D(x2, y2)
    for u, v in zip(a, b) if cond == "acgan" else [(a, b)]:
        torch.testing.assert_close(u[0], v[0], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# torch.func and torch.compile
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_torch_func_penalty_matches_autograd(kind, shape, kw, cond):
    """d/dx of D(x, y).sum() with y fixed, and the penalty's parameter gradient through it, as the trainers do."""
    _, D = _pair(kind, shape, kw, cond, norm="layer")
    params = dict(D.named_parameters())
    _, x, y = _inputs(shape)

    def gx_of(p):
        return grad(lambda xx: _score(functional_call(D, p, (xx, y))).sum())(x)  # (B, *shape)

    assert gx_of(params).shape == (B, *shape)

    def penalty(p):
        return ((gx_of(p).flatten(1).norm(dim=1) - 1) ** 2).mean()

    g_func = grad(penalty)(params)
    xr = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(_score(D(xr, y)).sum(), xr, create_graph=True)
    ref = ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean()
    g_ref = torch.autograd.grad(ref, list(params.values()), materialize_grads=True)
    for (name, a), b in zip(g_func.items(), g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def test_compile_fullgraph_mlp_pair():
    torch._dynamo.reset()
    for cond in CONDS:
        G, D = _pair("mlp", (2,), dict(hidden=8, depth=1), cond)
        z, _, y = _inputs((2,))
        backend = "inductor" if cond == "projection" else "aot_eager"  # one real compile; the other traces only
        x = torch.compile(G, fullgraph=True, backend=backend)(z, y)
        out = torch.compile(D, fullgraph=True, backend=backend)(x, y)
        torch.testing.assert_close(x, G(z, y))
        for u, v in zip(out, D(x, y)) if cond == "acgan" else [(out, D(x, y))]:
            torch.testing.assert_close(u, v)


@pytest.mark.parametrize("kind,shape,kw", [CASES[3], CASES[4]], ids=[IDS[3], IDS[4]])
def test_conv_pairs_trace_in_one_graph(kind, shape, kw):
    """Dynamo only (backend "eager"): no graph break in the CBN generator or the projection penalty gradient."""
    torch._dynamo.reset()
    G, D = _pair(kind, shape, kw, "projection")
    z, x, y = _inputs(shape)
    torch.testing.assert_close(torch.compile(G, fullgraph=True, backend="eager")(z, y), G(z, y))
    params = dict(D.named_parameters())
    gx = torch.compile(
        lambda p, xx: grad(lambda t: functional_call(D, p, (t, y)).sum())(xx), fullgraph=True, backend="eager"
    )(params, x)
    assert gx.shape == (B, *shape)


# ----------------------------------------------------------------------------------------------------------------
# Spec round trip and argument checks
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("kind,shape,kw", CASES, ids=IDS)
def test_spec_round_trip(kind, shape, kw, cond):
    G, D = _pair(kind, shape, kw, cond)
    spec = json.loads(json.dumps(G.spec))
    G2, D2 = models.build(**spec)
    assert G2.spec == G.spec == D2.spec
    for a, b in ((G, G2), (D, D2)):
        assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
        b.load_state_dict(a.state_dict())
        a.eval(), b.eval()
    z, x, y = _inputs(shape)
    torch.testing.assert_close(G2(z, y), G(z, y))
    torch.testing.assert_close(_score(D2(x, y)), _score(D(x, y)))


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: models.mlp((2,), 2, num_classes=1), "num_classes.*got 1$"),
        (lambda: models.mlp((2,), 2, num_classes=0), "num_classes.*got 0$"),
        (lambda: models.dcgan(32, 3, 2, num_classes=True), "num_classes.*got True$"),
        (lambda: models.resnet(num_classes=2.0), r"num_classes.*got 2\.0$"),
        (lambda: models.build("mlp", (2,), 2, num_classes="10"), "num_classes.*got '10'$"),
        (lambda: models.mlp((2,), 2, num_classes=3, conditioning="cgan"), "conditioning.*got 'cgan'$"),
        (lambda: models.build("dcgan", (1, 28, 28), 2, num_classes=3, conditioning=None), "conditioning.*got None$"),
        (lambda: models.resnet(num_classes=None, conditioning="acgan"), "conditioning='acgan' needs num_classes"),
    ],
)
def test_bad_conditioning_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        call()
    assert "\n" not in str(err.value)


def test_helpers_on_unconditional_and_plain_modules():
    G, D = models.mlp((2,), 2, hidden=4)
    assert not models.is_conditional(G) and not models.critic_has_classifier(D)
    assert not models.is_conditional(nn.Linear(2, 2)) and not models.critic_has_classifier(nn.Linear(2, 2))


# ----------------------------------------------------------------------------------------------------------------
# num_classes=None: today's models, unchanged
# ----------------------------------------------------------------------------------------------------------------
def _resnet_keys(dim, channels, latent):
    g = {"body.input.weight": (16 * dim, latent), "body.input.bias": (16 * dim,)}
    for i in range(3):
        for n in ("n1", "n2"):
            g.update({f"body.blocks.{i}.{n}.{p}": (dim,) for p in ("weight", "bias", "running_mean", "running_var")})
            g[f"body.blocks.{i}.{n}.num_batches_tracked"] = ()
        for c, k in (("conv1", 3), ("conv2", 3), ("shortcut", 1)):
            g.update({f"body.blocks.{i}.{c}.weight": (dim, dim, k, k), f"body.blocks.{i}.{c}.bias": (dim,)})
    g.update({f"body.norm.{p}": (dim,) for p in ("weight", "bias", "running_mean", "running_var")})
    g.update(
        {
            "body.norm.num_batches_tracked": (),
            "body.output.weight": (channels, dim, 3, 3),
            "body.output.bias": (channels,),
        }
    )
    d = {}
    for i in range(4):  # block 0 reads the image; blocks 0, 1 down-sample
        for c, k in (("conv1", 3), ("conv2", 3)) + ((("shortcut", 1),) if i < 2 else ()):
            cin = channels if i == 0 and c != "conv2" else dim
            d.update({f"body.blocks.{i}.{c}.weight": (dim, cin, k, k), f"body.blocks.{i}.{c}.bias": (dim,)})
    d.update({"body.output.weight": (1, dim), "body.output.bias": (1,)})
    return g, d


UNCONDITIONAL = [  # (build args, generator keys -> shapes, critic keys -> shapes), as of today
    (
        ("mlp", (2,), 3, "layer", dict(hidden=4, depth=2)),
        {
            "body.0.weight": (4, 3),
            "body.0.bias": (4,),
            "body.2.weight": (4, 4),
            "body.2.bias": (4,),
            "body.4.weight": (2, 4),
            "body.4.bias": (2,),
        },
        {
            "body.1.weight": (4, 2),
            "body.1.bias": (4,),
            "body.2.weight": (4,),
            "body.2.bias": (4,),
            "body.4.weight": (4, 4),
            "body.4.bias": (4,),
            "body.5.weight": (4,),
            "body.5.bias": (4,),
            "body.7.weight": (1, 4),
            "body.7.bias": (1,),
        },
    ),
    (
        ("dcgan", (1, 28, 28), 3, "layer", dict(width=2)),
        {
            "body.0.weight": (196, 3),
            "body.1.weight": (196,),
            "body.1.bias": (196,),
            "body.1.running_mean": (196,),
            "body.1.running_var": (196,),
            "body.1.num_batches_tracked": (),
            "body.4.weight": (4, 2, 4, 4),
            "body.5.weight": (2,),
            "body.5.bias": (2,),
            "body.5.running_mean": (2,),
            "body.5.running_var": (2,),
            "body.5.num_batches_tracked": (),
            "body.7.weight": (2, 1, 4, 4),
            "body.7.bias": (1,),
        },
        {
            "body.0.weight": (2, 1, 4, 4),
            "body.0.bias": (2,),
            "body.2.weight": (4, 2, 4, 4),
            "body.3.weight": (4,),
            "body.3.bias": (4,),
            "body.6.weight": (1, 196),
            "body.6.bias": (1,),
        },
    ),
    (("resnet", (1, 32, 32), 3, "none", dict(dim=2)), *_resnet_keys(2, 1, 3)),
]


@pytest.mark.parametrize("args,g_keys,d_keys", UNCONDITIONAL, ids=["mlp", "dcgan", "resnet"])
def test_unconditional_models_are_unchanged(args, g_keys, d_keys):
    kind, shape, latent, norm, kw = args
    G, D = models.build(kind, shape, latent, critic_norm=norm, **kw)
    assert type(G) is models.Generator and type(D) is models.Critic
    assert "num_classes" not in G.spec and "conditioning" not in G.spec
    for net, want in ((G, g_keys), (D, d_keys)):
        got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert list(got) == list(want) and got == want  # same names, same order, same shapes
    assert not any(isinstance(m, (nn.Embedding, models.ConditionalBatchNorm2d)) for m in G.modules())
    z = torch.randn(2, latent)
    assert D(G(z)).shape == (2,)
    torch.manual_seed(3)  # same seed -> same parameters, explicit None or not
    G1, D1 = models.build(kind, shape, latent, critic_norm=norm, **kw)
    torch.manual_seed(3)
    G2, D2 = models.build(kind, shape, latent, critic_norm=norm, num_classes=None, conditioning="projection", **kw)
    for a, b in ((G1, G2), (D1, D2)):
        assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
