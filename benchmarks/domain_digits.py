"""Domain adaptation on real digit shifts, measured (issue 24): the target-test accuracy of one classifier
architecture (fastwgan.eval.classifier.DigitClassifier, 8x8) trained several ways, on three shifts:

    mnist->digits      source MNIST-5k-train (4000, the 20x20 digit box area-resized to 8x8: load(resize="box"))
                       target the bundled UCI digits-train (1297), tested on digits-heldout (500)
    digits->mnist      the reverse: tested on mnist-5k-heldout (1000, boxed the same way)
    digits->digits-m   source digits-train in 3 channels, target digits-m-train (the digits blended with
                       luminance-correlated colour textures, as MNIST-M), tested on digits-m-heldout

Arms (target labels are used by the oracle and the test only, never for choosing anything):

    source_only  the classifier on source labels (epochs, Adam 1e-3, 1-pixel shifts)
    source_photo a second baseline, no target images at all: source_only's recipe and budget with the package's
                 photometric augmentation (``train_classifier(photometric=True)``: on every batch one polarity
                 per image (x or -x, even odds), a gain in [0.3, 1] and an offset in [-0.5, 0.5] per channel,
                 clamped to [-1, 1]; ``fastwgan.core.images.photometric_draw``: ours, set once from how digits-m
                 is made (a blend can turn a stroke darker than its background), not tuned, applied unchanged
                 to every shift)
    wdgrl_photo  WDGRL (as the wdgrl arm) from source_photo's classifier, with the same augmentation of the
                 source batches (``AdaptTrainer(photometric=True)``; ``fastwgan adapt --photometric``)
    dann         fastwgan.uses.adapt, method "dann", from source_only's weights (the defaults: lambda 1)
    wdgrl        fastwgan.uses.adapt, method "wdgrl", from source_only's weights (the defaults: lambda 0.1,
                 clf_steps 1, Adam(1e-4, betas (0.9, 0.999)), n_critic 5, gamma 10: the public port's, lambda ours)
    wdgrl_dirtt  wdgrl's classifier refined by DIRT-T (fastwgan.uses.adapt, method "dirtt": the target's conditional
                 entropy, VAT, the KL from the teacher; the official code's settings, adapt.CONFIGS["dirtt"]),
                 --refine-steps more steps (the wdgrl arm's classifier is the start when both run)
    wdgrl_ent    the same, plus VADA's target-entropy term at its official code's weight
                 (entropy_weight = adapt.VADA_ENTROPY_WEIGHT, 1e-2)
    pixelda      fastwgan.uses.pixelda (a WGAN-GP critic on target vs G(x_s, z); its task classifier T is the
                 output), the package defaults but T's warm start: --epochs, as the source-only arm
    pixelda_dirtt  pixelda's task classifier T refined by DIRT-T as wdgrl_dirtt (the pixelda arm's T when both run)
    pixelda_wdgrl  CyCADA's pixel + feature levels: WDGRL (as the wdgrl arm, --adapt-steps) from pixelda's T, its
                 source the adapted source images G(x_s, z) (one draw each) with the source labels (pixelda's run)
    pixelda_sem  the same with CyCADA's semantic term: source_only's classifier, frozen, must read G(x_s, z) as y_s
                 (semantic = that classifier, semantic_weight = pixelda.SEMANTIC_WEIGHT, 1)
    pixelda_cond  pixelda with the class-aware critic (``class_critic=True``: D(x, softmax(T(x))), a projection
                 critic on T's reading, T frozen inside it and its gradient penalty; ``fastwgan adapt --method
                 pixelda --class-critic``); pixelda_cond_dirtt: its T refined by DIRT-T as pixelda_dirtt
    pixelda_photo  pixelda with the photometric augmentation of the source batches (``PixelDATrainer(photometric=
                 True)``: G adapts augmented source images, T trains on them and on G's output, T's warm start is
                 source_photo's recipe; ``fastwgan adapt --method pixelda --photometric``)
    cyclegan     fastwgan.uses.translate (CycleGAN with WGAN-GP critics, CyCADA's digit weights: cycle 1,
                 identity 0, semantic 1 with the TRUE source labels for s -> t); the classifier trained on
                 G_st(source) with the source labels (--cyclegan-seeds: fewer seeds, it is the slowest arm)
    oracle       the classifier on target labels (the ceiling)

--adapt-shift: DANN and WDGRL train on 1-pixel-shifted batches of both domains (the baselines' augmentation;
fastwgan.uses.adapt's ``shift``, off by default as in the paper). DANN runs clf_steps x as many steps as WDGRL
(1 x by default), so both update the extractor and classifier equally often. Every arm's settings come from the
papers / public code or the package defaults (those we measured were chosen on mnist->digits, reading the target's
training images, whose labels no trainer sees), applied unchanged to all three shifts. Mean +- std over seeds, the
fraction of the source-only -> oracle gap closed, wall times.

    .venv/bin/python benchmarks/domain_digits.py --json benchmarks/results/domain_digits.json \\
        --plot docs/img/domain_digits.png --grid docs/img/domain_digits_grid.png
    .venv/bin/python benchmarks/domain_digits.py --from-json benchmarks/results/domain_digits.json
    .venv/bin/python benchmarks/domain_digits.py --merge a.json b.json --json all.json   (runs of other arms)
"""

