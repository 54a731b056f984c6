"""Where a generator iteration's time goes: GEMMs, convolutions, everything else (torch.profiler, self times).

    python benchmarks/profile_step.py --case toy-mlp512 [--provider fastwgan|reference] [--iters 5] [--threads N]
           [--json OUT.json]

Cases are the step benchmarks' CPU cases: toy-mlp128, toy-mlp512 (the WGAN-GP authors' 2-D toy, batch 256,
lambda 0.1), dcgan-gp (DCGAN-32 b64, LayerNorm critic), dcgan-clip (DCGAN-32 b64, BatchNorm critic). The share
outside GEMMs (and convolutions) is the work a compiled step should shrink towards zero: at the FLOP floor a step
is all matrix products. With --kernels each inductor C++ kernel is listed by name (inductor's kernel profiling).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

GEMM = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul_out"}
CONV = {
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_convolution",
    "aten::conv2d",
    "aten::convolution",
}


def build(case: str, provider: str, compile: bool = True):
    from fastwgan import ReferenceTrainer, TrainConfig, Trainer, data
    from fastwgan.core import rng
    from fastwgan.gan import models

    torch.manual_seed(0)
    if case.startswith("toy-mlp"):
        cfg = TrainConfig.preset("wgan-gp-toy", batch_size=256)
        G, D = models.mlp((2,), latent_dim=2, hidden=int(case[7:]), depth=3)
        images = data.toy("25gaussians", n=4096, seed=0)
    else:
        gp = case == "dcgan-gp"
        cfg = TrainConfig.preset("wgan-gp" if gp else "wgan-clip", batch_size=64)
        G, D = models.dcgan(32, 3, latent_dim=cfg.latent_dim, width=64, critic_norm="layer" if gp else "batch")
        images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    trainer = (
        ReferenceTrainer(G, D, cfg) if provider == "reference" else Trainer(G, D, cfg, threads=None, compile=compile)
    )
    prepared = trainer.batch_source(images)
    gen = rng.make_generator(cfg.seed)
    return (
        trainer,
        prepared,
        lambda: rng.draw_step(gen, images.shape[0], cfg.n_critic, cfg.batch_size, cfg.latent_dim, cfg.uses_penalty),
    )


def _one(trainer, source, noise):
    """One train step, the trainer's own work only (no thread policy, no model-RNG swap)."""
    return trainer._train_step(source.next(noise), noise)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="toy-mlp512", choices=["toy-mlp128", "toy-mlp512", "dcgan-gp", "dcgan-clip"])
    ap.add_argument("--provider", default="fastwgan", choices=["fastwgan", "reference"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--kernels", action="store_true", help="list inductor's C++ kernels by name")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.kernels:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    trainer, prepared, draw = build(args.case, args.provider)
    for _ in range(3):  # compile and warm up
        _one(trainer, prepared, draw())
    from torch.profiler import ProfilerActivity, profile

    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.iters):
            _one(trainer, prepared, draw())
    wall = (time.perf_counter() - t) / args.iters
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV)
    out = {
        "case": args.case,
        "provider": args.provider,
        "iters": args.iters,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "wall_ms_per_iter_profiled": wall * 1e3,
        "self_ms_per_iter": total / 1e3 / args.iters,
        "gemm_share": gemm / total,
        "conv_share": conv / total,
        "other_share": 1 - (gemm + conv) / total,
        "top_other": [
            (e.key, e.self_cpu_time_total / 1e3 / args.iters)
            for e in sorted(events, key=lambda e: -e.self_cpu_time_total)
            if e.key not in GEMM | CONV
        ][:12],
    }
    print(json.dumps(out, indent=1))
    write_json(out, args.json)
    return out


def write_json(obj: dict, path: str | None) -> None:
    """Save a result next to the printed one (nothing when no path was given)."""
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)


if __name__ == "__main__":
    main()
