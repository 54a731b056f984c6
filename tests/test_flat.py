"""Flat parameter buffers: parameters stay views through backward, optimizers, load_state_dict and compile."""

import pytest
import torch
from torch import nn

from fastwgan import ops
from fastwgan.core.flat import flatten_parameters


def _mlp(seed=0, din=5, width=7):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(din, width), nn.Tanh(), nn.Linear(width, 3), nn.Tanh(), nn.Linear(3, 1))


def test_parameters_become_views_with_values_kept():
    model = _mlp()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    ids = [id(p) for p in model.parameters()]
    flat = flatten_parameters(model)
    assert flat.data.is_contiguous() and flat.data.dtype == torch.float32
    assert flat.numel == sum(v.numel() for v in before.values())
    assert [id(p) for p in model.parameters()] == ids, "the Parameter objects must be kept"
    assert flat.is_attached()
    for (name, p), view in zip(model.named_parameters(), flat.views()):
        assert torch.equal(p, before[name]) and p.data_ptr() == view.data_ptr()
    # writing the buffer writes the parameters
    flat.data.fill_(0.5)
    assert all(bool((p == 0.5).all()) for p in model.parameters())
    assert torch.equal(torch.cat([v.reshape(-1) for v in flat.unflatten().values()]), flat.data)


def test_shared_and_empty_and_converted():
    lin = nn.Linear(3, 3)
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    flat = flatten_parameters(shared)
    assert flat.numel == 12 and flat.names == ["0.weight", "0.bias"]
    assert flatten_parameters(nn.ReLU()).numel == 0
    half = _mlp().half()
    ref = {k: v.detach().float() for k, v in half.named_parameters()}
    flat = flatten_parameters(half)  # fp16 module, fp32 master buffer
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert all(torch.equal(p, ref[k]) for k, p in half.named_parameters())
    bad = nn.Module()
    bad.count = nn.Parameter(torch.zeros(2, dtype=torch.int64), requires_grad=False)
    with pytest.raises(TypeError, match="floating-point"):
        flatten_parameters(bad)


def test_backward_accumulates_into_flat_grad():
    model = _mlp()
    flat = flatten_parameters(model)
    x = torch.randn(4, 5)
    model(x).sum().backward()
    model(x).sum().backward()  # accumulation stays in the buffer too
    assert flat.is_attached()
    ref = _mlp()
    (2 * ref(x).sum()).backward()
    torch.testing.assert_close(flat.grad, torch.cat([p.grad.reshape(-1) for p in ref.parameters()]))
    flat.zero_grad()
    assert flat.is_attached() and not flat.grad.any()


@pytest.mark.parametrize("opt_cls", [torch.optim.RMSprop, torch.optim.Adam])
def test_views_survive_optimizer_steps_and_load_state_dict(opt_cls):
    model, ref = _mlp(), _mlp()
    flat = flatten_parameters(model)
    opt, opt_ref = opt_cls(model.parameters(), lr=1e-2), opt_cls(ref.parameters(), lr=1e-2)
    x = torch.randn(6, 5)
    for _ in range(3):
        for m, o in ((model, opt), (ref, opt_ref)):
            o.zero_grad(set_to_none=False) if m is model else o.zero_grad()
            m(x).square().mean().backward()
            o.step()
        ops.clip_(flat.data, 0.3)
        with torch.no_grad():
            for p in ref.parameters():
                p.clamp_(-0.3, 0.3)
    assert flat.is_attached()
    torch.testing.assert_close(flat.data, torch.cat([p.detach().reshape(-1) for p in ref.parameters()]))
    # the default zero_grad(set_to_none=True) drops the .grad views; attach() restores them
    opt.zero_grad()
    assert not flat.is_attached()
    flat.attach()
    assert flat.is_attached()
    # load_state_dict copies in place: still views, new values
    model.load_state_dict(_mlp(seed=3).state_dict())
    assert flat.is_attached()
    torch.testing.assert_close(flat.data, torch.cat([p.detach().reshape(-1) for p in _mlp(seed=3).parameters()]))
    # assign=True replaces the storage: detected, and attach() brings the new values into the buffer
    model.load_state_dict(_mlp(seed=4).state_dict(), assign=True)
    assert not flat.is_attached()
    flat.attach()
    assert flat.is_attached()
    torch.testing.assert_close(flat.data, torch.cat([p.detach().reshape(-1) for p in _mlp(seed=4).parameters()]))


def test_functional_grad_over_the_flat_buffer():
    model = _mlp()
    flat = flatten_parameters(model)
    x = torch.randn(4, 5)
    model(x).sum().backward()

    def loss(buf):
        return torch.func.functional_call(model, flat.unflatten(buf), (x,)).sum()

    g = torch.func.grad(loss)(flat.data.clone())  # (N,): one flat gradient, ready for the fused optimizer ops
    assert g.shape == (flat.numel,)
    torch.testing.assert_close(g, flat.grad)


@pytest.mark.slow
def test_views_survive_torch_compile():
    # The pattern the compiled steps use: the flat buffer is the graph input, the module is called functionally
    # on views of it, and the fused optimizer op updates the buffer in place inside the same fullgraph graph.
    model = _mlp()
    flat = flatten_parameters(model)
    x = torch.randn(4, 5)

    def step(buf, square_avg, x, lr):
        def loss(b):
            return torch.func.functional_call(model, flat.unflatten(b), (x,)).square().mean()

        g = torch.func.grad(loss)(buf)  # (N,)
        ops.rmsprop_clip_(buf, g, square_avg, lr, clip_value=0.05)
        return g

    compiled = torch.compile(step, fullgraph=True)
    buf, sq = flat.data.clone(), torch.zeros_like(flat.data)
    sq_c = torch.zeros_like(flat.data)
    for _ in range(2):
        compiled(flat.data, sq_c, x, torch.tensor(1e-2))
        step(buf, sq, x, torch.tensor(1e-2))
    assert flat.is_attached()
    torch.testing.assert_close(flat.data, buf, rtol=1e-6, atol=1e-7)
    assert all(p.data_ptr() == v.data_ptr() for p, v in zip(model.parameters(), flat.views()))
    # reading the module's own (aliased) parameters in a compiled forward works too
    fwd = torch.compile(lambda x: model(x).sum(), fullgraph=True)
    torch.testing.assert_close(fwd(x), model(x).sum())


@pytest.mark.xfail(
    raises=Exception,
    strict=False,
    reason="torch 2.13 AOTAutograd: 'does not yet handle non-differentiable view input mutations' "
    "when one graph mutates the buffer and reads the module's aliased parameters directly; "
    "use the functional pattern above",
)
def test_hazard_mutating_buffer_and_reading_module_params_in_one_graph():
    model = _mlp()
    flat = flatten_parameters(model)

    def step(x):
        loss = model(x).square().mean()
        with torch.no_grad():
            flat.data.mul_(0.9)
        return loss

    torch.compile(step, fullgraph=True)(torch.randn(4, 5))
