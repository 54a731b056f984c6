"""`fastwgan translate train|apply` and `fastwgan adapt` end to end on the bundled two-domain digits (digits ->
digits-m), resume included, and their one-line refusals."""

import json

import numpy as np
import pytest
from PIL import Image

from fastwgan.cli import main
from fastwgan.core import checkpoint

TINY = ["--batch-size", "8", "--n-critic", "2", "--no-progress", "--log-every", "2", "--trainer", "reference"]


def test_translate_train_apply_and_resume(tmp_path, capsys):
    run = tmp_path / "tr"
    assert (
        main(
            [
                "translate",
                "train",
                "--source",
                "digits-train",
                "--target",
                "digits-m-train",
                "--out",
                str(run),
                "--steps",
                "2",
                "--width",
                "8",
                "--blocks",
                "1",
                "--critic",
                "dcgan",
                "--critic-width",
                "32",
                *TINY,
            ]
        )
        == 0
    )
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["step"] == 2 and {"cycle", "identity", "w_t", "w_s", "gp_t"} <= set(last)
    assert last["identity"] == 0.0  # 1-channel digits -> 3-channel digits-m: no identity term
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == "translation" and cfg["trainer"] == "reference" and cfg["identity_weight"] == 0.0
    assert cfg["networks"]["g_st"] == {"image_size": 8, "channels_in": 1, "channels_out": 3, "width": 8, "blocks": 1}
    assert cfg["networks"]["d_t"]["kind"] == "dcgan" and cfg["networks"]["d_t"]["width"] == 32
    grid = Image.open(run / "samples" / "step_000002.png")
    assert grid.mode == "RGB" and grid.size[1] > grid.size[0] * 0.6  # six rows of eight: s, s->t, s->t->s, t, ...
    assert (run / "plots" / "losses.png").is_file()
    # apply: both directions, the three outputs
    assert (
        main(["translate", "apply", "--checkpoint", str(run), "digits-heldout", "--out", str(tmp_path / "t.npz")]) == 0
    )
    with np.load(tmp_path / "t.npz") as z:
        assert z["images"].shape == (500, 3, 8, 8) and z["images"].dtype == np.uint8
    assert (
        main(
            [
                "translate",
                "apply",
                str(run),
                "digits-m-heldout",
                "--direction",
                "t2s",  # RUN first, as elsewhere
                "--out",
                str(tmp_path / "back"),
            ]
        )
        == 0
    )
    back = sorted((tmp_path / "back").iterdir())
    assert len(back) == 500 and Image.open(back[0]).mode == "L"
    assert (
        main(["translate", "apply", "--checkpoint", str(run), "digits-heldout", "--out", str(tmp_path / "g.png")]) == 0
    )
    assert Image.open(tmp_path / "g.png").size[0] > 0
    # resume continues the run in its folder, with the fast trainer (checkpoints interchange)
    assert main(["translate", "train", "--resume", str(run), "--steps", "3", "--no-compile", "--no-progress"]) == 0
    assert checkpoint.load(run)["step"] == 3
    assert [json.loads(x)["step"] for x in (run / "stats.jsonl").read_text().splitlines()] == [2, 3]


