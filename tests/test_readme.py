"""The README's Python examples run as written, and the README's commands are the ones CI uses."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_block(marker: str) -> str:
    """The ```python block that follows ``<!-- marker`` in the README."""
    return re.search(r"```python\n(.*?)```", README.split(f"<!-- {marker}")[1], re.S).group(1)


def run_readme_block(marker: str, check: str, tag: str, prefix: str = "", cwd=None) -> str:
    """Run a README block as written in a fresh interpreter, as a user would, followed by ``check``, which must
    print ``tag``. Returns stdout.

    Without TRITON_INTERPRET (it would route the fast trainers' kernels through the slow Triton interpreter on CPU;
    the kernel tests cover that path), and with TORCHDYNAMO_DISABLE=1, which makes torch.compile a no-op: the
    blocks' fast trainers run their steps eagerly. Their compiled graphs cost 20-30 s each in a fresh interpreter
    here, and the same trainers are tested compiled, against their references and for recompiles, in
    test_trainer.py, test_conditional.py, test_loader.py, test_translate.py and test_adapt.py."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TORCHDYNAMO_DISABLE"] = "1"
    r = subprocess.run([sys.executable, "-c", prefix + readme_block(marker) + check + f"\nprint({tag!r})\n"],
                       capture_output=True, text=True, env=env, timeout=600, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert tag in r.stdout
    return r.stdout


def test_api_example_runs_as_written():
    assert len(readme_block("api-example").strip().splitlines()) <= 11  # the promise: the API in ten lines (+ import)
    out = run_readme_block("api-example", "\nassert x.shape == (1000, 2) and bool(torch.isfinite(x).all())"
                                          "\nassert trainer.step == 100 and len(trainer.history) == 100"
                                          "\nassert scores.shape == (10,)", "README-OK", prefix="import torch\n")
    assert "critic_loss" in out


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_continue_example_runs_on_a_cli_run(tmp_path):
    # The README's "continue a CLI run from Python" block, as written, on a small run in runs/digits.
    from fastwgan.cli import main

    run = tmp_path / "runs" / "digits"
    assert main(["train", "--data", "digits-train", "--steps", "2", "--batch-size", "8", "--width", "16",
                 "--no-progress", "--no-compile", "--out", str(run)]) == 0
    run_readme_block("continue-example", "\nimport json\nlines = [json.loads(x) for x in open('runs/digits/stats.jsonl')]"
                     "\nassert trainer.step == 102 and lines[-1]['step'] == 102, (trainer.step, lines[-1])"
                     "\nassert fw.checkpoint.load('runs/digits')['step'] == 102", "CONTINUE-OK",
                     prefix="import fastwgan as fw\n", cwd=tmp_path)


def test_conditional_example_runs_as_written():
    run_readme_block("conditional-example", "\nassert sevens.shape == (16, 1, 8, 8) and scores.shape == (4,)"
                     "\nassert trainer.step == 20 and trainer.config.num_classes == 10", "CONDITIONAL-OK")


def test_loader_example_runs_as_written():
    run_readme_block("loader-example", "\nassert trainer.step == 20 and trainer.data_position is not None"
                     " and len(trainer.history) == 20", "LOADER-OK")


def test_domain_example_runs_as_written():
    run_readme_block("domain-example", "\nassert fake_t.shape == (1297, 3, 8, 8) and fake_t.abs().max() <= 1"
                     "\nassert tr.step == 20 and wd.step == 20 and 0 <= wd.accuracy(test_x, test_y) <= 1",
                     "DOMAIN-OK")
