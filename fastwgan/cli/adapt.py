"""``fastwgan adapt``: train a classifier on labelled source images that works on unlabelled target images, by
feature alignment (``--method wdgrl | dann``, ``fastwgan.uses.adapt``, after source-only training of the same
extractor and classifier, or from an earlier run's classifier: ``--init``), DIRT-T's refinement on the target
(``--method dirtt``, typically ``--init`` a wdgrl run) or at the pixel level (``--method pixelda``,
``fastwgan.uses.pixelda``)."""

from __future__ import annotations

import json
import sys

import torch

from ..core.config import TrainConfig
from ..core.run import read_config, resume_folder
from .domains import GAN_ONLY, LR_HELP, common_training, load_domain
from .folders import stopped, training_folder
from .options import add_command, add_config_options, config_from_args, fit_options, positive

#: The help of ``adapt`` and of its options.
ADAPT_HELP = {
    "help": "domain adaptation of a classifier (WDGRL, DANN, DIRT-T, PixelDA)",
    "description": "Train a classifier on labelled --source images that works on unlabelled --target images. "
    "--method wdgrl (a Wasserstein critic on the features) or dann (a domain classifier, gradient reversal) "
    "first trains the extractor + classifier on the source labels (--source-epochs), then aligns the features "
    "(fastwgan.uses.adapt); --method dirtt refines a classifier on the target alone (DIRT-T: the target's "
    "conditional entropy, VAT and the KL from a teacher), best from an earlier run's (--init); --method pixelda "
    "trains a generator G(x_s, z) against a Wasserstein critic on target "
    "images and the classifier jointly on source and adapted images (fastwgan.uses.pixelda). Writes a run folder "
    "with the adapted classifier (classifier.safetensors) and, with --eval-data, its target accuracy and the "
    "source-only classifier's (metrics.json).",
    "--method": "wdgrl (default), dann, dirtt or pixelda",
    "--init": "wdgrl / dann / dirtt: start the extractor + classifier from an earlier fastwgan adapt run's "
    "classifier.safetensors (the run folder or the file) instead of training them on the source first "
    "(e.g. --method dirtt --init <a wdgrl run>: WDGRL, then DIRT-T's refinement; a pixelda run gives its T)",
    "--channels": "convert both domains' channels",
    "--weight": "lambda: the domain term's weight (default: the method's, fastwgan.uses.adapt.WEIGHTS)",
    "--clf-steps": "wdgrl / dann: extractor + classifier updates per critic round (default: the method's)",
    "--entropy-weight": "wdgrl / dann: VADA's weight on the target predictions' entropy (default 0: off)",
    "--shift": "wdgrl / dann: random 1-pixel shifts of both domains' batches, the source-only classifier's "
    "augmentation (default off, as in the paper: fastwgan.uses.adapt.SHIFT)",
    "--photometric": "a random polarity, gain and offset per source image and channel, in the source-only "
    "training (pixelda: T's warm start) and in the adaptation (for a target whose colours or polarity the source never "
    "shows, e.g. gray digits -> digits-m; it costs accuracy between gray digit sets; default off)",
    "--class-critic": "pixelda: a class-aware critic, D(x, softmax(T(x))) with the task classifier T frozen inside it "
    "and its gradient penalty (fastwgan.uses.pixelda's class_critic; measured in docs/domain-adaptation.md)",
    "--source-epochs": "wdgrl / dann: epochs of source-only training before the alignment (default 20; 0: from "
    "scratch, which the alignment can wreck)",
    "--eval-data": "labelled target-domain images for evaluation only (e.g. digits-m-heldout): the adapted "
    "classifier's accuracy on them goes to metrics.json; the target's own labels are never read",
}


#: What the run folder's kind is, per method (resume checks it).
KINDS = {"wdgrl": "adaptation", "dann": "adaptation", "dirtt": "adaptation", "pixelda": "pixelda"}
#: The settings of adaptation runs written before issue 24 (then the only method and its defaults); runs written
#: before the ``shift`` / ``photometric`` options trained without them.
OLD_RUN = {
    "method": "wdgrl",
    "weight": 1.0,
    "clf_steps": 1,
    "entropy_weight": 0.0,
    "shift": False,
    "photometric": False,
    "class_critic": False,
}


