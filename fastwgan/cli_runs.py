"""The commands that read a trained run: ``fastwgan sample``, ``evaluate``, ``score`` and ``encode`` (their options
are in ``fastwgan.cli.build_parser``; ``fastwgan.cli.main`` dispatches here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from .restore import load_trainer


def _run_arg(args) -> str:
    """The run a command reads: positional RUN or --checkpoint RUN (one of them)."""
    if args.run and args.checkpoint and args.run != args.checkpoint:
        raise ValueError(f"the run is given twice ({args.run} and --checkpoint {args.checkpoint}): give RUN once")
    run = args.run or args.checkpoint
    if run is None:
        raise ValueError(
            f"which run? give RUN, a run folder (e.g. `fastwgan {args.command} runs/digits-train-wgan-gp ...`)"
        )
    return run


def _sample_folder(out: Path, overwrite: bool) -> None:
    """A folder ``sample`` may write into: new or empty, or (``--overwrite``) holding only earlier samples (PNGs,
    class folders of PNGs), which are removed; old and new samples are never mixed."""
    import shutil

    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out: {out} is a file; give a folder, FILE.png or FILE.npz")
    files = [p for p in out.rglob("*") if p.is_file()]
    if not files:
        return
    if not overwrite:
        raise ValueError(
            f"--out: {out} already holds {len(files)} files; give a new or empty folder, or --overwrite "
            "to replace the samples there"
        )
    foreign = [p for p in files if p.suffix.lower() != ".png"]
    if foreign:
        raise ValueError(
            f"--out: {out} holds files that are not samples (e.g. {foreign[0]}); --overwrite only "
            "replaces a folder of samples"
        )
    shutil.rmtree(out)


def cmd_sample(args) -> int:
    from . import data, inference, plots

    run = _run_arg(args)
    out = Path(args.out)
    if out.suffix and out.suffix not in (".png", ".npz"):
        raise ValueError(f"--out: {out} must end in .png or .npz, or be a folder")
    if args.scale is not None and out.suffix != ".png":
        raise ValueError("--scale enlarges the images of a FILE.png grid; --out is not a .png")
    if args.cls is not None and args.per_class is not None:
        raise ValueError("--class K samples one class, --per-class N every class: give one of them")
    if not out.suffix:
        _sample_folder(out, args.overwrite)
    trainer, rc = load_trainer(run)
    k = trainer.config.num_classes
    if k is None and (args.cls is not None or args.per_class is not None):
        raise ValueError(f"--class / --per-class: {run} is not a class-conditional run")
    n, labels, nrow = args.n, args.cls, None
    if args.per_class is not None:
        n, nrow = args.per_class * k, args.per_class
        labels = torch.arange(k).repeat_interleave(args.per_class)
    if out.suffix == ".png":  # one picture: the samples fit in memory by nature
        x = trainer.sample(n, seed=args.seed, batch_size=args.batch_size, labels=labels)
        if x.dim() == 2:
            plots.scatter(x, out, title=f"{n} samples")
        else:
            data.save_grid(x, out, nrow=nrow, scale=args.scale)  # None: small images enlarged like the run's grids
    else:  # a folder or .npz: streamed batch by batch
        inference.write_samples(
            trainer,
            n,
            out,
            seed=args.seed,
            batch_size=args.batch_size,
            progress=False if args.no_progress else None,
            labels=labels,
            class_names=(rc.get("data") or {}).get("class_names"),
        )
    print(f"fastwgan: wrote {n} samples to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate
    from .restore import run_root

    run, ckpt = (args.run, args.checkpoint) if args.run else (args.checkpoint, None)
    if run is None:
        raise ValueError("which run? give RUN, a run folder (e.g. `fastwgan evaluate runs/digits-train-wgan-gp`)")
    if Path(run).is_file():  # a step_N.json given as the run: that checkpoint of its run
        run, ckpt = run_root(run), run
    extractor = None
    if args.inception:
        from .features import inception

        extractor = inception(args.inception)
    result = evaluate.evaluate_run(
        run, n=args.n, seed=args.seed, extractor=extractor, checkpoint=ckpt, source=args.data
    )
    written = result.pop("written")
    print(json.dumps(result, indent=1) if args.json else evaluate.format_table(result))
    print(f"fastwgan: wrote {written}", file=sys.stderr)
    return 0


def _training_data(rc: dict):
    """The images a run trained on, as it read them (a streamed folder: its loader, read chunk by chunk)."""
    from . import data

    d = rc.get("data") or {}
    source = d.get("source")
    if source is None:
        raise ValueError("the run's config.json names no training data")
    if d.get("streamed"):
        from .streaming import ImageFolderDataset

        ds = ImageFolderDataset(source, image_size=d.get("image_size"), channels=d.get("channels"))
        return torch.utils.data.DataLoader(ds, batch_size=1024)
    if source.startswith("toy:"):
        return data.toy(source[4:], n=d.get("toy_n") or 100_000, seed=0)
    if d.get("exclude_class") is not None:  # trained without some classes: knn's reference set is what it saw
        from .cli import without_classes

        return without_classes(source, d["exclude_class"], d.get("image_size"), d.get("channels"), False)[0]
    return data.load(source, image_size=d.get("image_size"), channels=d.get("channels"))


def cmd_score(args) -> int:
    from . import anomaly, inference

    if args.checkpoint and args.input is None:  # `score --checkpoint RUN INPUT`: the one positional is INPUT
        args.run, args.input = None, args.run
    run = _run_arg(args)
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
        from .restore import run_root

        encoder = anomaly.load_encoder(run_root(run), trainer)  # before reading the input: a missing one is named
    own_labels = conditional and args.cls is None and args.method == "critic"  # D(x, y): the input's labels
    if args.anomalous_class is not None and args.truth is not None:
        raise ValueError("--anomalous-class and --labels both give the ground truth: give one of them")
    from .cli import class_list

    anomalous = class_list(args.anomalous_class, "--anomalous-class") if args.anomalous_class is not None else None
    from .data import DataError

    try:  # the input's labels travel with it into the CSV whenever it has them
        x, names, in_labels = inference.load_inputs(args.input, rc.get("data"), labels=True)
    except DataError as e:  # a source without (valid) labels
        if own_labels:
            raise ValueError(
                f"{run} is class-conditional: score against --class K, or give INPUT with labels ({e})"
            ) from None
        if anomalous is not None:
            raise ValueError(
                f"--anomalous-class: {args.input} carries no class labels ({e}); give --labels FILE instead"
            ) from None
        x, names, in_labels = inference.load_inputs(args.input, rc.get("data"))
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
        train=_training_data(rc) if args.method == "knn" else None,
        batch_size=args.batch_size,
    )
    scores, extra = result.pop("score"), result
    if in_labels is not None:
        extra = {"label": in_labels, **extra}
    if truth is not None:
        extra = {**extra, "anomalous": truth.long()}
    if args.maps:
        from .images import save_grid

        shown = x[:32]
        rec = encoder.reconstruct(shown)
        from .images import to_float

        real = to_float(shown)
        save_grid(torch.cat([real, rec, (real - rec).abs() - 1]), args.maps, nrow=len(shown), scale=None)
        print(f"fastwgan: wrote inputs, G(E(x)) and |x - G(E(x))| (rows) to {args.maps}", file=sys.stderr)
    if args.out:
        inference.write_scores_csv(args.out, names, scores, extra)
        print(f"fastwgan: wrote {len(names)} {args.method} scores to {args.out}", file=sys.stderr)
    else:
        inference.write_scores(sys.stdout, names, scores, extra)
    if truth is not None:
        from .metrics import auroc

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
    import shutil

    from . import anomaly, checkpoint
    from .restore import run_root

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the encoder and --overwrite replaces it: give one of them")
    run = run_root(_run_arg(args))
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
        saved = json.loads((out / "config.json").read_text())["config"]
        cfg = anomaly.EncoderConfig(**{**saved, "betas": tuple(saved["betas"])})
    x = _training_data(rc)
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
        state = checkpoint.load(out)
        gan_step = json.loads((out / "config.json").read_text()).get("gan_step")
        if gan_step != trainer.step:
            raise ValueError(
                f"--resume: the encoder inverts the GAN at step {gan_step}, the run is at step "
                f"{trainer.step}: train a new one with --overwrite"
            )
        et.load_state_dict(state)
        if args.steps <= et.step:
            raise ValueError(f"--resume: the encoder is at step {et.step} already; ask for more --steps")
    elif exists:
        shutil.rmtree(out)
    print(
        f"fastwgan: training the f-AnoGAN encoder ({et.name}) of {run} (GAN step {trainer.step}) on "
        f"{len(x)} normal samples, {args.steps} steps -> {out}",
        file=sys.stderr,
    )
    et.fit(
        x,
        args.steps,
        out=out,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        run_config={"gan_step": trainer.step, "model": rc["model"], "data": rc["data"].get("source")},
    )
    print(json.dumps({"encoder": str(out), **(et.history[-1] if et.history else {})}))
    return 0
