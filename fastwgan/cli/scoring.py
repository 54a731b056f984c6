"""Anomaly detection with a trained run: ``fastwgan score`` (f-AnoGAN, critic or knn scores as CSV, and their AUROC
against a ground truth) and ``fastwgan encode`` (training f-AnoGAN's encoder into RUN/encoder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..data import DataError, class_list
from ..gan.restore import load_trainer, run_root
from .folders import continued, refuse_resume_with_overwrite, run_arg, stopped
from .options import add_command, add_progress_options, add_run_arguments, add_trainer_options, positive
from .train_data import training_data

#: The help of ``score`` and of its options.
SCORE_HELP = {
    "help": "anomaly scores for images (higher = more anomalous), as CSV",
    "description": "Score each input for anomaly, higher = more anomalous, by --method: fanogan (f-AnoGAN: G(E(x)) "
    "residuals; needs `fastwgan encode RUN` first), critic (minus the critic's output), knn (distance to the "
    "nearest training images) or critic-knn (that distance in the critic's feature space, plus the pixel one, each "
    "in its training unit). Writes "
    "index,name,score rows (fanogan adds image,feature: the two residuals).",
    "usage": "fastwgan score [-h] RUN INPUT [--method fanogan|critic|knn|critic-knn] [--k N] [--features-layer NAME] "
    "[--class K] "
    "[--anomalous-class K[,K...] | --labels FILE] [--maps PNG] [--out CSV] [--batch-size N]",
    "input": "what to score: any --data of `fastwgan train` (a built-in name such as digits-heldout or "
    "toy:8gaussians, an image folder, a .npz / .npy array, ...)",
    "--out": "CSV file (default: print to stdout)",
    "--class": "class-conditional runs: score every input as class K (default: the input's own labels)",
    "--method": "fanogan, critic (default), knn or critic-knn; every method: higher = more anomalous",
    "--k": "knn, critic-knn: neighbours averaged (default 1 for knn, 5 for critic-knn)",
    "--features-layer": "critic-knn: the critic's submodule whose output is the feature space (default: every hidden "
    "activation of the bundled critics)",
    "--anomalous-class": "INPUT's classes that count as anomalies (INPUT must carry labels, e.g. digits-heldout): "
    "adds an `anomalous` column and prints the AUROC (leave-one-class-out: the class the run never saw)",
    "--labels": "ground truth, 1 = anomalous, one per input (.npy, or text with one 0/1 per line): adds an "
    "`anomalous` column and prints the AUROC",
    "--maps": "fanogan: also write a picture of inputs, reconstructions G(E(x)) and |x - G(E(x))| (the first 32 "
    "inputs)",
    "--batch-size": "batch size",
}
#: The help of ``encode`` and of its options.
ENCODE_HELP = {
    "help": "train f-AnoGAN's encoder on a run (for score --method fanogan)",
    "description": "Train the izi_f encoder E of f-AnoGAN (Schlegl et al. 2019) on a trained run: G and the critic "
    "frozen, the run's own training data (normal data only), loss mse(x, G(E(x))) + kappa mse(f(x), f(G(E(x)))). "
    "Written to RUN/encoder.",
    "--steps": "encoder updates in total (default 2000; with --resume the encoder's own target)",
    "--resume": "continue RUN/encoder to its own target (or --steps)",
    "--overwrite": "replace RUN/encoder with a new encoder",
    "--kappa": "weight of the feature residual (default 1, the paper)",
    "--lr": "Adam learning rate (default 1e-4)",
    "--batch-size": "batch size (default 64)",
    "--seed": "encoder initialisation and batch draws (default 0)",
}


def anomaly_methods() -> tuple[str, ...]:
    from ..uses.anomaly import METHODS

    return METHODS


def add_parsers(sub) -> None:
    """The ``score`` and ``encode`` sub-commands."""
    h = SCORE_HELP
    c = add_command(sub, "score", h["help"], h["description"], usage=h["usage"])
    add_run_arguments(c, "whose critic scores")
    c.add_argument("input", nargs="?", metavar="INPUT", help=h["input"])
    c.add_argument("--out", default=None, help=h["--out"])
    c.add_argument("--class", dest="cls", type=int, default=None, metavar="K", help=h["--class"])
    c.add_argument("--method", choices=anomaly_methods(), default="critic", help=h["--method"])
    c.add_argument("--k", type=positive, default=None, help=h["--k"])
    c.add_argument("--features-layer", default=None, metavar="NAME", help=h["--features-layer"])
    c.add_argument("--anomalous-class", default=None, metavar="K[,K...]", help=h["--anomalous-class"])
    c.add_argument("--labels", dest="truth", default=None, metavar="FILE", help=h["--labels"])
    c.add_argument("--maps", default=None, metavar="PNG", help=h["--maps"])
    c.add_argument("--batch-size", type=int, default=1024, help=h["--batch-size"])

    h = ENCODE_HELP
    n = add_command(sub, "encode", h["help"], h["description"])
    add_run_arguments(n, "whose GAN the encoder inverts")
    n.add_argument("--steps", type=positive, default=None, help=h["--steps"])
    n.add_argument("--resume", action="store_true", help=h["--resume"])
    n.add_argument("--overwrite", action="store_true", help=h["--overwrite"])
    n.add_argument("--kappa", type=float, default=None, help=h["--kappa"])
    n.add_argument("--lr", type=float, default=None, help=h["--lr"])
    n.add_argument("--batch-size", type=positive, default=None, help=h["--batch-size"])
    n.add_argument("--seed", type=int, default=None, help=h["--seed"])
    add_trainer_options(n, "flat buffer, fused Adam, compiled", "the eager twin")
    add_progress_options(n, log_every=50)


def cmd_score(args) -> int:
    from ..uses import anomaly
    from .inference import load_inputs, write_scores, write_scores_csv

    run = run_arg(args)
    if args.input is None:
        raise ValueError("give INPUT, what to score (e.g. `fastwgan score RUN digits-heldout`)")
    if args.maps and args.method != "fanogan":
        raise ValueError("--maps draws f-AnoGAN's reconstructions: use it with --method fanogan")
    trainer, rc = load_trainer(run)
    conditional = trainer.config.conditional
    if args.cls is not None and not conditional:
        raise ValueError(f"--class: {run} is not a class-conditional run")
    encoder = None
    if args.method == "fanogan":
        if conditional:
            raise ValueError(f"--method fanogan: {run} is class-conditional; f-AnoGAN encodes unconditional runs")
        encoder = anomaly.load_encoder(run_root(run), trainer)  # before reading the input: a missing one is named
    own_labels = conditional and args.cls is None and args.method == "critic"  # D(x, y): the input's labels
    if args.anomalous_class is not None and args.truth is not None:
        raise ValueError("--anomalous-class and --labels both give the ground truth: give one of them")
    anomalous = class_list(args.anomalous_class, "--anomalous-class") if args.anomalous_class is not None else None
    try:  # the input's labels travel with it into the CSV whenever it has them
        x, names, in_labels = load_inputs(args.input, rc.get("data"), labels=True)
    except DataError as e:  # a source without (valid) labels
        if own_labels:
            raise ValueError(
                f"{run} is class-conditional: score against --class K, or give INPUT with labels ({e})"
            ) from None
        if anomalous is not None:
            raise ValueError(
                f"--anomalous-class: {args.input} carries no class labels ({e}); give --labels FILE instead"
            ) from None
        x, names, in_labels = load_inputs(args.input, rc.get("data"))
    if anomalous is not None and in_labels is None:
        raise ValueError(f"--anomalous-class: {args.input} carries no class labels; give --labels FILE instead")
    truth = None
    if anomalous is not None:
        truth = torch.isin(in_labels, torch.tensor(anomalous))
    elif args.truth is not None:
        truth = _read_truth(args.truth, len(x))
    labels = args.cls if args.cls is not None else (in_labels if own_labels else None)
    result = anomaly.score(
        args.method,
        x,
        trainer=trainer,
        encoder_trainer=encoder,
        labels=labels,
        k=args.k,
        train=training_data(rc) if args.method in ("knn", "critic-knn") else None,
        batch_size=args.batch_size,
        features_layer=args.features_layer,
    )
    scores, extra = result.pop("score"), result
    if in_labels is not None:
        extra = {"label": in_labels, **extra}
    if truth is not None:
        extra = {**extra, "anomalous": truth.long()}
    if args.maps:
        from ..core.images import save_grid, to_float

        shown = x[:32]
        rec = encoder.reconstruct(shown)
        real = to_float(shown)
        save_grid(torch.cat([real, rec, (real - rec).abs() - 1]), args.maps, nrow=len(shown), scale=None)
        print(f"fastwgan: wrote inputs, G(E(x)) and |x - G(E(x))| (rows) to {args.maps}", file=sys.stderr)
    if args.out:
        write_scores_csv(args.out, names, scores, extra)
        print(f"fastwgan: wrote {len(names)} {args.method} scores to {args.out}", file=sys.stderr)
    else:
        write_scores(sys.stdout, names, scores, extra)
    if truth is not None:
        from ..eval.metrics import auroc

        n_bad = int(truth.sum())
        if n_bad in (0, len(truth)):
            raise ValueError(f"AUROC needs both normal and anomalous inputs; {n_bad} of {len(truth)} are anomalous")
        what = f"class {args.anomalous_class}" if anomalous is not None else f"--labels {args.truth}"
        print(
            f"fastwgan score: AUROC {auroc(scores[truth], scores[~truth]):.4f} ({args.method}; {n_bad} anomalous "
            f"inputs ({what}) of {len(truth)})",
            file=sys.stderr,
        )
    return 0


def _read_truth(path, n: int) -> torch.Tensor:
    """--labels FILE: one 0/1 per input (1 = anomalous), from a .npy or a text file."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--labels: no such file: {p}")
    try:
        a = np.load(p, allow_pickle=False) if p.suffix == ".npy" else np.loadtxt(p, ndmin=1)
    except (OSError, ValueError) as e:
        raise ValueError(f"--labels: {p} is not a .npy array or a text file of 0/1 values ({e})") from None
    a = np.asarray(a).reshape(-1)
    if len(a) != n:
        raise ValueError(f"--labels: {p} holds {len(a)} values but INPUT has {n} inputs")
    bad = np.flatnonzero(~np.isin(a, (0, 1)))
    if len(bad):
        raise ValueError(f"--labels: {p} value {a[bad[0]]!r} at row {bad[0]} is not 0 or 1 (1 = anomalous)")
    return torch.from_numpy(a.astype(bool))


