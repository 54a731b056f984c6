"""Kernel benchmarks: weight clipping, fused RMSprop + clip, GP interpolation, GP penalty forward + backward.

Every benchmark reports, in `extra_info`: the bytes the operation must move at least (`bytes`), the achieved
bandwidth against that floor (`gbps`, 1e9 bytes/s), and its fraction of the machine's measured copy bandwidth
(`frac_copy_bw`, the `copy_bandwidth` fixture). Providers of one group sit side by side in one
pytest-benchmark group.

Clipping providers (the critic is a real DCGAN-32 critic with batch norm, as in the WGAN paper, scaled in width
to the parameter count):
  loop        `p.clamp_(-c, c)` for every parameter: what public WGAN scripts do (the reference trainer too)
  foreach     `torch._foreach_clamp_min_` + `torch._foreach_clamp_max_` (there is no `_foreach_clamp_`)
  flat        one `clamp_` over fastwgan's flat parameter buffer (`fastwgan.core.flat`)
  fastwgan    `fastwgan.ops.clip_(buffer, impl="triton")` (CUDA only)
Fused optimizer providers (RMSprop, WGAN's lr 5e-5, then clip at 0.01):
  reference            `torch.optim.RMSprop(...).step()` (its default foreach choice) then the clamp loop
  twin                 `fastwgan.ops.twins.rmsprop_clip_` eagerly on the flat buffers (plain torch ops)
  compiled_reference   the twin under `torch.compile` (fullgraph): inductor's own fusion of the same math
  fastwgan             `fastwgan.ops.rmsprop_clip_(..., impl="triton")`: one pass, 20 bytes per parameter
GP providers (interpolation x_hat = eps real + (1 - eps) fake; penalty lambda mean((||g|| - 1)^2) forward and
the gradient w.r.t. g):
  reference            the plain math of the reference trainer, eager
  compiled_reference   the same math under `torch.compile` (fullgraph; backward by AOTAutograd)
  fastwgan             `fastwgan.ops.gp_interpolate` / `gradient_penalty` with impl="triton" (CUDA only)
"""

from __future__ import annotations

import time

import pytest
import torch

from fastwgan import ops
from fastwgan.core.compile import compile_step
from fastwgan.core.flat import flatten_parameters
from fastwgan.gan import models
from fastwgan.ops import twins

CLIP = 0.01
LR, ALPHA, EPS = 5e-5, 0.99, 1e-8
GP_WEIGHT = 10.0


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _critic_params(width: int) -> int:
    with torch.device("meta"):
        _, D = models.dcgan(32, 3, latent_dim=8, width=width, critic_norm="batch")
    return sum(p.numel() for p in D.parameters())


def _critic_of_size(numel: int, device: torch.device) -> torch.nn.Module:
    """A DCGAN-32 batch-norm critic whose width makes its parameter count closest to `numel`."""
    lo, hi = 1, 1
    while _critic_params(hi) < numel:
        hi *= 2
    while hi - lo > 1:  # parameter count grows monotonically with width
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _critic_params(mid) < numel else (lo, mid)
    width = min((lo, hi), key=lambda w: abs(_critic_params(w) - numel))
    torch.manual_seed(0)
    with torch.device(device):
        _, D = models.dcgan(32, 3, latent_dim=8, width=width, critic_norm="batch")
    D.width = width
    return D


def _record(benchmark, copy_bandwidth: float, nbytes: int, **info) -> None:
    """Bandwidth beside time: bytes moved at least, achieved GB/s, fraction of measured copy bandwidth."""
    median = benchmark.stats.stats.median
    gbps = nbytes / median / 1e9
    benchmark.extra_info.update(info)
    benchmark.extra_info.update(
        {"bytes": nbytes, "gbps": gbps, "copy_gbps": copy_bandwidth, "frac_copy_bw": gbps / copy_bandwidth}
    )


def _warm(fn, bench, n: int = 3) -> float:
    """Run fn n times untimed (Triton JIT, torch.compile, allocator); returns the first call's seconds."""
    bench.sync()
    t = time.perf_counter()
    fn()
    bench.sync()
    first = time.perf_counter() - t
    for _ in range(n - 1):
        fn()
    bench.sync()
    return first


# ---------------------------------------------------------------------------------------------------------------
# weight clipping
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["loop", "foreach", "flat", "fastwgan"])
def test_clip(benchmark, bench, copy_bandwidth, clip_numel, provider):
    if provider == "fastwgan":
        bench.require_triton()
    D = _critic_of_size(clip_numel, bench.device)
    params = list(D.parameters())
    n = sum(p.numel() for p in params)
    if provider in ("flat", "fastwgan"):
        flat = flatten_parameters(D, grad=False)
        buf = flat.data

    def loop():
        with torch.no_grad():
            for p in params:
                p.clamp_(-CLIP, CLIP)

    def foreach():
        with torch.no_grad():
            torch._foreach_clamp_min_(params, -CLIP)
            torch._foreach_clamp_max_(params, CLIP)

    fn = {
        "loop": loop,
        "foreach": foreach,
        "flat": lambda: buf.clamp_(-CLIP, CLIP),
        "fastwgan": lambda: ops.clip_(buf, CLIP, impl="triton"),
    }[provider]
    _warm(fn, bench)
    benchmark.group = f"clip {bench.device.type} {n:.1e} params"
    benchmark(fn)
    _record(
        benchmark, copy_bandwidth, 8 * n, kind="clip", provider=provider, numel=n, n_tensors=len(params), width=D.width
    )