from __future__ import annotations

import copy
import json
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
from fastwgan.uses import adapt, pixelda, translate  # noqa: E402

SHIFTS = ("mnist->digits", "digits->mnist", "digits->digits-m")
ARMS = ("source_only", "source_photo", "dann", "wdgrl", "wdgrl_dirtt", "wdgrl_ent", "pixelda", "pixelda_dirtt")
ARMS += ("pixelda_wdgrl",)
ARMS += ("pixelda_sem", "wdgrl_photo", "pixelda_photo", "pixelda_cond", "pixelda_cond_dirtt")
ARMS += ("cyclegan", "oracle")
ADAPTED = ARMS[1:-1]
LABELS = {
    "source_only": "source only",
    "source_photo": "source only + photometric augmentation",
    "wdgrl_photo": "WDGRL from that, on the augmented source",
    "pixelda_photo": "PixelDA-W on the augmented source",
    "dann": "DANN",
    "wdgrl": "WDGRL",
    "wdgrl_dirtt": "WDGRL + DIRT-T refinement",
    "wdgrl_ent": "WDGRL + target entropy",
    "pixelda": "PixelDA-W (pixel level)",
    "pixelda_dirtt": "PixelDA-W + DIRT-T refinement of T",
    "pixelda_wdgrl": "PixelDA-W, then WDGRL on G(source)",
    "pixelda_sem": "PixelDA-W + semantic (frozen source classifier)",
    "pixelda_cond": "PixelDA-W, class-aware critic",
    "pixelda_cond_dirtt": "PixelDA-W, class-aware critic, + DIRT-T",
    "cyclegan": "CycleGAN-W + semantic",
    "oracle": "target oracle",
}


def _options(a):
    a.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=SHIFTS)
    a.add_argument("--arms", nargs="+", default=list(ADAPTED), choices=ADAPTED, help="adapted arms (+ the two ends)")
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a.add_argument(
        "--adapt-shift", action="store_true", help="DANN / WDGRL on 1-pixel-shifted batches (the baselines' shifts)"
    )
    a.add_argument("--cyclegan-seeds", type=int, default=2, help="the CycleGAN arm runs on the first N seeds")
    a.add_argument("--epochs", type=int, default=20, help="classifier epochs (source only, oracle, on translations)")
    a.add_argument("--adapt-steps", type=int, default=3000, help="WDGRL steps (DANN: clf_steps x as many)")
    a.add_argument("--refine-steps", type=int, default=3000, help="DIRT-T steps after WDGRL (wdgrl_dirtt)")
    a.add_argument("--pixelda-steps", type=int, default=4000)
    a.add_argument("--translate-steps", type=int, default=1000)
    a.add_argument("--no-compile", action="store_true", help="eager fast trainers (smoke runs)")
    a.add_argument("--grid", type=Path, default=None, help="write seed 0's PixelDA / CycleGAN grid here")
    a.add_argument("--merge", type=Path, nargs="+", default=None, help="merge stored results (no training)")


def domain(name: str, part: str, channels: int):
    """(images, labels) of one domain's part ("train" | "heldout"), 8x8 uint8 with ``channels`` channels."""
    if name == "mnist":
        return fw.data.load(f"mnist-5k-{part}", image_size=8, resize="box", channels=channels, labels=True)
    return fw.data.load(f"{name}-{part}", channels=channels, labels=True)


def data(shift: str):
    s, t = shift.split("->")
    c = 3 if "digits-m" in (s, t) else 1
    return (*domain(s, "train", c), *domain(s, "heldout", c), *domain(t, "train", c), *domain(t, "heldout", c))


