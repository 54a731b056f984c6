"""fastwgan.gan.models: shapes for every kind/size/channel/norm, init, per-sample independence, spec round trip."""

import json

import pytest
import torch
from torch import nn

from fastwgan.gan import models

NORMS = models.CRITIC_NORMS


def _check_pair(G, D, latent_dim, data_shape, batch=3):
    z = torch.randn(batch, latent_dim, generator=torch.Generator().manual_seed(0))
    x = G(z)
    assert x.shape == (batch, *data_shape)
    s = D(x)
    assert s.shape == (batch,)
    assert torch.isfinite(s).all()
    D.eval()  # (batch norm cannot train on one sample)
    assert D(x[:1]).shape == (1,)  # B = 1 still gives (B,), not a 0-d scalar
    D.train()
    return x, s


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
def test_dcgan_shapes(size, channels, norm):
    G, D = models.dcgan(size, channels, latent_dim=16, width=8, critic_norm=norm)
    x, _ = _check_pair(G, D, 16, (channels, size, size))
    assert x.abs().max() <= 1.0  # tanh output
    assert models.has_batch_norm(D) == (norm == "batch")
    assert models.has_batch_norm(G)  # DCGAN generator uses batch norm
    if norm == "layer":
        assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in D.modules())
    assert models.auto_kind((channels, size, size)) == ("dcgan" if size >= 28 else "mlp")  # small images: MLP


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_shapes(channels, norm):
    G, D = models.resnet(channels=channels, latent_dim=8, dim=8, critic_norm=norm)
    x, _ = _check_pair(G, D, 8, (channels, 32, 32))
    assert x.abs().max() <= 1.0
    assert models.has_batch_norm(D) == (norm == "batch")


def test_resnet_paper_structure():
    G, D = models.resnet()  # paper defaults: dim 128, latent 128, 3 channels
    assert G.latent_dim == 128 and G.data_shape == (3, 32, 32)
    body = D.body
    assert isinstance(body.blocks[0], models.cifar_resnet.OptimizedBlock)
    assert [b.resample for b in body.blocks[1:]] == ["down", None, None]
    assert [b.resample for b in G.body.blocks] == ["up", "up", "up"]
    assert not models.has_batch_norm(D)  # the paper's CIFAR critic has no normalisation
    # the mean-pool shortcut: on a constant image the optimised block's shortcut is the 1x1 conv of the mean
    blk = body.blocks[0]
    x = torch.ones(1, 3, 32, 32)
    short = blk.shortcut(nn.functional.avg_pool2d(x, 2))
    assert short.shape == (1, 128, 16, 16)
    assert blk(x).shape == (1, 128, 16, 16)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", [(2,), (1, 8, 8), (3, 5, 7)])
def test_mlp_shapes(shape, norm):
    G, D = models.mlp(shape, latent_dim=4, hidden=16, depth=2, critic_norm=norm)
    x, _ = _check_pair(G, D, 4, shape)
    linears = [m for m in G.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3  # depth hidden layers + output
    if len(shape) == 1:
        assert x.abs().max() > 0 and not isinstance(G.body[-1], nn.Tanh)  # toys: linear output
    else:
        assert isinstance(G.body[-1], nn.Tanh)


def test_mlp_defaults_are_the_wgan_gp_toy_nets():
    G, D = models.mlp((2,), latent_dim=2)
    widths = [m.out_features for m in D.modules() if isinstance(m, nn.Linear)]
    assert widths == [512, 512, 512, 1]
    assert all(isinstance(m, (nn.Linear, nn.ReLU, nn.Flatten)) for m in D.body)
    assert G.spec["output"] == "linear"
    G, _ = models.mlp((2,), latent_dim=2, output="tanh")
    assert isinstance(G.body[-1], nn.Tanh)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G, D = models.dcgan(32, 3, latent_dim=64, width=32, critic_norm="layer")
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.weight.numel() > 2000:
                assert abs(m.weight.mean().item()) < 0.002
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.1)
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
                assert abs(m.weight.mean().item() - 1.0) < 0.01
                assert m.weight.std().item() < 0.04
            if getattr(m, "bias", None) is not None:
                assert (m.bias == 0).all()


def _score_of_sample0_changes(D, data_shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, *data_shape, generator=g)
    y = x.clone()
    y[1:] = torch.randn(5, *data_shape, generator=g) * 3 + 1  # change every other sample
    D.train()
    with torch.no_grad():
        return (D(x)[0] - D(y)[0]).abs().item()


@pytest.mark.parametrize("kind", ["mlp", "dcgan", "resnet"])
def test_layer_norm_critic_is_per_sample(kind):
    """GP needs D(x)[i] to depend on x[i] only; layer norm keeps that, batch norm (train mode) breaks it."""
    shape = {"mlp": (1, 8, 8), "dcgan": (3, 28, 28), "resnet": (1, 32, 32)}[kind]
    kw = {"mlp": dict(hidden=16), "dcgan": dict(width=8), "resnet": dict(dim=8)}[kind]
    for norm in ("none", "layer"):
        torch.manual_seed(0)
        _, D = models.build(kind, shape, latent_dim=4, critic_norm=norm, **kw)
        assert _score_of_sample0_changes(D, shape) == 0.0, norm
    torch.manual_seed(0)
    _, D = models.build(kind, shape, latent_dim=4, critic_norm="batch", **kw)
    assert _score_of_sample0_changes(D, shape) > 1e-4


