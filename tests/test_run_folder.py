"""The CLI and run folders never silently do the wrong thing (issue 11): a run folder holds one run, refusals are one
line that names the way on and write nothing, every command reads a run the same way, and `fit` says what `steps`
means."""

import json
import math
import subprocess
import sys

import cli_args
import pytest
import torch
from PIL import Image
from torch import nn

import fastwgan as fw
from fastwgan.cli import inference, main
from fastwgan.core import checkpoint
from fastwgan.core.run import RunFolderError

TOY = [*cli_args.TOY, *cli_args.REFERENCE]
DIGITS = [*cli_args.DIGITS, *cli_args.REFERENCE]


def snapshot(folder):
    """Every file under ``folder`` with its bytes (None: the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def toy_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--steps", "3", "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------- a run folder belongs to one run
def test_train_into_a_run_folder_refuses_and_writes_nothing(toy_run, capsys):
    capsys.readouterr()
    before = snapshot(toy_run)
    assert main(["train", *TOY, "--steps", "5", "--out", str(toy_run)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "already holds a run (at step 3)" in line and f"--resume {toy_run}" in line and "--overwrite" in line
    assert snapshot(toy_run) == before


def test_a_non_empty_folder_that_is_no_run_is_never_written(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["train", *TOY, "--steps", "2", "--out", str(out)]) == 2
    assert "holds no fastwgan run" in one_line(capsys.readouterr().err)
    assert main(["train", *TOY, "--steps", "2", "--out", str(out), "--overwrite"]) == 2  # not even with --overwrite
    assert snapshot(out) == {"notes.txt": b"keep me"}


def test_overwrite_replaces_the_run_and_keeps_the_old_one_until_the_first_checkpoint(toy_run):
    # Python API, so that a callback can look at the folders between steps (log ticks come before checkpoints)
    trainer, _ = fw.load_trainer(toy_run)  # the same models and config; a fresh trainer at step 0 below
    old = snapshot(toy_run)
    G, D = fw.models.mlp((2,), trainer.config.latent_dim, hidden=16)
    new = fw.ReferenceTrainer(G, D, trainer.config)
    seen = []

    def look(t, record):
        aside = [p for p in toy_run.parent.iterdir() if p.name.startswith("run.replaced-")]
        seen.append((record["step"], len(aside) == 1 and snapshot(aside[0]) == old))

    with pytest.raises(RunFolderError):
        new.fit(fw.data.toy("8gaussians", n=300), 3, out=toy_run, log_every=1, progress=False)
    new.fit(
        fw.data.toy("8gaussians", n=300),
        3,
        out=toy_run,
        overwrite=True,
        log_every=1,
        checkpoint_every=2,
        callbacks=(look,),
        progress=False,
    )
    assert seen == [(1, True), (2, True), (3, False)]  # the old run is deleted by the new run's checkpoint at 2
    assert [p.name for p in toy_run.parent.iterdir()] == ["run"]
    stats = [json.loads(line)["step"] for line in (toy_run / "stats.jsonl").read_text().splitlines()]
    assert stats == [1, 2, 3]  # the new run's lines only


def test_overwrite_that_fails_before_a_checkpoint_puts_the_old_run_back(toy_run, capsys):
    old = snapshot(toy_run)
    diverge = ["--lr-d", "1e30", "--loss", "clip", "--optimizer", "adam", "--clip-value", "1e30"]
    assert main(["train", *TOY, "--steps", "20", "--out", str(toy_run), "--overwrite", *diverge]) == 2
    err = capsys.readouterr().err
    assert "moved the run in" in err and "moved the old run back" in err and "diverged at step" in err
    assert snapshot(toy_run) == old
    assert [p.name for p in toy_run.parent.iterdir()] == ["run"]


def test_cli_overwrite_says_what_it_does(toy_run, capsys):
    assert main(["train", *TOY, "--steps", "2", "--out", str(toy_run), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "replacing the run there at step 3" in err and "deleted the overwritten run" in err
    assert checkpoint.load(toy_run)["step"] == 2
    assert [p.name for p in toy_run.parent.iterdir()] == ["run"]


@pytest.mark.parametrize("steps", ["3", "2"])
def test_resume_to_a_step_already_reached_refuses(toy_run, capsys, steps):
    capsys.readouterr()
    before = snapshot(toy_run)
    assert main(["train", "--resume", str(toy_run), "--steps", steps, "--no-progress"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "already at step 3" in line and "--steps is the run's total" in line
    assert snapshot(toy_run) == before


def test_resume_elsewhere_or_with_overwrite_refuses(toy_run, tmp_path, capsys):
    assert main(["train", "--resume", str(toy_run), "--steps", "5", "--out", str(tmp_path / "other")]) == 2
    assert "drop --out" in one_line(capsys.readouterr().err)
    assert main(["train", "--resume", str(toy_run), "--steps", "5", "--overwrite"]) == 2
    assert "give one of them" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
        (["train", "--steps", "-5"], "argument --steps: expected a positive integer, got '-5'"),
        (["train", "--preset", "bad"], "argument --preset: invalid choice: 'bad'"),
        (["train", "--betas", "0.5"], "argument --betas: expected 2 arguments"),
        (["sample", "RUN", "--n", "0", "--out", "x.png"], "argument --n"),
        ([], "required"),
    ],
)
def test_argparse_errors_are_one_line_and_write_nothing(argv, needle, tmp_path, capsys):
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(out)] if argv[:1] == ["train"] else argv)
    assert e.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert needle in line and "(see fastwgan" in line and "--help)" in line
    assert not out.exists()


def test_validation_comes_before_the_banner_and_any_file(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *TOY, "--steps", "2", "--batch-size", "0", "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "TrainConfig.batch_size" in line and not out.exists()


def test_debug_is_accepted_after_the_command(tmp_path):
    with pytest.raises(FileNotFoundError):  # --debug: the exception itself, not the one line
        main(["train", "--data", str(tmp_path / "missing"), "--steps", "1", "--debug", "--out", str(tmp_path / "r")])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "sample", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")])


def test_version():
    r = subprocess.run([sys.executable, "-m", "fastwgan", "--version"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.startswith(f"fastwgan {fw.__version__} (torch {torch.__version__}, triton ")


# ---------------------------------------------------------------- one grammar for the commands that read a run
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits"
    assert main(["train", *DIGITS, "--steps", "2", "--out", str(out)]) == 0
    return out


def test_sample_takes_run_positionally_or_as_checkpoint_and_enlarges_small_images(digits_run, tmp_path, capsys):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    assert main(["sample", str(digits_run), "--n", "4", "--out", str(a)]) == 0
    assert main(["sample", "--checkpoint", str(digits_run), "--n", "4", "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert Image.open(a).size == (2 * (32 + 2) + 2,) * 2  # 8 px digits shown x4, as in RUN/samples/
    run_grid = Image.open(sorted((digits_run / "samples").glob("*.png"))[-1]).size
    assert run_grid == (8 * (32 + 2) + 2,) * 2  # the run's own 64-sample grid: the same tiles
    assert main(["sample", str(digits_run), "--n", "4", "--out", str(c), "--scale", "1"]) == 0
    assert Image.open(c).size == (2 * (8 + 2) + 2,) * 2
    capsys.readouterr()
    assert main(["sample", str(digits_run), "--n", "4", "--out", str(tmp_path / "d.npz"), "--scale", "2"]) == 2
    assert "--scale" in one_line(capsys.readouterr().err)
    assert main(["sample", "--n", "4", "--out", str(c)]) == 2
    assert "which run?" in one_line(capsys.readouterr().err)


def test_score_takes_run_positionally_and_builtin_data_names(digits_run, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["score", str(digits_run), "digits-heldout", "--out", str(a)]) == 0
    assert main(["score", "--checkpoint", str(digits_run), "digits-heldout", "--out", str(b)]) == 0
    assert a.read_text() == b.read_text()
    names, scores = inference.read_scores_csv(a)
    assert len(names) == 500 and bool(torch.isfinite(scores).all())
    capsys.readouterr()
    assert main(["score", str(digits_run), "toy:8gaussians"]) == 2  # points are not this run's 1x8x8 images
    line = one_line(capsys.readouterr().err)
    assert "(2,)" in line and "(1, 8, 8)" in line
    assert main(["score", str(digits_run)]) == 2
    assert "give INPUT" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_evaluate_takes_the_run_as_checkpoint_or_a_step_file(digits_run, capsys):
    step = digits_run / "checkpoints" / "step_000002.json"
    for argv in (["evaluate", "--checkpoint", str(digits_run), "--json"], ["evaluate", str(step), "--json"]):
        assert main(argv) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["step"] == 2 and out["source"] == "digits-train"
        assert "heldout_seen_in_training" not in out["metrics"]  # digits-train: the 500 held-out digits are unseen
    assert (digits_run / "eval" / "metrics_step_000002.json").is_file()
    # --data: the names `train --data` takes, checked against the run's sample shape
    assert main(["evaluate", str(step), "--data", "digits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "digits" and out["metrics"]["heldout_seen_in_training"] is True
    assert main(["evaluate", str(digits_run), "--data", "toy:8gaussians"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "toy:8gaussians holds samples of shape (2,) but the run makes (1, 8, 8)" in line


def test_evaluate_says_in_a_sentence_when_the_heldout_set_was_seen():
    from fastwgan.eval.evaluate import format_table

    result = {
        "run": "r",
        "step": 5,
        "source": "digits",
        "metrics": {"n": 500, "fid_classifier": 10.0, "fid_classifier_real": 5.0, "heldout_seen_in_training": True},
    }
    table = format_table(result)
    assert "heldout_seen_in_training" not in table
    assert "includes the 500 held-out digits" in table and "'digits-train'" in table
    result["metrics"].pop("heldout_seen_in_training")
    assert "held-out digits" not in format_table(result)


# ---------------------------------------------------------------- fit: steps is a total, add_steps a count
def small_trainer(latent=4, G=None, D=None):
    cfg = fw.TrainConfig.preset("wgan-gp-toy", batch_size=8, latent_dim=latent, seed=0)
    g, d = fw.models.mlp((2,), latent, hidden=8, depth=1)
    return fw.ReferenceTrainer(G or g, D or d, cfg)


def test_fit_that_would_do_nothing_warns_and_add_steps_counts_from_now():
    x = fw.data.toy("8gaussians", n=64)
    t = small_trainer().fit(x, 3, progress=False)
    with pytest.warns(UserWarning, match=r"already at step 3 and steps=3 is the run's total.*add_steps"):
        t.fit(x, 3, progress=False)
    assert t.step == 3
    t.fit(x, add_steps=2, progress=False)
    assert t.step == 5 and [h["step"] for h in t.history] == [1, 2, 3, 4, 5]
    for bad in ({}, {"steps": 6, "add_steps": 1}):
        with pytest.raises(ValueError, match="exactly one of steps"):
            t.fit(x, **bad)


def test_continuing_a_run_from_python_keeps_its_folder_whole(tmp_path):
    out = tmp_path / "run"
    x = fw.data.toy("8gaussians", n=64)

    def crash(t, record):
        if record["step"] == 3:
            raise KeyboardInterrupt  # after the checkpoint at 2, with stats logged to 3

    with pytest.raises(KeyboardInterrupt):
        small_trainer().fit(
            x,
            10,
            out=out,
            log_every=1,
            checkpoint_every=2,
            callbacks=(crash,),
            progress=False,
            run_config={"model": {"kind": "mlp"}, "data": {"source": "toy:8gaussians"}},
            handle_signals=False,
        )
    t = small_trainer()
    t.load_state_dict(checkpoint.load(out))
    assert t.step == 2
    t.fit(x, add_steps=2, out=out, log_every=1, progress=False)
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # step 3's line from the crashed attempt was dropped, not repeated
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == {"kind": "mlp"} and cfg["data"]["source"] == "toy:8gaussians"  # kept from the first fit
    with pytest.raises(RunFolderError, match="at step 4, ahead of this trainer's step 2"):
        t2 = small_trainer()
        t2.load_state_dict(checkpoint.load(out / "checkpoints" / "step_000002.json"))
        t2.fit(x, add_steps=1, out=out, progress=False)


def test_first_record_times_the_compile_apart():
    x = fw.data.toy("8gaussians", n=64)
    t = small_trainer()
    recs = []
    t.fit(x, 4, log_every=2, callbacks=(lambda tr, r: recs.append(r),), progress=False)
    assert recs[0]["first_step_s"] > 0 and "first_step_s" not in recs[1]
    assert "threads" not in recs[0]  # the reference leaves torch's threads alone; the fast trainer logs its count
    assert all(math.isfinite(r["steps_per_s"]) for r in recs)
    recs.clear()
    small_trainer().fit(x, 2, log_every=1, callbacks=(lambda tr, r: recs.append(r),), progress=False)
    assert math.isnan(recs[0]["steps_per_s"]) and math.isfinite(recs[1]["steps_per_s"])  # step 1 is not timed


# ---------------------------------------------------------------- models that do not fit the data, named up front
class Scores10(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 10)

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize(
    "make,needle",
    [
        (
            lambda: small_trainer(latent=4, G=fw.models.mlp((2,), 16, hidden=8, depth=1)[0]),
            "generator: its first layer body.0 takes 16 inputs but TrainConfig.latent_dim is 4 "
            "(a call on z of shape (2, 4) failed",
        ),
        (
            lambda: small_trainer(G=fw.models.mlp((3,), 4, hidden=8, depth=1)[0]),
            "samples have shape (2,) but the generator makes (3,)",
        ),
        (
            lambda: small_trainer(D=fw.models.mlp((5,), 4, hidden=8, depth=1)[1]),
            "critic: calling it on a data batch of shape (2, 2) failed",
        ),
        (lambda: small_trainer(D=Scores10()), "critic: returns shape (2, 10) for a batch of 2 samples"),
    ],
)
def test_models_that_do_not_fit_the_data_are_named_before_training(make, needle):
    t = make()
    with pytest.raises(ValueError) as e:
        t.fit(fw.data.toy("8gaussians", n=64), 2, progress=False)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert t.step == 0


def test_toy_has_a_default_size():
    assert fw.data.toy("8gaussians").shape == (100_000, 2)
