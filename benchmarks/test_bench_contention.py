"""Shared cores: one generator iteration while another busy process holds one CPU core (issue: robust under
shared cores).

Case: the WGAN-GP authors' 2-D toy (3 x 128 ReLU MLPs, batch 256, lambda 0.1), `fastwgan.Trainer` compiled, the
small step where OpenMP barriers hurt most. Variants, each its own pytest-benchmark entry in group
"contention cpu ...":

  quiet-auto    no competing process, default settings (threads="auto")
  busy-auto     a busy process pinned to core 0, default settings: the policy (fastwgan.core.threads) notices the slow
                steps and re-probes; the timed rounds start right after the busy process does, so the adaptation
                is inside the measurement
  busy-t<N>     the same with the thread count fixed at N (all cores, and 1)
  busy-reference-t<N>  ReferenceTrainer (the eager loop users write) at torch's default thread count, under load

Run: pytest benchmarks/test_bench_contention.py --benchmark-only --bench-device cpu
The ratio that matters is busy-auto / quiet-auto (target <= 1.5).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from fastwgan import ReferenceTrainer, TrainConfig, Trainer, data
from fastwgan.core import rng
from fastwgan.gan import models

BUSY = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"
ROUNDS = 40


def _busy_process():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity (Linux) to pin the competing process to one core")
    return subprocess.Popen([sys.executable, "-c", BUSY])


def _build(variant: str, width: int = 128, batch: int = 256):
    cfg = TrainConfig.preset("wgan-gp-toy", batch_size=batch, device="cpu")
    torch.manual_seed(0)
    G, D = models.mlp((2,), latent_dim=2, hidden=width, depth=3)
    if variant.startswith("busy-reference"):
        trainer = ReferenceTrainer(G, D, cfg)
    else:
        threads = "auto" if variant.endswith("auto") else int(variant.rsplit("-t", 1)[1])
        trainer = Trainer(G, D, cfg, compile=True, threads=threads)
    points = data.toy("25gaussians", n=4096, seed=0)
    prepared = trainer.batch_source(points)
    gen = rng.make_generator(cfg.seed)
    draw = lambda: rng.draw_step(gen, points.shape[0], cfg.n_critic, batch, cfg.latent_dim, True)  # noqa: E731
    return trainer, prepared, draw


@pytest.mark.parametrize("variant", ["quiet-auto", "busy-auto", "busy-t{max}", "busy-t1", "busy-reference-t{max}"])
def test_contention(benchmark, bench, variant):
    if bench.device.type != "cpu":
        pytest.skip("shared-core contention is a CPU matter")
    n = torch.get_num_threads()
    variant = variant.format(max=n)
    torch._dynamo.reset()
    trainer, prepared, draw = _build(variant)
    t = time.perf_counter()
    for _ in range(10):  # compile, warm up, and (auto) the first probe, all quiet
        trainer._step(prepared, draw())
    warm = time.perf_counter() - t
    proc = _busy_process() if variant.startswith("busy") else None
    try:
        time.sleep(0.2 if proc else 0)
        benchmark.group = "contention cpu toy-mlp128-b256"
        benchmark.pedantic(
            lambda noise: trainer._step(prepared, noise), setup=lambda: ((draw(),), {}), rounds=ROUNDS, iterations=1
        )
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
    policy = getattr(trainer, "threads", None)
    benchmark.extra_info.update(
        {
            "kind": "contention",
            "variant": variant,
            "cpu_count": os.cpu_count(),
            "torch_threads": n,
            "warm_s": warm,
            "policy_log": [list(x) for x in (policy.log if policy is not None else [])],
        }
    )