def warm(nets, extractor, head):
    """The adaptation networks (extractor, head, critic) with a classifier's weights (its extractor and head)."""
    nets[0].load_state_dict(extractor.state_dict())
    nets[1].load_state_dict(head.state_dict())
    return nets


def one_seed(shift: str, seed: int, d, args) -> dict:
    xs, ys, xs_test, ys_test, xt, yt, xt_test, yt_test = d
    c, out, wall = xs.shape[1], {}, {}
    compile = not args.no_compile

    def timed(name, fn):
        t0 = time.perf_counter()
        r = fn()
        wall[name] = time.perf_counter() - t0
        return r

    acc = classifier.accuracy
    clf_a = timed("source_only", lambda: classifier.train_classifier(xs, ys, epochs=args.epochs, seed=seed))
    out["source_only"] = acc(clf_a, xt_test, yt_test)
    out["source_only_on_source"] = acc(clf_a, xs_test, ys_test)
    if {"source_photo", "wdgrl_photo"} & set(args.arms):
        photo = lambda: classifier.train_classifier(xs, ys, epochs=args.epochs, seed=seed, photometric=True)  # noqa: E731
        clf_p = timed("source_photo", photo)
        out["source_photo"] = acc(clf_p, xt_test, yt_test)
        out["source_photo_on_source"] = acc(clf_p, xs_test, ys_test)
    clf_d = timed("oracle", lambda: classifier.train_classifier(xt, yt, epochs=args.epochs, seed=seed))
    out["oracle"] = acc(clf_d, xt_test, yt_test)
    out["oracle_on_source"] = acc(clf_d, xs_test, ys_test)  # how well the oracle reads the raw source: the
    # reference for oracle_on_<arm>, the pixel-level arms' adaptations of the same images

    def align(arm, extractor, head, source, method="wdgrl"):  # DANN / WDGRL from a classifier
        def run_adapt():
            torch.manual_seed(seed)
            nets = warm(adapt.digit_networks(c), extractor, head)
            cfg = adapt.default_config(method, seed=seed)
            steps = args.adapt_steps * (adapt.CLF_STEPS["wdgrl"] if method == "dann" else 1)
            ent = adapt.VADA_ENTROPY_WEIGHT if arm == "wdgrl_ent" else 0.0
            photo = arm == "wdgrl_photo"  # the source batches augmented as source_photo's were
            tr = adapt.AdaptTrainer(
                *nets,
                cfg,
                method=method,
                entropy_weight=ent,
                shift=args.adapt_shift,
                photometric=photo,
                compile=compile,
            )
            return tr.fit(source, xt, steps, labels=ys, log_every=100, progress=False)

        tr = trainers[arm] = timed(arm, run_adapt)
        out[arm] = tr.accuracy(xt_test, yt_test)
        out[f"{arm}_on_source"] = tr.accuracy(xs_test, ys_test)
        out[f"{arm}_history"] = tr.history[-1]

    trainers = {}
    for arm in ("dann", "wdgrl", "wdgrl_ent"):
        if arm in args.arms or (arm == "wdgrl" and "wdgrl_dirtt" in args.arms):
            align(arm, clf_a.body, clf_a.head, xs, method="dann" if arm == "dann" else "wdgrl")
    if "wdgrl_photo" in args.arms:
        align("wdgrl_photo", clf_p.body, clf_p.head, xs)

    def refine(arm, extractor, head):  # DIRT-T from copies of an adapted extractor and classifier
        def run_refine():
            nets = copy.deepcopy(extractor), copy.deepcopy(head)
            cfg = adapt.default_config("dirtt", seed=seed)
            tr_r = adapt.AdaptTrainer(*nets, None, cfg, method="dirtt", compile=compile)
            return tr_r.fit(xs, xt, args.refine_steps, labels=ys, log_every=100, progress=False)

        tr = timed(arm, run_refine)
        out[arm] = tr.accuracy(xt_test, yt_test)
        out[f"{arm}_on_source"] = tr.accuracy(xs_test, ys_test)
        out[f"{arm}_history"] = tr.history[-1]

    if "wdgrl_dirtt" in args.arms:
        refine("wdgrl_dirtt", trainers["wdgrl"].extractor, trainers["wdgrl"].classifier)

    for arm in ("pixelda", "pixelda_sem", "pixelda_photo", "pixelda_cond"):
        needs = {f"{arm}_dirtt"} | ({"pixelda_wdgrl"} if arm == "pixelda" else set())
        if arm not in args.arms and not needs & set(args.arms):
            continue

        def run_pixelda(arm=arm):
            torch.manual_seed(seed)
            cond = arm == "pixelda_cond"  # the class-aware critic: D(x, softmax(T(x))), T frozen inside it
            nets = pixelda.digit_networks(c, c, class_critic=cond)
            cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, batch_size=64)
            # CyCADA's semantic term: the source-only arm's classifier, frozen, must read G(x_s, z) as y_s
            sem = {"semantic": clf_a} if arm == "pixelda_sem" else {}
            # T's warm start: the source-only arm's recipe and budget (train_classifier, --epochs)
            photo = arm == "pixelda_photo"  # G adapts augmented source images; T's warm start as source_photo's
            tr = pixelda.PixelDATrainer(
                *nets, cfg, pretrain_epochs=args.epochs, photometric=photo, class_critic=cond, compile=compile, **sem
            )
            return tr.fit(xs, xt, args.pixelda_steps, labels=ys, log_every=100, progress=False)

        tr_p = timed(arm, run_pixelda)
        if f"{arm}_dirtt" in args.arms:  # T: a DigitClassifier (body: the features)
            refine(f"{arm}_dirtt", tr_p.classifier.body, tr_p.classifier.head)
        if arm == "pixelda" and "pixelda_wdgrl" in args.arms:
            align("pixelda_wdgrl", tr_p.classifier.body, tr_p.classifier.head, tr_p.adapt(xs, seed=seed))
        out[arm] = tr_p.accuracy(xt_test, yt_test)
        out[f"{arm}_history"] = tr_p.history[-1]
        # do the adapted images carry their digit in the target's look? the oracle reads G(held-out source)
        out[f"oracle_on_{arm}"] = acc(clf_d, tr_p.adapt(xs_test, seed=seed), ys_test)
        if seed == args.seeds[0] and args.grid is not None:
            rows = [xs_test[:10], tr_p.adapt(xs_test[:10], seed=1), tr_p.adapt(xs_test[:10], seed=2), xt_test[:10]]
            save(rows, args.grid.with_name(f"{args.grid.stem}_{slug(shift)}_{arm}.png"))

    if "cyclegan" in args.arms and seed in args.seeds[: args.cyclegan_seeds]:

        def run_cyclegan():
            cfg = fw.TrainConfig.preset("wgan-gp", seed=seed, batch_size=64)
            torch.manual_seed(seed)
            g_st, g_ts = (fw.models.translator(8, c, c, width=32, blocks=3) for _ in range(2))
            d_s, d_t = (fw.models.build("dcgan", (c, 8, 8), cfg.latent_dim)[1] for _ in range(2))
            tr = translate.TranslationTrainer(
                g_st,
                g_ts,
                d_s,
                d_t,
                cfg,
                translate.DIGIT_CYCLE_WEIGHT,
                translate.DIGIT_IDENTITY_WEIGHT,
                semantic=clf_a,
                semantic_weight=1.0,
                compile=compile,
            )
            return tr.fit(xs, xt, args.translate_steps, labels=ys, log_every=100, progress=False)

        tr_c = timed("translation", run_cyclegan)
        xs_to_t = fw.data.to_uint8(tr_c.translate(xs, "s2t"))
        clf_c = timed("cyclegan", lambda: classifier.train_classifier(xs_to_t, ys, epochs=args.epochs, seed=seed))
        out["cyclegan"] = acc(clf_c, xt_test, yt_test)
        out["oracle_on_cyclegan"] = acc(clf_d, fw.data.to_uint8(tr_c.translate(xs_test, "s2t")), ys_test)
        if seed == args.seeds[0] and args.grid is not None:
            rows = [xs_test[:10], fw.data.to_uint8(tr_c.translate(xs_test[:10], "s2t")), xt_test[:10]]
            save(rows, args.grid.with_name(f"{args.grid.stem}_{slug(shift)}_cyclegan.png"))
    out["wall_s"] = wall
    print(f"{shift} seed {seed}: " + ", ".join(f"{k} {out[k]:.3f}" for k in ARMS if k in out), flush=True)
    return out


