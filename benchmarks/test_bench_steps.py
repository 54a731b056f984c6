"""Step benchmarks: one generator iteration (n_critic = 5 critic updates + 1 generator update).

WGAN (weight clipping) and WGAN-GP with the DCGAN models, per profile (conftest.py): full = 32 and 64 px at
batch 64 and 256 with DCGAN width 64, plus width 32 and 128 at 32 px, batch 64; quick (2-core CPU) = 32 px with
the width reduced to 32 (batch 16 and 32) and 16 (batch 16).

Providers:
  reference           `fastwgan.ReferenceTrainer`: the eager oracle, written like the papers' Algorithm 1
                      (per-parameter optimizers and clamp loop, `autograd.grad(create_graph=True)`).
  compiled_reference  `fastwgan.Trainer(impl="torch", compile=True)`: the same algorithm as one
                      `torch.compile(fullgraph=True)` graph per step, with every op the plain-PyTorch twin
                      (no custom kernel; inductor fuses the math itself). This stands for the best a user gets
                      from stock PyTorch: the eager step itself cannot be compiled (DESIGN fact 1: compiled
                      regions refuse `autograd.grad(create_graph=True)`, "does not currently support double
                      backward"), so the step has to be rewritten functionally with `torch.func` first, which is
                      what this provider is. It already has fastwgan's flat buffers and device-resident batches,
                      so fastwgan / compiled_reference isolates the hand-written kernels, and fastwgan /
                      reference is the whole library's gain.
  fastwgan            `fastwgan.Trainer(compile=True)`, impl "auto": Triton kernels on CUDA (fused RMSprop +
                      clip, Adam, GP interpolation; the penalty per `fastwgan.trainer.DEFAULT_IMPL`). On CPU "auto"
                      resolves to the same twins as compiled_reference, so there the two must tie (a sanity check
                      of the harness, not a result).

Timed: `trainer._train_step(data, noise)` + synchronise, one generator iteration per round; the random numbers
are drawn in the untimed set-up (identical for every provider). The first call (tracing and compilation for the
compiled providers) and `step_warmup` more iterations run before the timed rounds. `extra_info` holds
`first_call_s`, `compile_s` (first call minus the median iteration) and the peak memory of the timed rounds
(conftest.PeakMemory says how it is measured on each device).
"""
from __future__ import annotations

import gc
import time

import pytest
import torch

from fastwgan import ReferenceTrainer, TrainConfig, Trainer, models, ops, rng

N_DATA = 1024  # synthetic uint8 images; batches are drawn with replacement, so the count only sets the gather


def _trainer(provider: str, G, D, cfg):
    if provider == "reference":
        return ReferenceTrainer(G, D, cfg)
    if provider == "compiled_reference":
        return Trainer(G, D, cfg, compile=True, impl="torch")
    return Trainer(G, D, cfg, compile=True)


@pytest.mark.parametrize("provider", ["reference", "compiled_reference", "fastwgan"])
def test_step(benchmark, bench, step_case, provider):
    case, prof = step_case, bench.profile
    torch._dynamo.reset()  # each case compiles afresh (and never hits the recompile limit across cases)
    gc.collect()
    if bench.device.type == "cuda":
        torch.cuda.empty_cache()

    cfg = TrainConfig.preset(case.preset, batch_size=case.batch, device=bench.device.type)
    torch.manual_seed(0)
    G, D = models.dcgan(case.image_size, 3, latent_dim=cfg.latent_dim, width=case.width)
    params_d, params_g = (sum(p.numel() for p in m.parameters()) for m in (D, G))
    images = torch.randint(0, 256, (N_DATA, 3, case.image_size, case.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    trainer = _trainer(provider, G, D, cfg)
    data = trainer._prepare_data(trainer._check_data(images))
    gen = rng.make_generator(cfg.seed)

    def draw():
        return rng.draw_step(gen, N_DATA, cfg.n_critic, cfg.batch_size, cfg.latent_dim, cfg.uses_penalty)

    def step(noise):
        trainer._train_step(data, noise)
        bench.sync()

    # Compile (compiled providers) and warm up outside the timed rounds.
    t = time.perf_counter()
    step(draw())
    first = time.perf_counter() - t
    for _ in range(prof.step_warmup):
        step(draw())

    benchmark.group = f"step {bench.device.type} {case.id}"
    with bench.peak_memory() as mem:
        benchmark.pedantic(step, setup=lambda: ((draw(),), {}), rounds=prof.step_rounds, iterations=1)
    median = benchmark.stats.stats.median
    compiled = provider != "reference"
    benchmark.extra_info.update({
        "kind": "step", "provider": provider, "preset": case.preset, "loss": cfg.loss, "image_size": case.image_size,
        "batch": case.batch, "width": case.width, "n_critic": cfg.n_critic, "params_d": params_d,
        "params_g": params_g, "first_call_s": first, "compile_s": max(0.0, first - median) if compiled else None,
        "images_per_s": case.batch * cfg.n_critic / median,
        "impl": getattr(trainer, "impl", None),
        "kernels": ("triton" if compiled and provider == "fastwgan" and ops._kernel_runs_on(bench.device)
                    else "torch"),
        **mem.info(),
    })
    del trainer, data
