"""Peak memory of `fastwgan train` on image folders of growing size: loaded whole (--stream off) against streamed
from disk (--stream on), measured as the growth of the resident set's peak (VmHWM) while `main` runs, in a fresh
process per run, after the imports.

    python benchmarks/stream_memory.py --sizes 500 2000 8000 --json benchmarks/results/stream_memory.json

Folders hold incompressible (uniform random) RGB PNGs, so the decoded size is what it says. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PEAK = r"""
import sys
import fastwgan.cli, fastwgan.gan.trainer, fastwgan.gan.models, fastwgan.data.streaming  # imports
import fastwgan.core.run, fastwgan.core.plots  # imports
import matplotlib.pyplot, tqdm.auto  # before the mark
from fastwgan.cli import main
open("/proc/self/clear_refs", "w").write("5")  # reset the peak resident set (VmHWM) to the current one
rss = lambda key: int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])  # KiB
start = rss("VmRSS:")
rc = main(sys.argv[1:])
print(rss("VmHWM:") - start)  # the peak growth while training
sys.exit(rc)
"""


def make_pool(root: Path, n: int, size: int, unique: int | None = None) -> list[Path]:
    """n PNG files of random pixels; with ``unique``, files past the first ``unique`` are hard links to them (the
    decoded size is the same, the folder is quicker to make)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = root / f"{i:06d}.png"
        if not p.exists():
            if unique is not None and i >= unique:
                os.link(paths[i % unique], p)
            else:
                Image.fromarray(r.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def folder_of(pool: list[Path], n: int, root: Path) -> Path:
    """A folder of the pool's first n images (hard links: no copies)."""
    d = root / f"n{n}"
    d.mkdir(parents=True, exist_ok=True)
    for p in pool[:n]:
        q = d / p.name
        if not q.exists():
            os.link(p, q)
    return d


def peak_growth_kib(folder: Path, stream: str, out: Path, steps: int = 2) -> tuple[int, float]:
    argv = [
        "train",
        "--data",
        str(folder),
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--overwrite",
        "--batch-size",
        "8",
        "--trainer",
        "reference",
        "--no-progress",
        "--model",
        "mlp",
        "--width",
        "8",
        "--workers",
        "0",
        "--stream",
        stream,
    ]
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", PEAK, *argv],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}, "OMP_NUM_THREADS": "1"},
    )
    if p.returncode != 0:
        raise RuntimeError(f"train --stream {stream} on {folder} failed:\n{p.stderr[-2000:]}")
    return int(p.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000])
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--unique", type=int, default=None, help="distinct images; the rest are hard links to them")
    ap.add_argument("--workdir", default=None, help="where the folders go (default: a temporary folder)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    work = Path(args.workdir or tempfile.mkdtemp(prefix="fastwgan-stream-"))
    pool = make_pool(work / "pool", max(args.sizes), args.image_size, args.unique)
    rows = []
    for n in args.sizes:
        folder = folder_of(pool, n, work)
        decoded = n * 3 * args.image_size**2 / 2**20
        for stream in ("off", "on"):
            kib, wall = peak_growth_kib(folder, stream, work / f"run-{n}-{stream}")
            rows.append(
                {
                    "images": n,
                    "decoded_mib": round(decoded, 1),
                    "stream": stream,
                    "peak_growth_mib": round(kib / 1024, 1),
                    "wall_s": round(wall, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    result = {
        "command": "python benchmarks/stream_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "image_size": args.image_size,
        "rows": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