def slug(shift: str) -> str:
    return shift.replace("->", "_to_")


def save(rows, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fw.data.save_grid(torch.cat([fw.data.to_float(r) for r in rows]), path, nrow=10, scale=None)


def summarise(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if not k.endswith("_history") and k != "wall_s"]
    keys += [k for r in runs for k in r if k not in keys and not k.endswith("_history") and k != "wall_s"]
    summary = {}
    for k in dict.fromkeys(keys):
        vals = [r[k] for r in runs if k in r]
        summary[k] = {
            "mean": statistics.fmean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "n": len(vals),
        }
    closed = {}
    for k in ADAPTED:  # over the seeds the arm ran on (CycleGAN: the first few)
        rs = [r for r in runs if k in r]
        if rs:
            src, orc = (statistics.fmean(r[a] for r in rs) for a in ("source_only", "oracle"))
            closed[k] = (statistics.fmean(r[k] for r in rs) - src) / (orc - src)
    walls = {k: statistics.fmean(r["wall_s"][k] for r in runs if k in r["wall_s"]) for r in runs for k in r["wall_s"]}
    return {"summary": summary, "gap_closed": closed, "wall_mean_s": walls}


def run(args) -> dict:
    if args.merge:
        return merge([json.loads(p.read_text()) for p in args.merge])
    shifts = {}
    for shift in args.shifts:
        d = data(shift)
        runs = []
        for s in args.seeds:
            runs.append(one_seed(shift, s, d, args))
            if args.json:  # a long run keeps what it has measured: a result of the seeds so far (--merge takes it)
                partial = result({**shifts, shift: {"runs": runs, "seeds": args.seeds[: len(runs)]}}, args)
                args.json.with_suffix(".partial.json").write_text(json.dumps({**partial, "partial": True}) + "\n")
        shifts[shift] = {"runs": runs, "seeds": list(args.seeds)}
    return result(shifts, args)


def result(shifts: dict, args) -> dict:
    """The stored result of ``shifts`` ({shift: {"runs": per-seed records, "seeds": their seeds}}), summarised."""
    shifts = {k: {**v, **summarise(v["runs"])} for k, v in shifts.items()}
    settings = {k: getattr(args, k) for k in ("seeds", "cyclegan_seeds", "epochs", "adapt_steps", "pixelda_steps")}
    settings.update(translate_steps=args.translate_steps, arms=args.arms, compile=not args.no_compile)
    settings["refine_steps"] = args.refine_steps
    settings["adapt_shift"] = args.adapt_shift  # DANN / WDGRL on 1-pixel-shifted batches (results before: without)
    return {
        "study": "domain_digits",
        "settings": settings,
        "shifts": shifts,
        "environment": environment(),
        "threads": torch.get_num_threads(),
    }


#: the settings each adapted arm's results depend on (``merge`` takes them from the run that trained the arm)
ARM_SETTINGS = {
    "source_photo": ("epochs",),
    "wdgrl_photo": ("epochs", "adapt_steps", "adapt_shift"),
    "dann": ("adapt_steps", "adapt_shift"),
    "wdgrl": ("adapt_steps", "adapt_shift"),
    "wdgrl_dirtt": ("adapt_steps", "adapt_shift", "refine_steps"),
    "pixelda_dirtt": ("pixelda_steps", "refine_steps"),
    "pixelda_wdgrl": ("pixelda_steps", "adapt_steps", "adapt_shift"),
    "wdgrl_ent": ("adapt_steps", "adapt_shift"),
    "pixelda": ("pixelda_steps",),
    "pixelda_sem": ("pixelda_steps",),
    "pixelda_photo": ("epochs", "pixelda_steps"),
    "pixelda_cond": ("pixelda_steps",),
    "pixelda_cond_dirtt": ("pixelda_steps", "refine_steps"),
    "cyclegan": ("translate_steps", "cyclegan_seeds"),
}


#: settings that results stored before them lack, as those runs had them
OLD_SETTINGS = {"adapt_shift": False}


def _seeds(result: dict, shift: str) -> list[int]:
    """The seeds of a result's runs of ``shift``, in order (merged results keep them per shift)."""
    return result["shifts"][shift].get("seeds", result["settings"]["seeds"])


def merge(results: list[dict]) -> dict:
    """One result from several runs: each run's per-seed records are merged by (shift, seed), later files adding
    arms or seeds; where two runs trained the same seed, the source-only and oracle arms must agree (same seeds,
    same code)."""
    out = json.loads(json.dumps(results[0]))
    out["merged_from"] = [r.get("command") for r in results]
    for shift in out["shifts"]:
        out["shifts"][shift]["seeds"] = _seeds(results[0], shift)
    for r in results[1:]:
        out["settings"]["arms"] = sorted(set(out["settings"]["arms"]) | set(r["settings"]["arms"]))
        out["settings"]["seeds"] = sorted(set(out["settings"]["seeds"]) | set(r["settings"]["seeds"]))
        for arm in r["settings"]["arms"]:  # an arm's budget is the one of the run that trained it
            out["settings"].update({k: r["settings"].get(k, OLD_SETTINGS.get(k)) for k in ARM_SETTINGS[arm]})
        for shift, s in r["shifts"].items():
            if shift not in out["shifts"]:
                out["shifts"][shift] = {**s, "seeds": _seeds(r, shift)}
                continue
            mine = out["shifts"][shift]
            by_seed = dict(zip(mine["seeds"], mine["runs"]))
            for seed, b in zip(_seeds(r, shift), s["runs"]):
                a = by_seed.setdefault(seed, b)
                if a is b:
                    continue
                if abs(a["source_only"] - b["source_only"]) > 1e-6:
                    raise SystemExit(f"merge: {shift} seed {seed}: source-only differs between runs ({a} vs {b})")
                a.update({k: v for k, v in b.items() if k != "wall_s"})
                a["wall_s"].update(b["wall_s"])
            mine["seeds"] = sorted(by_seed)
            mine["runs"] = [by_seed[k] for k in mine["seeds"]]
    for shift, s in out["shifts"].items():
        s.update(summarise(s["runs"]))
    # the seeds that ran (a partial run's settings list the seeds it was asked for)
    out["settings"]["seeds"] = sorted({k for s in out["shifts"].values() for k in s["seeds"]})
    return out


def table(result: dict) -> str:
    shifts = result["shifts"]
    head = "| arm | " + " | ".join(f"{s}: accuracy (gap closed)" for s in shifts) + " |"
    lines = [head, "|---" * (len(shifts) + 1) + "|"]
    for k in ARMS:
        cells = []
        for s in shifts.values():
            if k not in s["summary"]:
                cells.append("")
                continue
            m, closed = s["summary"][k], s["gap_closed"].get(k)
            cell = f"{m['mean']:.3f} +- {m['std']:.3f}"
            cell += f" ({closed:.0%})" if closed is not None else ""
            cell += f" n={m['n']}" if m["n"] != len(s["runs"]) else ""
            cells.append(cell)
        lines.append(f"| {LABELS[k]} | " + " | ".join(cells) + " |")
    walls = []
    for name, s in shifts.items():
        w = s["wall_mean_s"]
        walls.append(f"{name}: " + ", ".join(f"{k} {v:.0f}" for k, v in w.items()))
    st = result["settings"]
    lines.append(
        f"\nseeds {st['seeds']} (CycleGAN: the first {st['cyclegan_seeds']}); classifier {st['epochs']} epochs; "
        f"WDGRL {st['adapt_steps']} steps (DANN x{adapt.CLF_STEPS['wdgrl']}), PixelDA {st['pixelda_steps']}, "
        f"CycleGAN {st['translate_steps']}"
    )
    for name, s in shifts.items():
        sm = s["summary"]
        extra = [f"{k} {sm[k]['mean']:.3f}" for k in sm if k.endswith("_on_source") or k.startswith("oracle_on")]
        lines.append(f"{name}: " + ", ".join(extra))
    lines.append("wall per seed (s): " + "; ".join(walls))
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = dict(sorted(result["shifts"].items(), key=lambda kv: SHIFTS.index(kv[0])))
    arms = [k for k in ARMS if any(k in s["summary"] for s in shifts.values())]  # the arms this result ran
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(arms)
    for j, k in enumerate(arms):
        xs = [i for i, s in enumerate(shifts.values()) if k in s["summary"]]
        m = [s["summary"][k]["mean"] for s in shifts.values() if k in s["summary"]]
        e = [s["summary"][k]["std"] for s in shifts.values() if k in s["summary"]]
        ax.bar([x + (j - len(arms) / 2 + 0.5) * width for x in xs], m, width, yerr=e, label=LABELS[k])
    ax.set_xticks(range(len(shifts)), list(shifts))
    ax.set_ylabel("target test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    return study_main(argv, __doc__, _options, run, table, plot)


if __name__ == "__main__":
    sys.exit(main())