def test_adapt_writes_the_classifier_and_its_target_accuracy(tmp_path, capsys):
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
                "--out",
                str(run),
                "--steps",
                "2",
                "--eval-data",
                "digits-m-heldout",
                *TINY,
            ]
        )
        == 0
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["target_accuracy"] <= 1 and metrics["eval_data"] == "digits-m-heldout"
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["target_accuracy"] == metrics["target_accuracy"]
    from safetensors.torch import load_file

    weights = load_file(str(run / "classifier.safetensors"))
    assert "extractor.0.weight" in weights and "classifier.weight" in weights
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == "adaptation" and cfg["shift"] is False and cfg["photometric"] is False  # the defaults
    assert main(["adapt", "--resume", str(run), "--steps", "3", "--no-compile", "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["step"] == 3


@pytest.mark.parametrize("method", ["dann", "pixelda"])
def test_adapt_methods_train_resume_and_report_the_source_only_start(tmp_path, method):
    run = tmp_path / method
    argv = ["adapt", "--method", method, "--source", "mnist-5k-heldout", "--target", "digits-heldout"]
    argv += ["--image-size", "8", "--resize", "box", "--out", str(run), "--steps", "2", "--batch-size", "8"]
    argv += ["--source-epochs", "1", "--eval-data", "digits-heldout", "--no-compile", "--no-progress"]
    assert main(argv + (["--shift", "--photometric"] if method == "dann" else ["--photometric", "--class-critic"])) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    assert metrics["method"] == method and 0 <= metrics["target_accuracy"] <= 1
    if method == "dann":  # started from a source-trained classifier, whose target accuracy is reported
        assert 0 <= metrics["source_only_target_accuracy"] <= 1 and cfg["method"] == "dann"
        assert cfg["config"]["betas"] == [0.9, 0.999] and cfg["source_epochs"] == 1 and cfg["shift"] is True
    assert cfg["photometric"] is True  # the source-only start and the adaptation: the resume below keeps it
    assert cfg["kind"] == ("pixelda" if method == "pixelda" else "adaptation")
    if method == "pixelda":  # the class-aware critic: a projection critic, rebuilt from its spec on resume
        assert cfg["class_critic"] is True and cfg["networks"]["critic"]["conditioning"] == "projection"
    assert main(["adapt", "--resume", str(run), "--steps", "3", "--no-compile", "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["step"] == 3
    if method == "pixelda":  # DIRT-T's refinement starts from its task classifier T (G's weights left out)
        refined = tmp_path / "refined"
        argv = ["adapt", "--method", "dirtt", "--init", str(run), "--source", "mnist-5k-heldout", "--target"]
        argv += ["digits-heldout", "--image-size", "8", "--resize", "box", "--out", str(refined), "--steps", "1"]
        assert main(argv + ["--batch-size", "8", "--eval-data", "digits-heldout", "--no-compile", "--no-progress"]) == 0
        got = json.loads((refined / "metrics.json").read_text())["init_target_accuracy"]
        assert got == json.loads((run / "metrics.json").read_text())["target_accuracy"]


def test_adapt_dirtt_refines_an_earlier_runs_classifier(tmp_path, capsys):
    base = ["--source", "mnist-5k-heldout", "--target", "digits-heldout", "--image-size", "8", "--resize", "box"]
    base += ["--batch-size", "8", "--eval-data", "digits-heldout", "--no-compile", "--no-progress"]
    first, second = tmp_path / "wdgrl", tmp_path / "dirtt"
    assert main(["adapt", *base, "--out", str(first), "--steps", "2", "--source-epochs", "1"]) == 0
    argv = ["adapt", "--method", "dirtt", "--init", str(first), *base, "--out", str(second), "--steps", "2"]
    assert main(argv) == 0
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (first, second))
    assert m2["init_target_accuracy"] == m1["target_accuracy"]  # it starts from the wdgrl run's classifier
    cfg = json.loads((second / "config.json").read_text())
    assert cfg["method"] == "dirtt" and cfg["init"] == str(first) and cfg["config"]["lr_g"] == 1e-3
    assert main(["adapt", "--resume", str(second), "--steps", "3", "--no-compile", "--no-progress"]) == 0
    assert json.loads((second / "metrics.json").read_text())["step"] == 3
    # --init refuses a missing run and one whose classifier does not fit (3 channels here), one line each
    bad = ["adapt", "--method", "dirtt", "--source", "digits", "--target", "digits", "--channels", "3"]
    for init, needle in ((tmp_path / "nothing", "does not exist"), (first, "does not fit these networks")):
        capsys.readouterr()
        assert main([*bad, "--init", str(init), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "--init" in err[0], err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            ["adapt", "--source", "stacked-digits", "--target", "digits-m", "--out", "{tmp}/a"],
            "--source: adaptation needs the source's labels",
        ),
        (
            ["adapt", "--source", "digits", "--target", "digits-m", "--out", "{tmp}/a"],
            "one image shape is needed, got (1, 8, 8) and (3, 8, 8)",
        ),
        (
            [
                "adapt",
                "--method",
                "pixelda",
                "--weight",
                "1",
                "--source",
                "digits",
                "--target",
                "digits",
                "--out",
                "{tmp}/p",
            ],
            "--weight, --clf-steps, --entropy-weight, --shift and --init are for --method wdgrl / dann / dirtt",
        ),
        (
            ["adapt", "--class-critic", "--source", "digits", "--target", "digits", "--out", "{tmp}/c"],
            "--class-critic is for --method pixelda",
        ),
        (
            ["translate", "train", "--source", "digits", "--target", "toy:8gaussians", "--out", "{tmp}/t"],
            "--target: translation takes images",
        ),
        (["translate", "train", "--source", "digits", "--target", "digits-m"], "--out: name the run folder"),
        (["translate", "train", "--source", "{tmp}/missing", "--target", "digits-m", "--out", "{tmp}/t"], "missing"),
        (["translate", "apply", "--checkpoint", "{tmp}/nothing", "digits", "--out", "{tmp}/x.png"], "does not exist"),
    ],
)
def test_bad_input_gives_one_clear_error(argv, needle, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*argv, "--no-progress"] if argv[0] == "adapt" or argv[1] == "train" else argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