def cmd_encode(args) -> int:
    from ..core import checkpoint
    from ..uses import anomaly

    refuse_resume_with_overwrite(args, "the encoder")
    run = run_root(run_arg(args))
    trainer, rc = load_trainer(run)
    if trainer.config.conditional:
        raise ValueError(f"{run} is class-conditional; f-AnoGAN's encoder inverts unconditional runs")
    out = run / anomaly.ENCODER_DIR
    exists = (out / "checkpoints").is_dir()
    if exists and not (args.resume or args.overwrite):
        raise ValueError(
            f"{out} holds an encoder already: --resume continues it to --steps, --overwrite trains a new one"
        )
    if args.resume and not exists:
        raise ValueError(f"--resume: {run} has no encoder yet (drop --resume)")
    given = {k: getattr(args, k) for k in ("kappa", "lr", "batch_size", "seed") if getattr(args, k) is not None}
    if args.resume and given:
        raise ValueError(
            "--resume continues the encoder with its own settings; drop "
            + ", ".join("--" + k.replace("_", "-") for k in given)
        )
    cfg = anomaly.EncoderConfig(**given)
    if args.resume:
        enc, at, args.steps = continued(out, "fanogan-encoder", args.steps, 2000)
        if enc.get("gan_step") != trainer.step:
            raise ValueError(
                f"--resume: the encoder inverts the GAN at step {enc.get('gan_step')}, the run is at step "
                f"{trainer.step}: train a new one with --overwrite"
            )
        cfg = anomaly.EncoderConfig(**{**enc["config"], "betas": tuple(enc["config"]["betas"])})
    args.steps = args.steps or 2000
    x = training_data(rc)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{run} streamed its data; encode reads the training images into memory (not streamed yet)")
    kind = anomaly.EncoderTrainer if args.trainer == "fast" else anomaly.ReferenceEncoderTrainer
    kw = {"compile": not args.no_compile} if args.trainer == "fast" else {}
    et = kind(
        trainer.sampling_generator(),
        trainer.critic,
        anomaly.encoder_for(rc["model"], seed=cfg.seed),
        cfg,
        device=trainer.device,
        **kw,
    )
    if args.resume:
        et.load_state_dict(checkpoint.load(out))
    print(
        f"fastwgan: training the f-AnoGAN encoder ({et.name}) of {run} (GAN step {trainer.step}) on "
        f"{len(x)} normal samples, {args.steps} steps -> {out}",
        file=sys.stderr,
    )
    et.fit(
        x,
        args.steps,
        out=out,
        overwrite=exists and not args.resume,  # the old encoder is set aside, deleted at the new one's checkpoint
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        run_config={
            "gan_step": trainer.step,
            "model": rc["model"],
            "data": rc["data"].get("source"),
            "steps": args.steps,
        },
    )
    code = stopped(et, out, "encode", resume=f"fastwgan encode {run} --resume")
    print(json.dumps({"encoder": str(out), **(et.history[-1] if et.history else {})}))
    return code