def test_layer_norm_per_sample_gradient():
    """The input gradient of sum(D(x)) for sample 0 is the same whether or not other samples are present."""
    torch.manual_seed(0)
    _, D = models.dcgan(28, 1, latent_dim=4, width=8, critic_norm="layer")
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    (g_all,) = torch.autograd.grad(D(x).sum(), x)
    x0 = x[:1].detach().requires_grad_()
    (g_one,) = torch.autograd.grad(D(x0).sum(), x0)
    torch.testing.assert_close(g_all[:1], g_one, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "kind,shape,kw",
    [
        ("mlp", [2], dict(hidden=8, depth=1, output="tanh")),
        ("dcgan", [1, 28, 28], dict(width=4)),
        ("resnet", [3, 32, 32], dict(dim=4)),
        ("auto", [3, 64, 64], dict(width=4)),
    ],
)
@pytest.mark.parametrize("norm", NORMS)
def test_spec_json_round_trip(kind, shape, kw, norm):
    torch.manual_seed(0)
    G, D = models.build(kind, shape, latent_dim=3, critic_norm=norm, **kw)
    assert G.spec == D.spec
    spec = json.loads(json.dumps(G.spec))
    assert spec["kind"] != "auto" and spec["critic_norm"] == norm
    G2, D2 = models.build(**spec)
    assert G2.spec == G.spec
    # same architecture: the state dicts load into each other exactly
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    G.eval(), G2.eval(), D.eval(), D2.eval()
    z = torch.randn(2, 3)
    torch.testing.assert_close(G2(z), G(z))
    torch.testing.assert_close(D2(G(z)), D(G(z)))


def test_factory_spec_round_trip():
    G, _ = models.dcgan(64, 3, 10, width=4)
    assert G.spec == {"kind": "dcgan", "data_shape": [3, 64, 64], "latent_dim": 10, "critic_norm": "none", "width": 4}
    G2, _ = models.build(**G.spec)
    assert sum(p.numel() for p in G2.parameters()) == sum(p.numel() for p in G.parameters())


@pytest.mark.parametrize(
    "shape,expected",
    [
        ((1, 28, 28), "dcgan"),
        ((3, 32, 32), "dcgan"),
        ((3, 64, 64), "dcgan"),
        ((1, 64, 64), "dcgan"),
        ((1, 8, 8), "mlp"),
        ((2,), "mlp"),
        ((4, 32, 32), "mlp"),
        ((3, 32, 16), "mlp"),
        ((3, 48, 48), "mlp"),
    ],
)
def test_auto_kind(shape, expected):
    G, D = models.build("auto", shape, latent_dim=2, **({"width": 4} if expected == "dcgan" else {"hidden": 4}))
    assert G.spec["kind"] == expected == models.auto_kind(shape)
    _check_pair(G, D, 2, shape, batch=2)


@pytest.mark.parametrize(
    "call,arg",
    [
        (lambda: models.dcgan(48, 3, 8), "image_size"),
        (lambda: models.dcgan(32, 2, 8), "channels"),
        (lambda: models.dcgan(32, 3, 0), "latent_dim"),
        (lambda: models.dcgan(32, 3, 8, width=0), "width"),
        (lambda: models.dcgan(32, 3, 8, critic_norm="instance"), "critic_norm"),
        (lambda: models.mlp((2,), 2, hidden=-1), "hidden"),
        (lambda: models.mlp((2,), 2, depth=0), "depth"),
        (lambda: models.mlp((2,), 2, output="relu"), "output"),
        (lambda: models.mlp((0, 3), 2), "data_shape"),
        (lambda: models.mlp("abc", 2), "data_shape"),
        (lambda: models.mlp((2,), 2.5), "latent_dim"),
        (lambda: models.resnet(channels=4), "channels"),
        (lambda: models.resnet(dim=0), "dim"),
        (lambda: models.build("vae", (2,), 2), "kind"),
        (lambda: models.build("dcgan", (2,), 2), "data_shape"),
        (lambda: models.build("resnet", (3, 64, 64), 2), "data_shape"),
        (lambda: models.build("dcgan", (3, 32, 32), 2, hidden=3), "unknown option"),
        (lambda: models.build("mlp", (2,), 2, critic_norm="spectral"), "critic_norm"),
    ],
)
def test_bad_arguments_name_the_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_has_batch_norm():
    assert models.has_batch_norm(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2))))
    assert not models.has_batch_norm(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2), nn.GroupNorm(1, 2)))
    _, D = models.mlp((2,), 2, hidden=4, critic_norm="batch")
    assert models.has_batch_norm(D)


@pytest.mark.parametrize(
    "kind,shape,kw",
    [("mlp", (2,), dict(hidden=16)), ("dcgan", (3, 28, 28), dict(width=4)), ("resnet", (1, 32, 32), dict(dim=4))],
)
@pytest.mark.parametrize("norm", ["none", "layer"])
def test_critics_support_torch_func_double_grad(kind, shape, kw, norm):
    """The fast trainer differentiates the GP through torch.func (DESIGN.md 3.2); it must equal autograd."""
    from torch.func import functional_call, grad

    torch.manual_seed(0)
    _, D = models.build(kind, shape, latent_dim=2, critic_norm=norm, **kw)
    params = dict(D.named_parameters())
    x = torch.randn(3, *shape)

    def penalty(p):
        gx = grad(lambda xx: functional_call(D, p, (xx,)).sum())(x)  # (B, *shape)
        return ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean()

    g_func = grad(penalty)(params)
    xr = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(D(xr).sum(), xr, create_graph=True)
    ref = ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean()
    g_ref = torch.autograd.grad(ref, list(params.values()), materialize_grads=True)
    for (name, a), b in zip(g_func.items(), g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")
