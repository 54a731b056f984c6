"""Domain adaptation on the digits, measured (issue 15): target-test accuracy of one classifier trained four ways,
source = the bundled digits (digits-train, gray in 3 channels), target = digits-m (the same kind of digits blended
with colour textures as |patch - digit|, fastwgan.data.digits_m), tested on digits-m-heldout (500 images whose
digits no arm trained on):

    (a) source only       the classifier (fastwgan.eval.classifier.DigitClassifier, 3 channels) on source labels
    (b) WDGRL             fastwgan.uses.adapt.AdaptTrainer from (a)'s weights, unlabelled target images
    (c) translated source the classifier on G_st(source) with source labels, G_st from
                          fastwgan.uses.translate.TranslationTrainer (WGAN-GP critics, cycle 10, identity 5)
    (d) target oracle     the classifier on target labels (the ceiling)
and the reverse direction: (e) (a)'s classifier on G_ts(target test) (translated back to the source).
Mean +- std over seeds; every arm's wall time. Targets: (b) and (c) each close at least half of the gap a -> d.

    .venv/bin/python benchmarks/domain_digits.py --json benchmarks/results/domain_digits.json \\
        --grid docs/img/domain_digits_grid.png
    .venv/bin/python benchmarks/domain_digits.py --from-json benchmarks/results/domain_digits.json
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from _study import study_main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fastwgan as fw  # noqa: E402
from fastwgan.core.run import environment  # noqa: E402
from fastwgan.eval import classifier  # noqa: E402
from fastwgan.uses import adapt, translate  # noqa: E402

ARMS = ("source_only", "wdgrl", "translated", "oracle", "reverse")
LABELS = {
    "source_only": "(a) source only",
    "wdgrl": "(b) WDGRL",
    "translated": "(c) translated source",
    "oracle": "(d) target oracle",
    "reverse": "(e) reverse: (a) on G_ts(target)",
}


def _options(a):
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a.add_argument("--translate-steps", type=int, default=1000)
    a.add_argument("--adapt-steps", type=int, default=1000)
    a.add_argument("--epochs", type=int, default=40, help="classifier epochs, every arm")
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--width", type=int, default=32, help="translator width")
    a.add_argument("--weight", type=float, default=adapt.WEIGHT, help="WDGRL lambda")
    a.add_argument("--no-compile", action="store_true", help="eager fast trainers (smoke runs)")
    a.add_argument("--blocks", type=int, default=3, help="translator residual blocks")
    a.add_argument(
        "--critic",
        choices=("mlp", "dcgan"),
        default="dcgan",
        help="the translation critics: fastwgan.gan.models' MLP or its convolutional DCGAN critic (8 px)",
    )
    a.add_argument("--critic-width", type=int, default=None, help="the critics' MLP hidden / DCGAN base width")
    a.add_argument("--cycle-weight", type=float, default=translate.CYCLE_WEIGHT, help="lambda_cyc")
    a.add_argument("--identity-weight", type=float, default=None, help="lambda_id (default 0.5 lambda_cyc)")
    a.add_argument(
        "--semantic-weight",
        type=float,
        default=0.0,
        help="> 0: CyCADA's semantic consistency with (a)'s classifier, this weight (0: plain CycleGAN)",
    )
    a.add_argument("--lr-adapt", type=float, default=1e-4, help="WDGRL: the extractor's and classifier's lr")
    a.add_argument(
        "--arms",
        nargs="+",
        default=["wdgrl", "translated"],
        choices=("wdgrl", "translated"),
        help="the adapted arms to run ((a), (d) always run)",
    )
    a.add_argument("--grid", type=Path, default=None, help="write seed 0's translation grid here")


def data():
    xs, ys = fw.data.load("digits-train", channels=3, labels=True)
    xs_test, ys_test = fw.data.load("digits-heldout", channels=3, labels=True)
    xt, yt = fw.data.load("digits-m-train", labels=True)
    xt_test, yt_test = fw.data.load("digits-m-heldout", labels=True)
    return xs, ys, xs_test, ys_test, xt, yt, xt_test, yt_test


def translation_trainer(seed: int, args, semantic=None) -> translate.TranslationTrainer:
    cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, batch_size=args.batch_size)
    torch.manual_seed(seed)
    g_st = fw.models.translator(8, 3, 3, width=args.width, blocks=args.blocks)
    g_ts = fw.models.translator(8, 3, 3, width=args.width, blocks=args.blocks)
    kw = {} if args.critic_width is None else {"hidden" if args.critic == "mlp" else "width": args.critic_width}
    d_s = fw.models.build(args.critic, (3, 8, 8), cfg.latent_dim, **kw)[1]
    d_t = fw.models.build(args.critic, (3, 8, 8), cfg.latent_dim, **kw)[1]
    return translate.TranslationTrainer(
        g_st,
        g_ts,
        d_s,
        d_t,
        cfg,
        args.cycle_weight,
        args.identity_weight,
        semantic=semantic,
        semantic_weight=args.semantic_weight,
        compile=not args.no_compile,
    )


def one_seed(seed: int, d, args) -> dict:
    xs, ys, xs_test, ys_test, xt, yt, xt_test, yt_test = d
    out, wall = {}, {}

    def timed(name, fn):
        t0 = time.perf_counter()
        r = fn()
        wall[name] = time.perf_counter() - t0
        return r

    acc = classifier.accuracy
    clf_a = timed("source_only", lambda: classifier.train_classifier(xs, ys, epochs=args.epochs, seed=seed))
    out["source_only"] = acc(clf_a, xt_test, yt_test)
    out["source_only_on_source"] = acc(clf_a, xs_test, ys_test)
    clf_d = timed("oracle", lambda: classifier.train_classifier(xt, yt, epochs=args.epochs, seed=seed))
    out["oracle"] = acc(clf_d, xt_test, yt_test)

    # (b) WDGRL from (a)'s weights (the public implementation starts from a source-trained model too)
    def wdgrl():
        torch.manual_seed(seed)
        extractor, head, critic = adapt.digit_networks(3)
        extractor.load_state_dict(clf_a.body.state_dict())
        head.load_state_dict(clf_a.head.state_dict())
        cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, batch_size=args.batch_size, lr_g=args.lr_adapt)
        tr = adapt.AdaptTrainer(extractor, head, critic, cfg, args.weight, compile=not args.no_compile)
        return tr.fit(xs, xt, args.adapt_steps, labels=ys, log_every=100, progress=False)

    if "wdgrl" in args.arms:
        tr_b = timed("wdgrl", wdgrl)
        out["wdgrl"] = tr_b.accuracy(xt_test, yt_test)
        out["wdgrl_history"] = tr_b.history[-1]
    if "translated" not in args.arms:
        out["wall_s"] = wall
        print(f"seed {seed}: " + ", ".join(f"{k} {out[k]:.3f}" for k in ARMS if k in out), flush=True)
        return out

    # (c) pixel level: translate the source, train the classifier on it with the source labels
    semantic = clf_a if args.semantic_weight > 0 else None
    tr_c = timed(
        "translation",
        lambda: translation_trainer(seed, args, semantic).fit(
            xs, xt, args.translate_steps, log_every=100, progress=False
        ),
    )
    xs_to_t = fw.data.to_uint8(tr_c.translate(xs, "s2t"))
    clf_c = timed("translated", lambda: classifier.train_classifier(xs_to_t, ys, epochs=args.epochs, seed=seed))
    out["translated"] = acc(clf_c, xt_test, yt_test)
    out["translated_history"] = tr_c.history[-1]
    # do the translations carry their digit in the target's look? the oracle (d) reads G_st(held-out source)
    out["oracle_on_translated"] = acc(clf_d, fw.data.to_uint8(tr_c.translate(xs_test, "s2t")), ys_test)
    out["translated_train_fit"] = acc(clf_c, xs_to_t, ys)
    # (e) reverse: target test images translated to the source, through the source classifier
    out["reverse"] = acc(clf_a, fw.data.to_uint8(tr_c.translate(xt_test, "t2s")), yt_test)
    out["wall_s"] = wall
    if seed == args.seeds[0] and args.grid is not None:
        grid(tr_c, xs_test, xt_test, args.grid)
    print(f"seed {seed}: " + ", ".join(f"{k} {out[k]:.3f}" for k in ARMS if k in out), flush=True)
    return out


def grid(tr, xs_test, xt_test, path: Path) -> None:
    """Rows of 10 held-out images: source, G_st(source), G_ts(G_st(source)); target, G_ts(target),
    G_st(G_ts(target))."""
    xs, xt = xs_test[:10], xt_test[:10]
    st, ts = tr.translate(xs, "s2t"), tr.translate(xt, "t2s")
    rows = [fw.data.to_float(xs), st, tr.translate(st, "t2s"), fw.data.to_float(xt), ts, tr.translate(ts, "s2t")]
    path.parent.mkdir(parents=True, exist_ok=True)
    fw.data.save_grid(torch.cat(rows), path, nrow=10, scale=None)


def run(args) -> dict:
    d = data()
    runs = [one_seed(s, d, args) for s in args.seeds]
    summary = {}
    for k in (*ARMS, "source_only_on_source", "oracle_on_translated", "translated_train_fit"):
        vals = [r[k] for r in runs if k in r]
        if not vals:
            continue
        summary[k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    walls = {k: statistics.fmean(r["wall_s"][k] for r in runs) for k in runs[0]["wall_s"]}
    extra = {
        "critic": args.critic,
        "critic_width": args.critic_width,
        "blocks": args.blocks,
        "lr_adapt": args.lr_adapt,
        "arms": args.arms,
        "cycle_weight": args.cycle_weight,
        "identity_weight": args.identity_weight,
        "semantic_weight": args.semantic_weight,
    }
    gap = summary["oracle"]["mean"] - summary["source_only"]["mean"]
    closed = {
        k: (summary[k]["mean"] - summary["source_only"]["mean"]) / gap if gap > 0 else float("nan")
        for k in ("wdgrl", "translated")
        if k in summary
    }
    return {
        "study": "domain_digits",
        "seeds": args.seeds,
        "translate_steps": args.translate_steps,
        "adapt_steps": args.adapt_steps,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "width": args.width,
        "weight": args.weight,
        "compile": not args.no_compile,
        **extra,
        "runs": runs,
        "summary": summary,
        "wall_mean_s": walls,
        "gap_closed": closed,
        "environment": environment(),
        "threads": torch.get_num_threads(),
    }


def table(result: dict) -> str:
    s, w = result["summary"], result["wall_mean_s"]
    arm_wall = {
        "source_only": w["source_only"],
        "wdgrl": w.get("wdgrl"),
        "oracle": w["oracle"],
        "translated": w["translation"] + w["translated"] if "translation" in w else None,
        "reverse": w.get("translation"),
    }
    lines = ["| arm | digits-m-heldout accuracy | gap a -> d closed | wall per seed (s) |", "|---|---|---|---|"]
    for k in ARMS:
        if k not in s:
            continue
        closed = result["gap_closed"].get(k)
        lines.append(
            f"| {LABELS[k]} | {s[k]['mean']:.3f} +- {s[k]['std']:.3f} | "
            f"{'' if closed is None else f'{closed:.0%}'} | {arm_wall[k]:.0f} |"
        )
    if "oracle_on_translated" in s:
        lines.append(
            f"\nthe oracle (d) on G_st(held-out source): {s['oracle_on_translated']['mean']:.3f} (do the "
            f"translations carry their digit in the target's look?); (c)'s fit of its own training set "
            f"{s['translated_train_fit']['mean']:.3f}"
        )
    lines.append(
        f"\n(a) on the source's own held-out digits: {s['source_only_on_source']['mean']:.3f}; seeds "
        f"{result['seeds']}; translation {result['translate_steps']} steps, WDGRL {result['adapt_steps']} "
        f"steps, classifiers {result['epochs']} epochs; (e)'s wall is the shared translation run"
    )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(range(len(ARMS)), [s[k]["mean"] for k in ARMS], yerr=[s[k]["std"] for k in ARMS], color="C0")
    ax.set_xticks(
        range(len(ARMS)),
        [LABELS[k].split(" ", 1)[0] + "\n" + LABELS[k].split(" ", 1)[1][:18] for k in ARMS],
        fontsize=7,
    )
    ax.set_ylabel("digits-m-heldout accuracy")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    return study_main(argv, __doc__, _options, run, table, plot)


if __name__ == "__main__":
    sys.exit(main())