# ---------------------------------------------------------------------------------------------------------------
# fused RMSprop + clip
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["reference", "twin", "compiled_reference", "fastwgan"])
def test_rmsprop_clip(benchmark, bench, copy_bandwidth, clip_numel, provider):
    if provider == "fastwgan":
        bench.require_triton()
    torch._dynamo.reset()  # a fresh compile per case (and no recompile limit across cases)
    D = _critic_of_size(clip_numel, bench.device)
    flat = flatten_parameters(D, grad=True)  # .grad of every parameter views flat.grad
    n = flat.numel
    g = torch.Generator(device=bench.device).manual_seed(0)
    flat.grad.copy_(torch.randn(n, device=bench.device, generator=g) * 1e-3)
    square_avg = torch.zeros_like(flat.data)
    lr_t = torch.tensor(LR, device=bench.device)
    info = {}

    if provider == "reference":
        opt = torch.optim.RMSprop(D.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
        params = list(D.parameters())

        def fn():
            opt.step()
            with torch.no_grad():
                for p in params:
                    p.clamp_(-CLIP, CLIP)

        info["optimizer_foreach"] = bench.device.type == "cuda"  # torch.optim's default: foreach on CUDA
    elif provider == "twin":

        def fn():
            twins.rmsprop_clip_(flat.data, flat.grad, square_avg, lr_t, ALPHA, EPS, CLIP)
    elif provider == "compiled_reference":
        step = compile_step(lambda p, gr, sq, lr: twins.rmsprop_clip_(p, gr, sq, lr, ALPHA, EPS, CLIP))

        def fn():
            step(flat.data, flat.grad, square_avg, lr_t)
    else:

        def fn():
            ops.rmsprop_clip_(flat.data, flat.grad, square_avg, lr_t, ALPHA, EPS, CLIP, impl="triton")

    info["first_call_s"] = _warm(fn, bench)
    benchmark.group = f"rmsprop+clip {bench.device.type} {n:.1e} params"
    benchmark(fn)
    # Floor: read param, grad, square_avg; write param, square_avg (fp32) = 20 bytes per parameter.
    _record(
        benchmark,
        copy_bandwidth,
        20 * n,
        kind="rmsprop_clip",
        provider=provider,
        numel=n,
        n_tensors=len(flat.params),
        width=D.width,
        **info,
    )


# ---------------------------------------------------------------------------------------------------------------
# GP interpolation and penalty
# ---------------------------------------------------------------------------------------------------------------
def _interp_plain(real, fake, eps):
    e = eps.view(-1, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1)
    return e * real + (1 - e) * fake


def _penalty_plain(grad):
    norms = grad.flatten(1).norm(2, dim=1)  # (B,)
    return GP_WEIGHT * ((norms - 1) ** 2).mean()


def _gp_inputs(bench, batch, size):
    g = torch.Generator(device=bench.device).manual_seed(0)
    shape = (batch, 3, size, size)
    real = torch.rand(shape, device=bench.device, generator=g) * 2 - 1
    fake = torch.rand(shape, device=bench.device, generator=g) * 2 - 1
    eps = torch.rand(batch, device=bench.device, generator=g)
    return real, fake, eps


@pytest.mark.parametrize("provider", ["reference", "compiled_reference", "fastwgan"])
def test_gp_interpolate(benchmark, bench, copy_bandwidth, gp_case, provider):
    if provider == "fastwgan":
        bench.require_triton()
    torch._dynamo.reset()
    batch, size = gp_case
    real, fake, eps = _gp_inputs(bench, batch, size)
    f = {
        "reference": _interp_plain,
        "compiled_reference": compile_step(_interp_plain),
        "fastwgan": lambda r, fk, e: ops.gp_interpolate(r, fk, e, impl="triton"),
    }[provider]

    def fn():
        return f(real, fake, eps)

    first = _warm(fn, bench)
    benchmark.group = f"gp interpolate {bench.device.type} b{batch} {size}px"
    benchmark(fn)
    # Floor: read real and fake, write x_hat (fp32) = 12 bytes per element.
    _record(
        benchmark,
        copy_bandwidth,
        12 * real.numel(),
        kind="gp_interpolate",
        provider=provider,
        batch=batch,
        image_size=size,
        numel=real.numel(),
        first_call_s=first,
    )


@pytest.mark.parametrize("provider", ["reference", "compiled_reference", "fastwgan"])
def test_gp_penalty_fwd_bwd(benchmark, bench, copy_bandwidth, gp_case, provider):
    if provider == "fastwgan":
        bench.require_triton()
    torch._dynamo.reset()
    batch, size = gp_case
    real, _, _ = _gp_inputs(bench, batch, size)
    grad = (real * 0.3).requires_grad_(True)  # stands for the critic's input gradient, (B, 3, S, S)
    pen = {
        "reference": _penalty_plain,
        "compiled_reference": compile_step(_penalty_plain),
        "fastwgan": lambda g: ops.gradient_penalty(g, GP_WEIGHT, impl="triton"),
    }[provider]

    def fn():
        (dgrad,) = torch.autograd.grad(pen(grad), grad)  # forward + backward, (B, 3, S, S)
        return dgrad

    first = _warm(fn, bench)
    benchmark.group = f"gp penalty fwd+bwd {bench.device.type} b{batch} {size}px"
    benchmark(fn)
    # Floor: forward reads g; backward reads g and writes dL/dg (fp32) = 12 bytes per element.
    _record(
        benchmark,
        copy_bandwidth,
        12 * grad.numel(),
        kind="gp_penalty",
        provider=provider,
        batch=batch,
        image_size=size,
        numel=grad.numel(),
        first_call_s=first,
    )