def add_parser(sub) -> None:
    h = ADAPT_HELP
    ad = add_command(sub, "adapt", h["help"], h["description"])
    common_training(ad, 1000)
    ad.add_argument("--method", choices=tuple(KINDS), default="wdgrl", help=h["--method"])
    ad.add_argument("--channels", type=int, choices=(1, 3), default=None, help=h["--channels"])
    ad.add_argument("--weight", type=float, default=None, help=h["--weight"])
    ad.add_argument("--clf-steps", type=positive, default=None, help=h["--clf-steps"])
    ad.add_argument("--entropy-weight", type=float, default=0.0, help=h["--entropy-weight"])
    ad.add_argument("--shift", action="store_true", help=h["--shift"])
    ad.add_argument("--photometric", action="store_true", help=h["--photometric"])
    ad.add_argument("--class-critic", action="store_true", help=h["--class-critic"])
    ad.add_argument("--source-epochs", type=int, default=20, help=h["--source-epochs"])
    ad.add_argument("--init", default=None, metavar="RUN", help=h["--init"])
    ad.add_argument("--eval-data", default=None, metavar="SOURCE", help=h["--eval-data"])
    add_config_options(ad, skip=GAN_ONLY, rename=dict(zip(("lr_d", "lr_g"), LR_HELP["adapt"])))


def _config(args, method: str) -> TrainConfig:
    """--preset (with the command line's options over it), else the method's published settings."""
    from ..uses import adapt
    from .options import given_config_options

    if args.preset is not None or method == "pixelda":
        return config_from_args(args, args.preset or "wgan-gp")
    return adapt.default_config(method, **given_config_options(args))


def _networks(method: str, xs, k: int, cfg: TrainConfig, args, ys, class_critic: bool = False):
    """The bundled networks, seeded; the feature methods' extractor + classifier trained on the source first."""
    from ..eval import classifier
    from ..uses import adapt, pixelda

    torch.manual_seed(cfg.seed)
    c, size = xs.shape[1], xs.shape[2]
    if method == "pixelda":
        return pixelda.digit_networks(c, c, num_classes=k, image_size=size, class_critic=class_critic)
    extractor, head, critic = adapt.digit_networks(c, num_classes=k, image_size=size)
    critic = None if method == "dirtt" else critic  # DIRT-T trains no critic
    if args is not None and args.init:
        _load_classifier(args.init, torch.nn.ModuleDict({"extractor": extractor, "classifier": head}))
    elif args is not None and args.source_epochs > 0:
        model = torch.nn.Sequential(extractor, head)
        classifier.train_classifier(
            xs, ys, epochs=args.source_epochs, seed=cfg.seed, photometric=args.photometric, model=model
        )
        model.train()
    return extractor, head, critic


