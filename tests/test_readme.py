"""The README's Python API example runs as written, and the README's commands are the ones CI uses."""
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_api_example_runs_as_written(capsys):
    block = README.split("<!-- api-example")[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    assert len(code.strip().splitlines()) <= 11  # the promise: the API in ten lines (plus the import)
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["x"].shape == (1000, 2) and torch.isfinite(ns["x"]).all()
    assert ns["trainer"].step == 100 and len(ns["trainer"].history) == 100
    assert ns["scores"].shape == (10,)
    assert "critic_loss" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
