"""`fastwgan` command line: a thin shell over the Python API.

    fastwgan train  --data digits-train|PATH|toy:NAME --preset wgan-gp|wgan-clip|wgan-gp-toy --steps N --out DIR
    fastwgan train  --resume RUN --steps N     (N: the run's new total)
    fastwgan sample RUN --n N --out FILE.png|DIR|FILE.npz
    fastwgan evaluate RUN                      (writes RUN/metrics.json)
    fastwgan score RUN INPUT [--out scores.csv]
    fastwgan encode RUN                        (f-AnoGAN's encoder, for score --method fanogan)
    fastwgan translate train --source A --target B --out RUN   (unpaired translation, fastwgan.uses.translate)
    fastwgan translate apply --checkpoint RUN INPUT --out OUT [--direction s2t|t2s]
    fastwgan adapt --source A --target B --out RUN [--eval-data C]   (WDGRL, fastwgan.uses.adapt)

Every command that reads a run takes it as the positional RUN (a run folder, its checkpoints/ or a step_N.json;
``--checkpoint RUN`` is the same). Errors are one line (exit 2); ``--debug`` anywhere shows the traceback.

The modules, one job each:

    app          the parser, the options every command takes, errors and exit codes, the dispatch
    options      options several commands share (TrainConfig fields, data help, RUN / --checkpoint)
    folders      the run-folder rules: which run a command reads, its kind, where a training command writes
    train        `train`;  train_data: what it trains on;  distributed: under torchrun
    runs         `sample`, `evaluate`
    scoring      `score`, `encode` (anomaly detection)
    domains      `translate train|apply`, `adapt`
    inference    writing samples, reading the inputs of `score`, score CSVs (Python functions)
"""

from .app import build_parser, main

__all__ = ["main", "build_parser"]
