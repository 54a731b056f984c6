"""Class-conditional steps cost no more, relative to the reference, than unconditional ones (issue 12).

Case: the bundled digits MLPs (1 x 8 x 8, width 256, depth 3), wgan-gp, batch 64, on digits-train with its labels;
conditioning none / projection / acgan. Each round runs one ReferenceTrainer iteration (timed by hand, in the
untimed set-up) and then one compiled fastwgan.Trainer iteration (timed by pytest-benchmark) on the same random
numbers, so `extra_info["speedup_vs_reference"]` (median reference / median fastwgan) compares the two on the same
machine state; the conditional rows' speed-up should be no lower than the unconditional row's.

Run: pytest benchmarks/test_bench_conditional.py --benchmark-only --bench-device cpu
"""

from __future__ import annotations

import time

import pytest
import torch

from fastwgan import ReferenceTrainer, TrainConfig, Trainer, data
from fastwgan.core import rng
from fastwgan.gan import models

ROUNDS = 30


def _trainer(kind, conditioning, cfg, x, y):
    torch.manual_seed(0)
    cond = {} if conditioning == "none" else {"num_classes": 10, "conditioning": conditioning}
    G, D = models.mlp((1, 8, 8), cfg.latent_dim, hidden=256, **cond)
    trainer = ReferenceTrainer(G, D, cfg) if kind == "reference" else Trainer(G, D, cfg, compile=True)
    prepared = trainer.batch_source(x, y)  # what fit(x, labels=y) trains from
    return trainer, prepared


@pytest.mark.parametrize("conditioning", ["none", "projection", "acgan"])
def test_conditional_step_vs_reference(benchmark, bench, conditioning):
    if bench.device.type != "cpu":
        pytest.skip("measured on CPU so far (the GPU check runs the unconditional cases)")
    torch._dynamo.reset()
    x, y = data.load("digits-train", labels=True)
    y = None if conditioning == "none" else y
    cfg = TrainConfig.preset("wgan-gp", num_classes=None if y is None else 10, device="cpu")
    ref, ref_data = _trainer("reference", conditioning, cfg, x, y)
    fast, fast_data = _trainer("fast", conditioning, cfg, x, y)
    gen = rng.make_generator(cfg.seed)

    def draw():
        return rng.draw_step(gen, len(x), cfg.n_critic, cfg.batch_size, cfg.latent_dim, True, y is not None)

    t = time.perf_counter()
    for _ in range(5):  # compile and warm up both
        noise = draw()
        ref._step(ref_data, noise)
        fast._step(fast_data, noise)
    warm = time.perf_counter() - t
    while fast.threads.settling:
        fast._step(fast_data, draw())
    ref_times = []

    def setup():
        noise = draw()
        t = time.perf_counter()
        ref._step(ref_data, noise)
        ref_times.append(time.perf_counter() - t)
        return (noise,), {}

    benchmark.group = "conditional-vs-reference cpu digits-mlp256-b64"
    benchmark.pedantic(lambda noise: fast._step(fast_data, noise), setup=setup, rounds=ROUNDS, iterations=1)
    ref_median = sorted(ref_times)[len(ref_times) // 2]
    benchmark.extra_info.update(
        {
            "kind": "conditional_vs_reference",
            "conditioning": conditioning,
            "reference_median_s": ref_median,
            "reference_times_s": ref_times,
            "speedup_vs_reference": ref_median / benchmark.stats.stats.median,
            "warm_s": warm,
            "threads_log": [list(v) for v in fast.threads.log],
        }
    )
