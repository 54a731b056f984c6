"""The README's Python API example runs as written, and the README's commands are the ones CI uses."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_api_example_runs_as_written():
    # Run as a user would: a fresh interpreter without TRITON_INTERPRET (which would route the fast trainer's
    # kernels through the slow Triton interpreter on CPU; the kernel tests cover that path).
    block = README.split("<!-- api-example")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    assert len(code.strip().splitlines()) <= 11  # the promise: the API in ten lines (plus the import)
    check = (
        "\nassert x.shape == (1000, 2) and bool(torch.isfinite(x).all())"
        "\nassert trainer.step == 100 and len(trainer.history) == 100"
        "\nassert scores.shape == (10,)\nprint('README-OK')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", "import torch\n" + code + check], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "README-OK" in r.stdout and "critic_loss" in r.stdout


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_continue_example_runs_on_a_cli_run(tmp_path):
    # The README's "continue a CLI run from Python" block, as written, on a small run in runs/digits.
    from fastwgan.cli import main

    run = tmp_path / "runs" / "digits"
    assert main(["train", "--data", "digits-train", "--steps", "2", "--batch-size", "8", "--width", "16",
                 "--no-progress", "--out", str(run)]) == 0
    block = README.split("<!-- continue-example")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    check = ("\nimport json\nlines = [json.loads(x) for x in open('runs/digits/stats.jsonl')]"
             "\nassert trainer.step == 102 and lines[-1]['step'] == 102, (trainer.step, lines[-1])"
             "\nassert fw.checkpoint.load('runs/digits')['step'] == 102\nprint('CONTINUE-OK')\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", "import fastwgan as fw\n" + code + check], capture_output=True,
                       text=True, env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "CONTINUE-OK" in r.stdout


def test_conditional_example_runs_as_written():
    block = README.split("<!-- conditional-example")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    check = ("\nassert sevens.shape == (16, 1, 8, 8) and scores.shape == (4,)"
             "\nassert trainer.step == 20 and trainer.config.num_classes == 10\nprint('CONDITIONAL-OK')\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "CONDITIONAL-OK" in r.stdout


def test_loader_example_runs_as_written():
    block = README.split("<!-- loader-example")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    check = ("\nassert trainer.step == 20 and trainer.data_position is not None and len(trainer.history) == 20"
             "\nprint('LOADER-OK')\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "LOADER-OK" in r.stdout
