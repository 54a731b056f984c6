"""What fastwgan writes, fastwgan reads back (issue 22): five bugs a new user hit, one test each.

1. a run written by ``fit(out=...)`` from Python opens with ``load_trainer`` and ``fastwgan sample``;
2. ``sample --out DIR`` never mixes old and new samples;
3. ``--resume`` takes a run folder, its checkpoints/ or its latest checkpoint, and refuses others in one line;
4. a resumed run continues to its own target unless ``--steps`` says otherwise, and the stop hint does that;
5. Ctrl-C anywhere in a command is one line and exit 130.
"""

import json
import signal

import cli_args
import pytest
import torch
from torch import nn

import fastwgan as fw
from fastwgan.cli import main
from fastwgan.core import checkpoint

TOY = [*cli_args.TOY, *cli_args.REFERENCE]
DIGITS = [*cli_args.DIGITS, *cli_args.REFERENCE]


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------------------------------------- 1
def test_a_run_written_from_python_opens_with_load_trainer_and_sample(tmp_path, capsys):
    cfg = fw.TrainConfig.preset("wgan-gp", batch_size=8, latent_dim=8)
    torch.manual_seed(0)
    G, D = fw.models.mlp((1, 8, 8), cfg.latent_dim, hidden=16)
    run = tmp_path / "pyfit"
    fw.Trainer(G, D, cfg, compile=False).fit(fw.data.load("digits-train"), steps=3, out=run, progress=False)
    trainer, rc = fw.load_trainer(run)
    assert trainer.step == 3 and rc["steps"] == 3
    for a, b in zip(G.parameters(), trainer.generator.parameters()):
        assert torch.equal(a, b)
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()


class UserG(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 2)

    def forward(self, z):
        return self.net(z)


def test_a_run_of_user_modules_says_what_load_trainer_needs(tmp_path):
    cfg = fw.TrainConfig.preset("wgan-gp-toy", batch_size=8, latent_dim=4)
    torch.manual_seed(0)
    G, D = UserG(), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    run = tmp_path / "user"
    fw.Trainer(G, D, cfg, compile=False).fit(fw.data.toy("8gaussians", 64, seed=0), steps=2, out=run, progress=False)
    with pytest.raises(ValueError, match=r"pass them: fw.load_trainer\(run, generator=G, critic=D\)"):
        fw.load_trainer(run)
    trainer, _ = fw.load_trainer(
        run, generator=UserG(), critic=nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    )
    assert trainer.step == 2
    for a, b in zip(G.parameters(), trainer.generator.parameters()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------------- 2
@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", *DIGITS, "--conditional", "--steps", "2", "--out", str(out)]) == 0
    return out


def test_sample_never_mixes_old_and_new_samples(cond_run, tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["sample", str(cond_run), "--per-class", "3", "--out", str(out)]) == 0
    first = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(first) == 30
    capsys.readouterr()
    assert main(["sample", str(cond_run), "--n", "5", "--out", str(out)]) == 2
    err = one_line(capsys.readouterr().err)
    assert "already holds 30 files" in err and "--overwrite" in err
    assert sorted(p for p in out.rglob("*") if p.is_file()) == first  # nothing written
    assert main(["sample", str(cond_run), "--per-class", "1", "--out", str(out), "--overwrite"]) == 0
    assert len([p for p in out.rglob("*") if p.is_file()]) == 10  # only the new samples
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["sample", str(cond_run), "--n", "2", "--out", str(out), "--overwrite"]) == 2
    assert "not samples" in one_line(capsys.readouterr().err)
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------------------- 3, 4
def _stop_at(monkeypatch, step):
    """A Ctrl-C that arrives while the run is at ``step`` (through the CLI's evaluator hook, at a log tick)."""
    import fastwgan.cli.train as cli_train

    def evaluators(args, out, x):
        def ev(trainer):
            if trainer.step == step:
                signal.raise_signal(signal.SIGINT)
            return {}

        return (ev,)

    monkeypatch.setattr(cli_train, "_evaluators", evaluators)


def test_resume_continues_to_the_runs_own_target(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, 2)
        assert main(["train", *TOY, "--steps", "5", "--out", str(out)]) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    hint = err.split("Resume with: ")[1].split()
    assert hint == ["fastwgan", "train", "--resume", str(out)]  # a command that does what it says
    at = checkpoint.load(out)["step"]
    assert 2 <= at < 5
    assert main(hint[1:]) == 0  # exactly the hint
    assert checkpoint.load(out)["step"] == 5  # the run's own target, not the default 1000
    assert json.loads((out / "config.json").read_text())["steps"] == 5
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 2
    assert "already reached its target of 5 steps" in one_line(capsys.readouterr().err)
    assert main(["train", "--resume", str(out), "--steps", "6"]) == 0  # --steps says otherwise
    assert checkpoint.load(out)["step"] == 6


