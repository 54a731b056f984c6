"""Training from a DataLoader costs what the in-memory path costs when the loader keeps up (issue 13).

Case: DCGAN-32 (width 32), wgan-gp, batch 64, compiled fastwgan.Trainer, on a folder of 2048 random 32 x 32 RGB
PNGs. Providers, one step each per round, interleaved in one process so they share the machine state:

* ``memory``: the folder decoded once into a uint8 tensor (`fit(tensor)`, batches gathered by the seeded stream);
* ``folder-w0``: `fit(DataLoader(ImageFolderDataset))` decoding in the training process (no overlap: the cost of
  decoding 5 x 64 PNGs per step is paid in line);
* ``folder-wN``: the same loader with N worker processes decoding ahead (`fastwgan.data.sources.LoaderSource` fetches
  the next step's batches right after launching the current one).

A round times one step (`trainer._step` on the source's batches, then `source.prefetch()` for the next step) of
each provider; pytest-benchmark times ``memory`` and the loaders are timed by hand in the set-up, so
`extra_info["ratio_vs_memory"]` (median loader / median memory) compares them side by side.

Run: pytest benchmarks/test_bench_loader.py --benchmark-only --bench-device cpu
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from fastwgan import TrainConfig, Trainer, data
from fastwgan.core import rng
from fastwgan.data.streaming import ImageFolderDataset, folder_loader
from fastwgan.gan import models

ROUNDS = 15
N_IMAGES = 2048


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("bench-folder")
    r = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(r.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"{i:05d}.png")
    return root


def test_loader_vs_memory(benchmark, bench, folder):
    if bench.device.type != "cpu":
        pytest.skip("measured on CPU so far (the GPU check runs the step benchmarks)")
    torch._dynamo.reset()
    cfg = TrainConfig.preset("wgan-gp", device="cpu")
    workers = sorted({1, min(2, max(1, (os.cpu_count() or 1) - 1))})
    names = ["memory", "folder-w0", *(f"folder-w{w}" for w in workers)]
    ds = ImageFolderDataset(folder)
    trainers, sources = {}, {}
    for name in names:
        torch.manual_seed(0)
        G, D = models.dcgan(32, 3, latent_dim=cfg.latent_dim, width=32, critic_norm="layer")
        trainers[name] = Trainer(G, D, cfg, compile=True, threads=None)
        src = (
            data.load(folder)
            if name == "memory"
            else folder_loader(
                ds, cfg.batch_size, workers=int(name.rsplit("w", 1)[1]), device=torch.device("cpu"), seed=cfg.seed
            )
        )
        sources[name] = trainers[name].batch_source(src)
    gen = rng.make_generator(cfg.seed)

    def draw(name):
        n = sources[name].n
        return rng.draw_step(gen, n, cfg.n_critic, cfg.batch_size, cfg.latent_dim, True)

    def step(name, noise):
        trainers[name]._step(sources[name], noise)
        sources[name].prefetch()

    t = time.perf_counter()
    for _ in range(3):  # compile (one graph set, shared through the cache) and warm up every provider
        for name in names:
            step(name, draw(name))
    warm = time.perf_counter() - t
    times = {name: [] for name in names[1:]}

    def setup():
        for name in names[1:]:
            noise = draw(name)
            t = time.perf_counter()
            step(name, noise)
            times[name].append(time.perf_counter() - t)
        return (draw("memory"),), {}

    benchmark.group = "loader-vs-memory cpu dcgan32-w32-b64"
    benchmark.pedantic(lambda noise: step("memory", noise), setup=setup, rounds=ROUNDS, iterations=1)
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    mem = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "kind": "loader_vs_memory",
            "images": N_IMAGES,
            "warm_s": warm,
            "memory_median_s": mem,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            **{f"{name}_median_s": median(v) for name, v in times.items()},
            "ratio_vs_memory": {name: median(v) / mem for name, v in times.items()},
            "times_s": times,
        }
    )
    for src in sources.values():
        src.close()
