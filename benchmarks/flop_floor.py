"""The FLOP floor of each step case: matrix FLOPs per generator iteration / the machine's measured GEMM rate.

    python benchmarks/flop_floor.py [--json OUT.json] [--steps-json STEPS.json]

FLOPs are counted with `torch.utils.flop_counter`'s formulas over one generator iteration of the fast trainer run
eagerly (every matmul and convolution, forward, backward and the penalty's double backward). The rate is the
best of a few large fp32 GEMMs (2048^3) at torch's current thread count, so "floor ms" is what a step would take
if every FLOP ran at GEMM speed and nothing else cost time. With --steps-json (a pytest-benchmark JSON of
benchmarks/test_bench_steps.py), each case's measured fastwgan and loop medians are set beside it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from profile_step import build, write_json  # benchmarks/ is this script's folder (sys.path[0])
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

CASES = {
    "toy-mlp128": "gp-toy-mlp128-b256",
    "toy-mlp512": "gp-toy-mlp512-b256",
    "dcgan-gp": "gp-32px-b64",
    "dcgan-clip": "clip-32px-b64",
}


class CountFlops(TorchDispatchMode):
    """Sums torch.utils.flop_counter's FLOP formulas over every op that runs (no module hooks: FlopCounterMode's
    backward hooks refuse `autograd.grad`, which the penalty needs)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--steps-json", nargs="*", default=[], help="later files override earlier ones")
    args = ap.parse_args(argv)
    rate = gemm_gflops()
    measured = {}
    for path in args.steps_json:  # interleaved rounds (test_step_vs_loop) where stored: fastwgan and loop medians
        for b in json.load(open(path))["benchmarks"]:
            info = b.get("extra_info", {})
            if info.get("kind") == "step_vs_loop" and info.get("provider") == "fastwgan":
                measured[info["case"]] = {"fastwgan": b["stats"]["median"], "loop": info["loop_median_s"]}
    out = {"gemm_gflops": rate, "threads": torch.get_num_threads(), "torch": torch.__version__, "cases": {}}
    for case, prefix in CASES.items():
        trainer, prepared, draw = build(case, "fastwgan", compile=False)
        noise = draw()
        with CountFlops() as counter:
            trainer._train_step(prepared.next(noise), noise)
        flops = counter.flops
        row = {"gflop_per_iter": flops / 1e9, "floor_ms": flops / (rate * 1e9) * 1e3}
        m = next((v for k, v in measured.items() if k.startswith(prefix)), None)
        if m:
            for p in ("fastwgan", "loop"):
                if p in m:
                    row[f"{p}_ms"] = m[p] * 1e3
                    row[f"{p}_over_floor"] = m[p] * 1e3 / row["floor_ms"]
        out["cases"][case] = row
        print(case, json.dumps(row))
    print(f"GEMM rate {rate:.1f} GFLOP/s at {torch.get_num_threads()} threads")
    write_json(out, args.json)
    return out


if __name__ == "__main__":
    main()