def test_resume_takes_the_run_its_checkpoints_or_its_latest_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--steps", "2", "--checkpoint-every", "1", "--out", str(out)]) == 0
    latest = checkpoint.resolve(out)
    assert latest.name == "step_000002.json"
    for steps, given in ((3, latest), (4, out / "checkpoints"), (5, out)):
        assert main(["train", "--resume", str(given), "--steps", str(steps)]) == 0, capsys.readouterr().err
        assert checkpoint.load(out)["step"] == steps
    older = sorted((out / "checkpoints").glob("step_*.json"))[0]
    assert older != checkpoint.resolve(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(older), "--steps", "9"]) == 2
    assert "is not the run's latest checkpoint" in one_line(capsys.readouterr().err)
    assert main(["train", "--resume", str(tmp_path), "--steps", "9"]) == 2
    assert "not in a run folder" in one_line(capsys.readouterr().err)


def test_translate_resume_continues_to_its_own_target(tmp_path, capsys, monkeypatch):
    from fastwgan.core import run as run_mod

    out = tmp_path / "tr"
    args = [
        "translate",
        "train",
        "--source",
        "digits-train",
        "--target",
        "digits-m-train",
        "--width",
        "8",
        "--blocks",
        "1",
        "--batch-size",
        "8",
        "--n-critic",
        "2",
        "--no-progress",
        "--log-every",
        "1",
        "--trainer",
        "reference",
    ]
    write = run_mod.RunWriter.checkpoint

    def checkpoint_then_ctrl_c(self, state, step, **kw):  # Ctrl-C right after the step-2 checkpoint
        write(self, state, step, **kw)
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    with monkeypatch.context() as m:
        m.setattr(run_mod.RunWriter, "checkpoint", checkpoint_then_ctrl_c)
        assert main([*args, "--steps", "6", "--checkpoint-every", "1", "--out", str(out)]) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    hint = err.split("Resume with: ")[1].split()
    assert hint == ["fastwgan", "translate", "train", "--resume", str(out)]
    assert checkpoint.load(out)["step"] < 6
    assert main([*hint[1:], "--no-progress", "--no-compile"]) == 0  # (eager: the resumed fast trainer)
    assert checkpoint.load(out)["step"] == 6  # its own target, not the default 2000
    assert "6 steps in total" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------- 5
def test_ctrl_c_before_the_first_step_is_one_line(tmp_path, capsys, monkeypatch):
    from fastwgan.uses import translate

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(translate.ReferenceTranslationTrainer, "__init__", interrupted)
    code = main(
        [
            "translate",
            "train",
            "--source",
            "digits-train",
            "--target",
            "digits-m-train",
            "--out",
            str(tmp_path / "tr"),
            "--steps",
            "2",
            "--trainer",
            "reference",
            "--no-progress",
        ]
    )
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------------- the
# anomaly workflow end to end: leave one class out, score, AUROC beside the CSV
def test_leave_one_class_out_prints_the_auroc_beside_the_csv(tmp_path, capsys):
    import csv

    from fastwgan.eval.metrics import auroc

    run = tmp_path / "no3"
    assert main(["train", *DIGITS, "--exclude-class", "3", "--steps", "2", "--out", str(run)]) == 0
    x, y = fw.data.load("digits-train", labels=True)
    assert json.loads((run / "config.json").read_text())["data"]["shape"][0] == int((y != 3).sum())
    capsys.readouterr()
    csv_path = tmp_path / "knn.csv"
    assert (
        main(["score", str(run), "digits-heldout", "--method", "knn", "--anomalous-class", "3", "--out", str(csv_path)])
        == 0
    )
    err = capsys.readouterr().err
    rows = list(csv.DictReader(open(csv_path)))
    _, y_held = fw.data.load("digits-heldout", labels=True)
    assert [int(r["label"]) for r in rows] == y_held.tolist()  # the CSV carries the label
    assert [int(r["anomalous"]) for r in rows] == (y_held == 3).long().tolist()
    s = torch.tensor([float(r["score"]) for r in rows])
    expected = auroc(s[y_held == 3], s[y_held != 3])
    assert f"AUROC {expected:.4f}" in err
    assert expected > 0.9  # knn's reference set is the training data WITHOUT class 3 (else 3s find themselves)
    # the same truth as a file of 0/1, 1 = anomalous
    truth = tmp_path / "truth.txt"
    truth.write_text("\n".join(str(int(v)) for v in (y_held == 3).tolist()))
    assert (
        main(
            [
                "score",
                str(run),
                "digits-heldout",
                "--method",
                "knn",
                "--labels",
                str(truth),
                "--out",
                str(tmp_path / "k2.csv"),
            ]
        )
        == 0
    )
    assert f"AUROC {expected:.4f}" in capsys.readouterr().err
    truth.write_text("0\n2\n")
    assert main(["score", str(run), "digits-heldout", "--labels", str(truth)]) == 2
    assert "holds 2 values but INPUT has 500" in one_line(capsys.readouterr().err)
    assert main(["score", str(run), "toy:8gaussians", "--anomalous-class", "3"]) == 2


