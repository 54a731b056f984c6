"""torch.library.opcheck on every registered op (schema, fake impl, autograd registration, AOT dispatch), and
every op inside a fullgraph torch.compile (DESIGN facts 5 and 6: fake impls must match exactly)."""

import pytest
import torch

from fastwgan import ops
from fastwgan.ops import twins

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not ops.INTERPRET, reason="Triton on CPU needs TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=pytest.mark.gpu),
]


def _samples(device, dtype):
    g = torch.Generator().manual_seed(0)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device=device, dtype=dtype)

    f32 = dict(device=device, dtype=torch.float32)
    lr = torch.tensor(1e-3, **f32)
    real, fake = r(3, 2, 5), r(3, 2, 5)
    strided = r(3, 5, 2).transpose(1, 2)  # non-contiguous (3, 2, 5)
    grad = r(5, 3, 7, scale=0.3)
    norms = torch.linalg.vector_norm(grad.float().reshape(5, -1), dim=1)
    return {
        "clip_": [(r(37, scale=0.03), 0.01)],
        "clip_list_": [([r(3, scale=0.03), r(1025, scale=0.03), r(1, 1)], 0.01)],
        "rmsprop_clip_": [
            (r(41), r(41), r(41).abs(), lr, 0.99, 1e-8, 0.05),
            (r(41), r(41), r(41).abs(), lr, 0.99, 1e-8, None),
        ],
        "adam_": [
            (r(41), r(41), r(41), r(41).abs(), torch.tensor(3.0, **f32), lr, 0.0, 0.9, 1e-8),
            (r(41), r(41), r(41), r(41).abs(), torch.tensor(2, device=device), lr, 0.5, 0.999, 1e-8),
        ],
        "gp_interpolate": [
            (real, fake, torch.rand(3, generator=g).to(device)),
            (strided, fake, torch.rand(3, generator=g).to(device)),
        ],
        "gp_interpolate_rand": [(real, fake, torch.tensor(1234, device=device))],
        "gp_penalty": [(grad, 10.0, False), (grad, 0.1, True)],
        "gp_penalty_backward": [(torch.tensor(1.0, device=device, dtype=dtype), grad, norms, 10.0, False)],
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", [*ops.optimizer.SCHEMAS, *ops.penalty.SCHEMAS])  # DiffAugment: test_kernels_augment
def test_opcheck(device, dtype, name):
    op = getattr(torch.ops.fastwgan, name)
    for args in _samples(device, dtype)[name]:
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device", DEVICES)
def test_mutating_ops_in_one_fullgraph_compile(device):
    # clip (flat and pointer-array), fused RMSprop+clip, Adam and both interpolations in one graph, against the
    # same function run eagerly with the twins
    def body(impl, flat, xs, p, g, sq, p2, m, v, step, lr, real, fake, eps, seed):
        ops.clip_(flat, 0.01, impl=impl)
        ops.clip_(xs, 0.01, impl=impl)
        ops.rmsprop_clip_(p, g, sq, lr, clip_value=0.05, impl=impl)
        ops.adam_(p2, g, m, v, step, lr, 0.0, 0.9, impl=impl)
        x1 = ops.gp_interpolate(real, fake, eps, impl=impl)
        x2, e2 = ops.gp_interpolate_rand(real, fake, seed, impl=impl)
        pen, norms = ops.gradient_penalty(x1 - x2, 10.0, impl=impl, return_norms=True)
        return x1, x2, e2, pen, norms

    def make_args():
        gen = torch.Generator().manual_seed(0)

        def r(*s):
            return torch.randn(*s, generator=gen).to(device)

        return [
            r(50) * 0.03,
            [r(3) * 0.03, r(7) * 0.03],
            r(9),
            r(9),
            r(9).abs(),
            r(9),
            r(9),
            r(9).abs(),
            torch.tensor(2.0, device=device),
            torch.tensor(1e-2, device=device),
            r(4, 3),
            r(4, 3),
            torch.rand(4, generator=gen).to(device),
            torch.tensor(77, device=device),
        ]

    compiled = torch.compile(lambda *a: body("triton", *a), fullgraph=True)
    args_c, args_e = make_args(), make_args()
    out_c = compiled(*args_c)
    out_e = body("torch", *args_e)
    for i, (a, b) in enumerate(zip(out_c, out_e)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"output {i}: {m}")
    for i, (a, b) in enumerate(zip(args_c, args_e)):  # the in-place updates happened, equally
        for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=lambda m: f"argument {i}: {m}")
    assert torch.equal(out_c[2], twins.gp_eps_from_seed(77, 4, device))