def _load_classifier(path: str, model: torch.nn.Module) -> None:
    """--init: an adapt run's classifier.safetensors (the run folder or the file) into ``model``, or one line. A
    pixelda run's holds G beside T: T's body and head are the extractor and classifier (``DigitClassifier``)."""
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    p = p / "classifier.safetensors" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"--init: {p} does not exist (give a fastwgan adapt run folder or its classifier)")
    try:
        weights = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"--init: {p} is not a readable safetensors file ({e})") from None
    if any(k.startswith("generator.") for k in weights):  # a pixelda run: T (body + head) beside G
        prefix = {"classifier.body.": "extractor.", "classifier.head.": "classifier."}
        weights = {prefix[p] + k[len(p) :]: v for k, v in weights.items() for p in prefix if k.startswith(p)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise ValueError(f"--init: {p} does not fit these networks (other data or sizes?): {first}") from None


def _trainer(method: str, nets, cfg: TrainConfig, settings: dict, args):
    from ..uses import adapt, pixelda

    fast = args.trainer == "fast"
    kw = {"compile": not args.no_compile, "threads": args.threads} if fast else {}
    if method == "pixelda":
        cls = pixelda.PixelDATrainer if fast else pixelda.ReferencePixelDATrainer
        return cls(*nets, cfg, photometric=settings["photometric"], class_critic=settings["class_critic"], **kw)
    cls = adapt.AdaptTrainer if fast else adapt.ReferenceAdaptTrainer
    return cls(
        *nets,
        cfg,
        settings["weight"],
        method=method,
        clf_steps=settings["clf_steps"],
        entropy_weight=settings["entropy_weight"],
        shift=settings["shift"],
        photometric=settings["photometric"],
        **kw,
    )


def cmd_adapt(args) -> int:
    from ..core import checkpoint
    from ..core.checkpoint import atomic_save_tensors, atomic_write_json

    kind = KINDS[args.method]
    if args.resume:  # the run's own kind: an adaptation run (wdgrl / dann) or a pixelda run
        try:
            kind = read_config(resume_folder(args.resume)).get("kind", kind)
        except (OSError, ValueError):
            pass  # training_folder says what is wrong with the folder
        kind = kind if kind in ("adaptation", "pixelda") else "adaptation"
    out, rc, _ = training_folder(args, kind, args.default_steps)
    if args.resume:
        d = rc["data"]
        cfg = TrainConfig.from_dict(rc["config"])
        old = {**OLD_RUN, "method": "pixelda" if rc["kind"] == "pixelda" else "wdgrl"}
        settings = {k: rc.get(k, v) for k, v in old.items()}
        method, args.eval_data = settings["method"], d.get("eval")
        size = {"image_size": d["image_size"], "channels": d["channels"], "resize": d.get("resize", "bilinear")}
        source, target = d["source"], d["target"]
    else:
        method = args.method
        if method == "pixelda" and (
            args.weight is not None or args.clf_steps is not None or args.entropy_weight or args.shift or args.init
        ):
            raise ValueError(
                "--weight, --clf-steps, --entropy-weight, --shift and --init are for --method wdgrl / dann / dirtt"
            )
        if args.class_critic and method != "pixelda":
            raise ValueError("--class-critic is for --method pixelda (the critic of G's adaptations)")
        cfg = _config(args, method)
        settings = {
            "method": method,
            "weight": args.weight,
            "clf_steps": args.clf_steps,
            "entropy_weight": args.entropy_weight,
            "shift": args.shift,
            "photometric": args.photometric,
            "class_critic": args.class_critic,
        }
        size = {"image_size": args.image_size, "channels": args.channels, "resize": args.resize}
        source, target = args.source, args.target
    xs, ys = load_domain(source, "source", labels=True, **size)
    xt = load_domain(target, "target", **size)
    if xs.dim() != 4 or xs.shape[1:] != xt.shape[1:]:
        raise ValueError(
            f"--source and --target: one image shape is needed, got {tuple(xs.shape[1:])} and "
            f"{tuple(xt.shape[1:])} (give --image-size / --channels)"
        )
    if xs.shape[2] != xs.shape[3] or xs.shape[2] % 2:
        raise ValueError(
            f"--source: the bundled networks take square images of an even size, got "
            f"{xs.shape[2]}x{xs.shape[3]} (give --image-size)"
        )
    evaluate = None
    if args.eval_data:  # the target accuracy at every log tick: stats.jsonl and the plot's third panel
        xe, ye = load_domain(args.eval_data, "eval-data", labels=True, **size)
        evaluate = lambda tr: {"target_accuracy": tr.accuracy(xe, ye)}  # noqa: E731
    k = int(ys.max()) + 1
    nets = _networks(method, xs, k, cfg, None if args.resume else args, ys, settings["class_critic"])
    trainer = _trainer(method, nets, cfg, settings, args)
    metrics = {}
    if args.resume:
        trainer.load_state_dict(checkpoint.load(out))
    elif evaluate is not None and method != "pixelda":
        start = "init_target_accuracy" if args.init else "source_only_target_accuracy"  # where it starts from
        metrics[start] = evaluate(trainer)["target_accuracy"]
    run_config = {
        "data": {"source": source, "target": target, **size, "eval": args.eval_data, "shape": list(xs.shape[1:])},
        "steps": args.steps,
        **({} if args.resume or method == "pixelda" else {"source_epochs": args.source_epochs, "init": args.init}),
    }
    print(
        f"fastwgan adapt: {method}, {trainer.name} trainer, {len(xs)} labelled source images ({k} classes) -> "
        f"{len(xt)} target images {tuple(xt.shape[1:])}, {args.steps} steps in total -> {out}",
        file=sys.stderr,
    )
    evaluators = () if evaluate is None else (evaluate,)
    trainer.fit(xs, xt, args.steps, labels=ys, **fit_options(args, out), run_config=run_config, evaluators=evaluators)
    code = stopped(trainer, out, "adapt")
    if code:
        return code
    atomic_save_tensors(
        {k: v.contiguous() for k, v in trainer.model.state_dict().items()},
        out / "classifier.safetensors",
        metadata={"kind": "fastwgan-adapted-classifier", "method": method, "step": str(trainer.step)},
    )
    metrics = {"step": trainer.step, "method": method, **metrics, "source_train_accuracy": trainer.accuracy(xs, ys)}
    if evaluate is not None:
        metrics.update(evaluate(trainer), eval_data=args.eval_data)
    atomic_write_json(out / "metrics.json", metrics)
    print(json.dumps({"run": str(out), **metrics}))
    return 0
