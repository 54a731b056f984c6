"""The command line every use-case study in benchmarks/ shares: run (or read a stored result), print the table,
write the JSON and the plot. A study supplies its own options, `run(args) -> result`, `table` and `plot`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def study_main(argv, doc: str, add_options, run, table, plot) -> int:
    a = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_options(a)
    a.add_argument("--json", type=Path, default=None, help="write the result here")
    a.add_argument("--plot", type=Path, default=None, help="draw the plot here")
    a.add_argument("--from-json", type=Path, default=None, help="no training: table and plot of a stored result")
    args = a.parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        t0 = time.perf_counter()
        result = run(args)
        result["wall_s"] = time.perf_counter() - t0
        result["command"] = f"python {Path(sys.argv[0]).as_posix()} " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    if "wall_s" in result:
        print(f"wall {result['wall_s']:.0f} s")
    if args.plot:
        plot(result, args.plot)
    return 0


def normal_rows(y, digit: int, protocol: str):
    """The normal rows of a labelled set under an anomaly protocol: all-vs-one, every class but ``digit``;
    one-vs-rest, ``digit`` alone."""
    return (y != digit) if protocol == "all-vs-one" else (y == digit)


def validation_split(x, y, digit: int, protocol: str, n_val: int):
    """The anomaly studies' validation setting, carved from training data (never a test split): (x, y) split once
    (generator seed 123) into ``n_val`` validation images and the rest.

    Returns:
        (the rest's normal images under ``protocol``, the validation images, their anomalous mask)
    """
    import torch

    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(123))
    val, tr = perm[:n_val], perm[n_val:]
    return x[tr][normal_rows(y[tr], digit, protocol)], x[val], ~normal_rows(y[val], digit, protocol)


def digits_validation_setting(digit: int, seed: int = 0, n_val: int = 400, model: str = "mlp", width: int = 256):
    """The digit studies' setting (critic_knn_choice.py, fanogan_diagnosis.py): ``validation_split`` of digits-train,
    all-vs-one, and a WGAN-GP (the bundled ``model``, MLPs of ``width`` hidden units or a DCGAN of ``width`` base
    channels, EMA 0.999, eager) built to train on the normal rest.

    Returns:
        (normal training images, validation images, their anomalous mask, the untrained fastwgan.Trainer)
    """
    import torch

    import fastwgan as fw

    normal, xv, anom = validation_split(*fw.data.digits_split("train"), digit, "all-vs-one", n_val)
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed)
    torch.manual_seed(seed)
    size = {"hidden": width} if model == "mlp" else {"width": width}
    G, D = fw.models.build(model, (1, 8, 8), cfg.latent_dim, **size)
    return normal, xv, anom, fw.Trainer(G, D, cfg, ema_decay=0.999, compile=False)
