"""Clip kernels (flat buffer and pointer array) against their twin: bit-exact on every dtype and shape bucket."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastwgan import ops
from fastwgan.ops import twins

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not ops.INTERPRET, reason="Triton on CPU needs TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=pytest.mark.gpu),
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]

# Shape buckets: empty, single element, primes, around the 1024 block.
SIZES = st.sampled_from([0, 1, 2, 3, 7, 31, 127, 1023, 1024, 1025, 2053])
SEEDS = st.integers(0, 2**31 - 1)
CLIPS = st.sampled_from([0.01, 0.05, 0.3, 1.0])


def _tensor(n, seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    # scale 0.03 around c = 0.01: most values get clipped, some do not; bounds themselves appear too
    x = torch.randn(n, generator=g) * 0.03
    if n > 2:
        x[0], x[1] = 0.01, -0.01
    return x.to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(n=SIZES, seed=SEEDS, c=CLIPS)
def test_clip_flat_is_bit_exact(device, dtype, n, seed, c):
    x = _tensor(n, seed, dtype, device)
    expected = twins.clip_(x.clone(), c)
    out = ops.clip_(x, c, impl="triton")
    assert out is x
    assert torch.equal(x, expected), f"clip_ {dtype} n={n} c={c}: max diff {(x - expected).abs().max()}"


@pytest.mark.parametrize("device", DEVICES)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 2, 3, 5, 13, 1025]), min_size=0, max_size=40),
    seed=SEEDS,
    c=CLIPS,
    mixed=st.booleans(),
)
def test_clip_list_is_bit_exact(device, sizes, seed, c, mixed):
    # many small tensors, empty lists, and (mixed=True) several dtypes in one list (one launch per dtype)
    xs = [_tensor(n, seed + i, DTYPES[i % 3] if mixed else torch.float32, device) for i, n in enumerate(sizes)]
    expected = twins.clip_([x.clone() for x in xs], c)
    ops.clip_(xs, c, impl="triton")
    for i, (got, want) in enumerate(zip(xs, expected)):
        assert torch.equal(got, want), f"tensor {i} ({got.dtype}, n={got.numel()})"


@pytest.mark.parametrize("device", DEVICES)
def test_clip_keeps_nan_and_handles_multidim(device):
    x = torch.tensor([[float("nan"), 2.0, -2.0], [0.0, -0.0, 0.005]], device=device)
    ops.clip_(x, 0.01, impl="triton")
    want = twins.clip_(torch.tensor([[float("nan"), 2.0, -2.0], [0.0, -0.0, 0.005]], device=device), 0.01)
    assert torch.equal(x.isnan(), want.isnan()) and torch.equal(x.nan_to_num(), want.nan_to_num())


@pytest.mark.parametrize("device", DEVICES)
def test_clip_refuses_non_contiguous_and_bad_values(device):
    x = torch.randn(8, 6, device=device).t()
    with pytest.raises(ValueError, match="contiguous"):
        ops.clip_(x, 0.01, impl="triton")
    with pytest.raises(ValueError, match="contiguous"):
        ops.clip_([torch.randn(4, device=device), x], 0.01, impl="triton")
    with pytest.raises(TypeError, match="float32"):
        ops.clip_(torch.randn(4, dtype=torch.float64, device=device), 0.01, impl="triton")
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive"):
            ops.clip_(torch.randn(4, device=device), bad)


def test_dispatch_rules(monkeypatch):
    x = torch.randn(5)
    with pytest.raises(ValueError, match="impl must be"):
        ops.clip_(x, 0.01, impl="cuda")
    # impl="torch" never needs Triton; an empty list is a no-op in every impl
    assert ops.clip_(x, 0.01, impl="torch") is x
    assert ops.clip_([], 0.01, impl="triton") == []
    # without the interpreter, "auto" falls back to the twin on CPU and "triton" says why it cannot run
    monkeypatch.setattr(ops.dispatch, "INTERPRET", False)
    y = torch.randn(5)
    want = y.clamp(-0.01, 0.01)
    ops.clip_(y, 0.01, impl="auto")
    assert torch.equal(y, want)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        ops.clip_(y, 0.01, impl="triton")