def test_images_fastwgan_samples_are_read_back(tmp_path, capsys, cond_run):
    import numpy as np

    trainer, _ = fw.load_trainer(cond_run)
    x = trainer.sample(6, labels=torch.zeros(6, dtype=torch.long))  # floats in [-1, 1]
    assert float(x.min()) < 0
    np.save(tmp_path / "s.npy", x.numpy())
    assert main(["score", str(cond_run), str(tmp_path / "s.npy"), "--class", "0"]) == 0
    bad = x.numpy().copy()
    bad[4, 0, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    capsys.readouterr()
    assert main(["score", str(cond_run), str(tmp_path / "nan.npy"), "--class", "0"]) == 2
    assert "image 4 holds nan (at index (4, 0, 2, 3))" in one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------------------- the
# console: a run whose stderr is not a terminal still says how far it is
def test_progress_on_a_non_terminal_is_a_line_every_so_often(capsys):
    from fastwgan.core.run import Progress

    bar = Progress(5, 0, "toy", None, every_s=0.0)  # pytest's captured stderr is not a terminal
    for k in range(5):
        bar.set_postfix({"critic_loss": f"{-k:.3g}"})
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("fastwgan: toy: step 5/5 (") and "critic_loss -4" in lines[-1]
    quiet = Progress(5, 0, "toy", False, every_s=0.0)
    quiet.update()
    quiet.close()
    assert capsys.readouterr().err == ""


def test_cli_runs_report_progress_when_stderr_is_not_a_terminal(tmp_path, capsys):
    args = [a for a in TOY if a != "--no-progress"]
    assert main(["train", *args, "--steps", "3", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "step 3/3 (" in err.splitlines()[-1]  # the closing line, after the banner


# ---------------------------------------------------------------------------------------------------------- the
# domain commands speak the same CLI as train
def test_domain_commands_offer_only_their_own_options(capsys):
    for argv in (["translate", "train", "--help"], ["adapt", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "--threads" in text
        for gan_only in ("--latent-dim", "--num-classes", "--ac-weight", "--augment"):
            assert gan_only not in text, (argv, gan_only)
    with pytest.raises(SystemExit):
        main(["adapt", "--help"])
    assert "learning rate of the feature extractor and classifier" in capsys.readouterr().out


def test_adapt_plots_its_own_losses_and_the_target_accuracy(tmp_path, capsys):
    run = tmp_path / "ad"
    assert (
        main(
            [
                "adapt",
                "--source",
                "digits-train",
                "--target",
                "digits-m-train",
                "--channels",
                "3",
                "--steps",
                "4",
                "--batch-size",
                "8",
                "--n-critic",
                "2",
                "--no-progress",
                "--log-every",
                "2",
                "--trainer",
                "reference",
                "--eval-data",
                "digits-m-heldout",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    ticks = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [t["step"] for t in ticks] == [2, 4] and all(0 <= t["target_accuracy"] <= 1 for t in ticks)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target_accuracy"] == ticks[-1]["target_accuracy"]
    from fastwgan.core import plots
    from fastwgan.uses import adapt

    drawn = []
    real = plots.plot_losses
    plots.plot_losses = lambda history, path, panels, ticks: drawn.append((panels, ticks))  # noqa: E731
    try:
        from fastwgan.core.run import RunWriter

        w = RunWriter(tmp_path / "p", {"k": 1})
        w.log({"step": 2, "target_accuracy": 0.5})
        w.plots([{"step": 1, "critic_loss": 0.0}], adapt.AdaptTrainer.plot_panels)
    finally:
        plots.plot_losses = real
    titles = [t for t, _ in drawn[0][0]]
    assert titles == ["domain critic", "extractor + classifier", "features", "target accuracy"]
    assert drawn[0][1] == [{"step": 2, "target_accuracy": 0.5}]
    assert (run / "plots" / "losses.png").is_file()


def test_evaluate_shows_the_classifiers_accuracy_as_a_property_of_real_digits():
    from fastwgan.eval.evaluate import format_table

    table = format_table(
        {
            "run": "r",
            "step": 1,
            "source": "digits-train",
            "metrics": {"classifier_fid": 50.0, "classifier_fid_real": 7.7, "classifier_heldout_accuracy": 0.998},
        }
    )
    header, fid, acc = table.splitlines()[1:4]
    assert header.split() == ["metric", "generated", "real"]
    assert fid.split()[-2:] == ["50", "7.7"]
    # the accuracy sits under "real": it ends the line, with blanks under "generated"
    assert len(acc) == len(header) and acc.endswith("0.998") and acc[-28:-14].strip() == ""
