"""The benchmark baseline is honest and `make gpu-check` cannot rot.

1. benchmarks/plain_loop.py (the `loop` provider: the plain eager loop of public WGAN / WGAN-GP scripts) makes the
   same critic update as `ReferenceTrainer.critic_step` on the same inputs, and the same generator iteration from the
   same `fastwgan.core.rng` draws: a baseline that computed something else would make every ratio to it meaningless.
   The two-domain loops (PlainWDGRL, PlainPixelDA, PlainDIRTT) make the reference trainers' step likewise.
2. `benchmarks/gpu_check.py --smoke` (what `make gpu-check SMOKE=1` runs) passes on CPU and leaves the benchmark
   JSON of all four CPU providers, the summary and the log; it never touches README.md or docs/benchmarks.md.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastwgan as fw
from fastwgan.core import rng
from fastwgan.core.images import as_float

ROOT = Path(__file__).resolve().parents[1]
N = 64  # dataset size


def _bench_module(stem: str):
    """benchmarks/<stem>.py, loaded by path once (benchmarks/ is not a package; the benchmarks' conftest does the
    same), registered in sys.modules first: dataclasses look their module up there."""
    name = f"fastwgan_bench_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{stem}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


# case -> (config, model builder, dataset): the three kinds of step benchmark case at tiny sizes.
def _case(name):
    if name == "clip-dcgan-bn":  # WGAN, RMSprop + clamp loop, a batch-norm critic, uint8 images
        cfg = fw.TrainConfig.preset("wgan-clip", batch_size=8, latent_dim=6)
        build = lambda: fw.models.dcgan(32, 3, latent_dim=6, width=4, critic_norm="batch")  # noqa: E731
        data = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    elif name == "gp-dcgan-ln":  # WGAN-GP, Adam, a layer-norm critic, uint8 images: eps (B, 1, 1, 1)
        cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, latent_dim=6)
        build = lambda: fw.models.dcgan(32, 3, latent_dim=6, width=4, critic_norm="layer")  # noqa: E731
        data = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    else:  # the authors' 2-D toy: float data, eps (B, 1), lambda 0.1, betas (0.5, 0.9)
        cfg = fw.TrainConfig.preset("wgan-gp-toy", batch_size=32)
        build = lambda: fw.models.mlp((2,), latent_dim=2, hidden=16, depth=3)  # noqa: E731
        data = fw.data.toy("25gaussians", N)
    return cfg, build, data


def _pair(name):
    cfg, build, data = _case(name)
    torch.manual_seed(0)
    ref = fw.ReferenceTrainer(*build(), cfg)
    torch.manual_seed(0)
    loop = _bench_module("plain_loop").PlainLoop(*build(), cfg)
    return cfg, ref, ref.batch_source(data), loop, loop.prepare(data)


# Tolerances: fp32, the same ops in a different order (the loop scores fake before real and sums the loss in
# another order), so about 1e-7 relative in gradients. One optimizer step moves a parameter by ~lr (Adam: lr * g/|g|),
# so parameters agree to ~1e-6 (the clamp then maps equal values to equal values).
GRAD_TOL = dict(rtol=1e-4, atol=1e-6)
PARAM_TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["clip-dcgan-bn", "gp-dcgan-ln", "gp-toy-mlp"])
def test_loop_critic_update_equals_reference_critic_step(name):
    cfg, ref, ref_data, loop, loop_data = _pair(name)
    noise = rng.draw_step(
        rng.make_generator(cfg.seed), N, cfg.n_critic, cfg.batch_size, cfg.latent_dim, cfg.uses_penalty
    )
    real_ref = as_float(ref_data.data[noise.idx[0]])
    real_loop = loop.batch(loop_data, noise.idx[0])
    assert torch.equal(real_ref, real_loop), "the loop normalises the data differently from the trainers"
    eps = None if noise.eps is None else noise.eps[0]

    ref.critic_step(real_ref, noise.z[0], eps)
    loop.critic_step(real_loop, noise.z[0], eps)

    pairs = list(zip(ref.critic.named_parameters(), loop.critic.parameters()))
    assert pairs
    for (pname, p_ref), p_loop in pairs:
        torch.testing.assert_close(p_loop.grad, p_ref.grad, **GRAD_TOL, msg=lambda m: f"{name} grad {pname}: {m}")
        torch.testing.assert_close(p_loop, p_ref, **PARAM_TOL, msg=lambda m: f"{name} param {pname}: {m}")
    for (pname, g_ref), g_loop in zip(ref.generator.named_parameters(), loop.generator.parameters()):
        assert torch.equal(g_ref, g_loop), f"{name}: the critic update changed generator parameter {pname}"


@pytest.mark.parametrize("name", ["clip-dcgan-bn", "gp-dcgan-ln", "gp-toy-mlp"])
def test_loop_generator_iteration_matches_reference(name):
    # One full train step (n_critic critic updates + one generator update) from the same StepNoise: the same
    # losses, and parameters close (measured: at most 4e-9 apart on CPU; DESIGN fact 10: Adam amplifies ~1e-7
    # gradient differences over updates, hence atol 1e-6; a different algorithm is off by ~lr = 5e-5..1e-4).
    cfg, ref, ref_data, loop, loop_data = _pair(name)
    noise = rng.draw_step(
        rng.make_generator(cfg.seed), N, cfg.n_critic, cfg.batch_size, cfg.latent_dim, cfg.uses_penalty
    )
    m_ref = ref._train_step(ref_data.next(noise), noise)
    m_loop = loop.train_step(loop_data, noise)
    for key in ("critic_loss", "generator_loss"):
        torch.testing.assert_close(m_loop[key], m_ref[key], rtol=1e-4, atol=1e-5, msg=lambda m: f"{name} {key}: {m}")
    for net in ("critic", "generator"):
        for (pname, p_ref), p_loop in zip(getattr(ref, net).named_parameters(), getattr(loop, net).parameters()):
            torch.testing.assert_close(p_loop, p_ref, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name} {net} {pname}: {m}")


@pytest.mark.parametrize("method", ["wdgrl", "pixelda", "pixelda_cond", "dirtt"])
def test_domain_loop_step_matches_reference(method):
    # The two-domain `loop` providers (plain_loop.PlainWDGRL / PlainPixelDA / PlainDIRTT) against the reference
    # trainers, one step from the same weights, data and draws (the benchmark's own builders): the same model loss
    # and parameters close, so fastwgan / loop compares the same algorithm (PixelDA: T reads the shifted pair,
    # G and the critic the unshifted images; a loop shifting G's input instead is off by ~lr).
    bench_steps = _bench_module("test_bench_steps")
    case = next(c for c in bench_steps.DOMAIN_CASES if c.method == method)
    case = type(case)(method, 16)  # a smaller batch: the same algorithm, quicker
    cfg, make, draw = bench_steps.DOMAIN_BUILDERS[method](case, "cpu", _bench_module("plain_loop"))
    loop, loop_data, loop_step = make("loop")
    ref, ref_data, ref_step = make("reference")
    d = draw(rng.make_generator(cfg.seed))
    m_loop, m_ref = loop_step(loop_data, d), ref_step(ref_data, d)
    torch.testing.assert_close(m_loop["model_loss"], m_ref["model_loss"], rtol=1e-4, atol=1e-5)
    # Adam's first step moves each parameter by ~lr (lr * g / |g|), so rounding-level gradient differences move a
    # near-zero gradient's parameter by a fraction of lr (measured: 2e-6 with DIRT-T's lr 1e-3): 1% of one step
    tol = dict(rtol=1e-5, atol=max(PARAM_TOL["atol"], 0.01 * max(cfg.lr_g, cfg.lr_d)))
    nets_loop, nets_ref = loop.networks(), ref._networks()
    for net, m in nets_ref.items():
        pairs = list(zip(m.named_parameters(), nets_loop[net].parameters(), strict=True))
        for (pname, p_ref), p_loop in pairs:
            torch.testing.assert_close(p_loop, p_ref, **tol, msg=lambda e: f"{method} {net} {pname}: {e}")


@pytest.mark.slow
def test_gpu_check_smoke_runs_and_leaves_results(tmp_path):
    # What `make gpu-check SMOKE=1` runs, in a fresh interpreter without TRITON_INTERPRET (the script drops it for
    # its children anyway), with results under tmp_path. ~2 min on 2 CPU cores, mostly one cold and one warm
    # compile of the toy step.
    readme_before = {p: (ROOT / p).read_text() for p in ("README.md", "docs/benchmarks.md")}
    # (an xdist worker's PYTEST_XDIST_* variables would make the children's pytest-benchmark disable itself)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET" and not k.startswith("PYTEST_XDIST")}
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--results", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2700,
    )
    assert r.returncode == 0, f"gpu_check --smoke exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-3000:]}"
    out = tmp_path / "cpu-smoke"
    step_jsons = sorted(out.glob("gpu-check-*-steps-*.json"))
    assert len(step_jsons) == 3 and len(list(out.glob("gpu-check-*-kernels.json"))) == 1, sorted(out.iterdir())
    rows = [b["extra_info"] for f in step_jsons for b in json.loads(f.read_text())["benchmarks"]]
    providers = {x["provider"] for x in rows}
    assert providers == {"loop", "reference", "fastwgan"}, providers  # cudagraphs: CUDA only
    side = [x for x in rows if x["kind"] == "step_vs_loop"]
    assert side and all(x["speedup_vs_loop"] > 0 for x in side)  # the interleaved fastwgan-vs-loop rounds
    summary = next(out.glob("gpu-check-*-summary.md")).read_text()
    assert "| case | loop ms | reference ms | compiled_reference ms | fastwgan ms |" in summary
    assert "speed-up vs loop (interleaved)" in summary
    assert "cold /" in summary  # the toy case's compile time, cold and warm
    assert next(out.glob("gpu-check-*.log")).stat().st_size > 0
    assert "wall time" in r.stdout  # (no limit on it here: the timeout above only catches a hang)
    assert {p: (ROOT / p).read_text() for p in readme_before} == readme_before, "the smoke run rewrote the docs"
