"""`fastwgan evaluate`: the metrics that apply to a run's data, next to the same metric on real data.

    toy:8gaussians / toy:25gaussians  modes covered, high-quality fraction (within 3 std of a mode), SWD
    toy:swissroll                     SWD
    digits / digits-train             classifier FID and KID (generated vs the 500 held-out digits) next to
                                      real-vs-real (500 digits-train vs the same held-out), SWD likewise
    stacked-digits                    modes covered of 1000 and KL(mode histogram || uniform), next to real
                                      held-out stacked digits at the same N; SWD
    any other images                  SWD vs the training data; FID / KID with --inception or a user extractor

Every data set with held-out real data also gets the critic's held-out W-estimate (`w_estimate_heldout`).
`evaluate_trainer` is what `fastwgan train --eval-every K` calls on the live trainer.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from . import metrics

__all__ = ["evaluate_trainer", "evaluate_run", "format_table", "DEFAULT_N"]

DEFAULT_N = {"toy": 10_000, "digits": 500, "stacked": 10_000, "images": 5_000}


def data_kind(source: str) -> str:
    """What a ``--data`` source is for evaluation: "toy", "stacked" (stacked digits) or "images"."""
    if source.startswith("toy:"):
        return "toy"
    if source in ("digits", "digits-train", "digits-heldout"):
        return "digits"
    if source == "stacked-digits":
        return "stacked"
    return "images"


def evaluate_trainer(
    trainer, source: str, *, n: int | None = None, seed: int = 0, cache_dir=None, extractor=None, train_data=None
) -> dict:
    """Evaluate a trainer's samples against the real data of ``source``.

    Args:
        trainer: a fastwgan trainer (its ``sample`` and ``critic_score`` are used; sampling uses the EMA
            generator when the trainer has one).
        source: the run's data source ("toy:25gaussians", "digits-train", "stacked-digits", a path, ...).
        n: generated samples (default per kind: DEFAULT_N; digits: 500, the held-out size).
        seed: sample-noise seed (a fixed seed makes evaluations at different steps comparable).
        cache_dir: where the digit classifier's weights are cached (a run's ``eval/``).
        extractor: an optional fastwgan.eval.features.FeatureExtractor (e.g. ``features.inception(path)``) for FID/KID.
        train_data: the training images for "images" sources (default: loaded from ``source``).
    Returns:
        a flat dict of floats / ints; keys ending in ``_real`` are the same metric between two real sets.
    """
    from .. import data

    kind = data_kind(source)
    n = n or DEFAULT_N[kind]
    out: dict = {"n": n}
    if kind == "toy":
        name = source[4:]
        fake = trainer.sample(n, seed=seed)
        real = data.toy(name, n, seed=seed + 1)  # a fresh draw the critic never saw
        if name != "swissroll":
            cov = metrics.toy_mode_coverage(fake, name)
            out.update(modes=cov["modes"], modes_covered=cov["modes_covered"], high_quality=cov["high_quality"])
            out["high_quality_real"] = metrics.toy_mode_coverage(real, name)["high_quality"]
        out["swd"] = metrics.sliced_wasserstein(fake, real, seed=seed)
        out["swd_real"] = metrics.sliced_wasserstein(data.toy(name, n, seed=seed + 2), real, seed=seed)
        out["w_estimate_heldout"] = metrics.w_estimate(trainer, real, seed=seed)
    elif kind == "digits":
        from .classifier import digit_classifier, features

        model, info = digit_classifier(cache_dir)
        held, y_held = data.digits_split("heldout")
        train, _ = data.digits_split("train")
        g = torch.Generator().manual_seed(seed)
        real_a = train[torch.randperm(len(train), generator=g)[: len(held)]]
        fake = trainer.sample(n, seed=seed)
        f_fake, f_held, f_real = (features(model, x) for x in (fake, held, real_a))
        out["fid_classifier"] = metrics.fid(f_fake, f_held)
        out["fid_classifier_real"] = metrics.fid(f_real, f_held)
        out["kid_classifier"] = metrics.kid(f_fake, f_held, n_subsets=50, subset_size=min(n, len(held)))["kid"]
        out["kid_classifier_real"] = metrics.kid(f_real, f_held, n_subsets=50)["kid"]
        out["swd"] = metrics.sliced_wasserstein(fake, held, seed=seed)
        out["swd_real"] = metrics.sliced_wasserstein(real_a, held, seed=seed)
        out["classifier_heldout_accuracy"] = info["heldout_accuracy"]
        out["w_estimate_heldout"] = metrics.w_estimate(
            trainer, held, seed=seed, labels=y_held if trainer.config.conditional else None
        )
        if source != "digits-train":  # a "digits" run trained on the held-out digits too: FID/W are not held out
            out["heldout_seen_in_training"] = True
        if trainer.config.num_classes == 10:  # class-conditional digits: the label-aware metrics
            out.update(conditional_digits(trainer, model, info, seed=seed))
    elif kind == "stacked":
        from .classifier import digit_classifier, predict_stacked

        model, info = digit_classifier(cache_dir)
        fake = trainer.sample(n, seed=seed)
        real, _ = data.stacked_digits(n, seed=seed + 1, part="heldout")
        cov = metrics.mode_coverage(predict_stacked(model, fake), 1000)
        cov_real = metrics.mode_coverage(predict_stacked(model, real), 1000)
        out.update(
            modes=1000,
            modes_covered=cov["modes_covered"],
            kl_uniform=cov["kl_uniform"],
            modes_covered_real=cov_real["modes_covered"],
            kl_uniform_real=cov_real["kl_uniform"],
        )
        out["swd"] = metrics.sliced_wasserstein(fake, real, seed=seed)
        out["swd_real"] = metrics.sliced_wasserstein(
            data.stacked_digits(n, seed=seed + 2, part="heldout")[0], real, seed=seed
        )
        out["w_estimate_heldout"] = metrics.w_estimate(trainer, real[:2000], seed=seed)
    else:
        real = train_data if train_data is not None else data.load(source)
        fake = trainer.sample(min(n, len(real)) if extractor is None else n, seed=seed)
        out["swd_vs_train"] = metrics.sliced_wasserstein(fake, real, seed=seed)
    if extractor is not None and kind != "toy":
        ref = (
            data.digits_split("heldout")[0]
            if kind == "digits"
            else data.stacked_digits(n, seed=seed + 1, part="heldout")[0]
            if kind == "stacked"
            else real
        )
        f_fake, f_ref = extractor(fake), extractor(ref)
        out[f"fid_{extractor.name}"] = metrics.fid(f_fake, f_ref)
        out[f"kid_{extractor.name}"] = metrics.kid(f_fake, f_ref, subset_size=min(1000, len(ref), len(fake)))["kid"]
    return out


def conditional_digits(trainer, model, info: dict, *, seed: int = 0, per_class: int = 100) -> dict:
    """Label-aware metrics of a class-conditional digits generator (labels = digit values), each next to real data:

    * conditional accuracy: the held-out digit classifier's agreement with the requested label on ``per_class``
      samples of each class (real: the classifier's accuracy on the 500 held-out digits);
    * CAS, Classification Accuracy Score (Ravuri & Vinyals 2019): the same classifier recipe trained only on 1297
      generated labelled digits (as many as digits-train, balanced), tested on the 500 held-out real digits (real:
      trained on digits-train);
    * per-class classifier FID: generated class k vs the held-out digits of class k, the mean over classes and
      the list (real: ``per_class`` training digits of class k vs the same held-out ones).
    """
    from .. import data
    from .classifier import EPOCHS, SEED, accuracy, features, predict, train_classifier

    k = trainer.config.num_classes
    held, yh = data.digits_split("heldout")
    train, yt = data.digits_split("train")
    y = torch.arange(per_class * k) % k
    fake = trainer.sample(len(y), seed=seed, labels=y)
    out = {
        "conditional_accuracy": float((predict(model, fake) == y).float().mean()),
        "conditional_accuracy_real": info["heldout_accuracy"],
    }
    y_cas = torch.arange(len(train)) % k
    cas_model = train_classifier(
        trainer.sample(len(y_cas), seed=seed + 1, labels=y_cas), y_cas, epochs=EPOCHS, seed=SEED
    )
    out["cas"], out["cas_real"] = accuracy(cas_model, held, yh), info["heldout_accuracy"]
    f_held = [features(model, held[yh == c]) for c in range(k)]
    per = [metrics.fid(features(model, fake[y == c]), f_held[c]) for c in range(k)]
    per_real = [metrics.fid(features(model, train[yt == c][:per_class]), f_held[c]) for c in range(k)]
    out["fid_classifier_per_class"] = sum(per) / k
    out["fid_classifier_per_class_real"] = sum(per_real) / k
    out["fid_classifier_by_class"] = per
    return out


def evaluate_run(
    run,
    *,
    n: int | None = None,
    seed: int = 0,
    extractor=None,
    write: bool = True,
    checkpoint=None,
    source: str | None = None,
) -> dict:
    """Evaluate a run folder's latest checkpoint (or ``checkpoint``, a step_N.json of the run); writes
    ``RUN/metrics.json`` (``RUN/eval/metrics_step_NNNNNN.json`` for a given checkpoint) and caches the digit
    classifier in ``RUN/eval/``, unless ``write=False``.

    Args:
        source: the data whose metrics apply, as ``fastwgan train --data`` names it (default: the run's own data).
            E.g. "digits-train" for a run trained on digits from a file; a path compares with those images.
    Returns:
        {"run", "step", "source", "metrics": evaluate_trainer's dict}.
    """
    from .. import data
    from ..gan.restore import load_trainer

    run = Path(run)
    trainer, rc = load_trainer(checkpoint or run)
    spec = rc.get("data", {})
    source = source or spec.get("source", "digits")
    train_data = None
    if data_kind(source) == "images":
        train_data = data.load(source, image_size=spec.get("image_size"), channels=spec.get("channels"))
    shape = spec.get("shape")
    ref = train_data if train_data is not None else data.load(source) if data_kind(source) != "stacked" else None
    if shape is not None and ref is not None and tuple(ref.shape[1:]) != tuple(shape[1:]):
        raise ValueError(
            f"evaluate: {source} holds samples of shape {tuple(ref.shape[1:])} but the run makes {tuple(shape[1:])}"
        )
    m = evaluate_trainer(
        trainer, source, n=n, seed=seed, cache_dir=run / "eval", extractor=extractor, train_data=train_data
    )
    result = {"run": str(run), "step": trainer.step, "source": source, "seed": seed, "metrics": m}
    if write:
        from ..core.checkpoint import atomic_write_json

        path = run / "metrics.json" if checkpoint is None else run / "eval" / f"metrics_step_{trainer.step:06d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result)
        result["written"] = str(path)
    return result


_LABELS = {
    "modes_covered": "modes covered",
    "high_quality": "high-quality fraction (3 std)",
    "swd": "sliced W2",
    "fid_classifier": "classifier FID",
    "kid_classifier": "classifier KID",
    "kl_uniform": "KL(modes || uniform)",
    "w_estimate_heldout": "critic W-estimate, held out",
    "swd_vs_train": "sliced W2 vs train (pixels)",
    "classifier_heldout_accuracy": "classifier accuracy, held out",
    "n": "samples",
    "conditional_accuracy": "conditional accuracy",
    "cas": "CAS (train on generated)",
    "fid_classifier_per_class": "classifier FID per class (mean)",
}


#: Metrics measured on real images only: the table shows them in the "real" column.
_OF_REAL_DATA = ("classifier_heldout_accuracy",)


def format_table(result: dict) -> str:
    """A short table: metric | generated (the samples' value) | real (the same metric between two real sets, or a
    property of the real images such as the evaluation classifier's held-out accuracy)."""
    m = result["metrics"]

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, int):
            return str(v)
        return f"{v:.4g}" if math.isfinite(v) else str(v)

    rows = []
    for k, v in m.items():
        if k.endswith("_real") or k in ("modes", "heldout_seen_in_training") or isinstance(v, list):
            continue
        label = _LABELS.get(k, k)
        if k == "modes_covered":
            v = f"{v} / {m['modes']}"
        if k in _OF_REAL_DATA:  # a property of real images (the evaluation classifier's accuracy), not of samples
            rows.append((label, "", fmt(v)))
            continue
        rows.append((label, v if isinstance(v, str) else fmt(v), fmt(m.get(k + "_real")) if k + "_real" in m else ""))
    w = max(len(r[0]) for r in rows)
    head = f"{result['run']} @ step {result['step']} ({result['source']})"
    lines = [head, f"{'metric':<{w}}  {'generated':>12}  {'real':>12}"]
    lines += [f"{a:<{w}}  {b:>12}  {c:>12}" for a, b, c in rows]
    if m.get("heldout_seen_in_training"):
        lines.append(
            f"Note: this run trained on {result['source']!r}, which includes the 500 held-out digits, so "
            "the held-out figures above compare with digits it saw in training. Train on 'digits-train' "
            "(the default) for a truly held-out comparison."
        )
    return "\n".join(lines)


def eval_callback(
    source: str, every: int, steps: int | None = None, cache_dir=None, n: int | None = None, train_data=None
):
    """For ``fit(..., evaluators=(...,))``: returns ``f(trainer) -> dict`` that evaluates at every multiple of
    ``every`` steps and at step ``steps`` (the last), and returns {} on other log ticks. Keys get an ``eval_``
    prefix in stats.jsonl. Each evaluation uses the same noise seed, so values are comparable across steps."""
    if every < 1:
        raise ValueError(f"--eval-every must be >= 1, got {every}")

    def evaluator(trainer) -> dict:
        if trainer.step % every and trainer.step != steps:
            return {}
        m = evaluate_trainer(trainer, source, n=n, cache_dir=cache_dir, train_data=train_data)
        return {
            f"eval_{k}": v
            for k, v in m.items()
            if k not in ("n", "modes", "heldout_seen_in_training") and not isinstance(v, list)
        }

    return evaluator
