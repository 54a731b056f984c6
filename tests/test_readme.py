"""The README's and docs pages' Python examples run as written, their links resolve, the README stays a short
front door, and the README's commands are the ones CI uses."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # the front door and one page per use
DOCS = "\n".join(p.read_text() for p in PAGES)
MARKER = re.compile(r"<!-- ([\w-]+): tests/test_readme\.py runs this block")


def readme_block(marker: str) -> str:
    """The ```python block that follows ``<!-- marker`` in README.md or a docs/*.md page (each marker once)."""
    assert DOCS.count(f"<!-- {marker}:") == 1, f"marker {marker!r} must appear exactly once in README.md + docs/"
    return re.search(r"```python\n(.*?)```", DOCS.split(f"<!-- {marker}:")[1], re.S).group(1)


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
    r = subprocess.run(
        [sys.executable, "-c", prefix + readme_block(marker) + check + f"\nprint({tag!r})\n"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=cwd,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert tag in r.stdout
    return r.stdout


def test_api_example_runs_as_written():
    assert len(readme_block("api-example").strip().splitlines()) <= 11  # the promise: the API in ten lines (+ import)
    out = run_readme_block(
        "api-example",
        "\nassert x.shape == (1000, 2) and bool(torch.isfinite(x).all())"
        "\nassert trainer.step == 100 and len(trainer.history) == 100"
        "\nassert scores.shape == (10,)",
        "README-OK",
        prefix="import torch\n",
    )
    assert "critic_loss" in out


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_continue_example_runs_on_a_cli_run(tmp_path):
    # The README's "continue a CLI run from Python" block, as written, on a small run in runs/digits.
    from fastwgan.cli import main

    run = tmp_path / "runs" / "digits"
    assert (
        main(
            [
                "train",
                "--data",
                "digits-train",
                "--steps",
                "2",
                "--batch-size",
                "8",
                "--width",
                "16",
                "--no-progress",
                "--no-compile",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    run_readme_block(
        "continue-example",
        "\nimport json"
        "\nlines = [json.loads(x) for x in open('runs/digits/stats.jsonl')]"
        "\nassert trainer.step == 102 and lines[-1]['step'] == 102, (trainer.step, lines[-1])"
        "\nassert fw.checkpoint.load('runs/digits')['step'] == 102",
        "CONTINUE-OK",
        prefix="import fastwgan as fw\n",
        cwd=tmp_path,
    )


def test_conditional_example_runs_as_written():
    run_readme_block(
        "conditional-example",
        "\nassert sevens.shape == (16, 1, 8, 8) and scores.shape == (4,)"
        "\nassert trainer.step == 20 and trainer.config.num_classes == 10",
        "CONDITIONAL-OK",
    )


def test_loader_example_runs_as_written():
    run_readme_block(
        "loader-example",
        "\nassert trainer.step == 20 and trainer.data_position is not None and len(trainer.history) == 20",
        "LOADER-OK",
    )


@pytest.mark.slow
def test_domain_example_runs_as_written():
    run_readme_block(
        "domain-example",
        "\nassert fake_t.shape == (1297, 3, 8, 8) and fake_t.abs().max() <= 1"
        "\nassert tr.step == 20 and wd.step == 20 and 0 <= wd.accuracy(test_x, test_y) <= 1",
        "DOMAIN-OK",
    )


@pytest.mark.slow
def test_anomaly_example_runs_as_written():
    # docs/anomaly-detection.md's f-AnoGAN block, as written (1000 encoder steps), after a few steps of a small GAN on
    # the normal data it names: `trainer`, `normal` and `x` are what the page's text says they are.
    prefix = (
        "import torch\nimport fastwgan as fw\nnormal = fw.data.load('digits-train')\n"
        "x = fw.data.load('digits-heldout')[:50]\ncfg = fw.TrainConfig.preset('wgan-gp', seed=0)\n"
        "G, D = fw.models.mlp((1, 8, 8), cfg.latent_dim, hidden=64)\n"
        "trainer = fw.Trainer(G, D, cfg).fit(normal, steps=5)\n"
    )
    run_readme_block(
        "anomaly-example",
        "\nassert et.step == 1000 and scores.shape == (50,) and bool(torch.isfinite(scores).all())",
        "ANOMALY-OK",
        prefix=prefix,
    )


def _python_blocks(text: str):
    """(line number, the nearest non-blank line above) of each ```python fence in a page."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("```python"):
            above = next((x for x in reversed(lines[:i]) if x.strip()), "")
            yield i + 1, above


def test_every_python_block_is_run_by_a_test():
    # A page may hold a ```python block only under a marker that a test here runs: no untested Python in the docs.
    tested = set(re.findall(r'run_readme_block\(\s*"([\w-]+)"', Path(__file__).read_text()))
    seen = []
    for page in PAGES:
        for lineno, above in _python_blocks(page.read_text()):
            m = MARKER.search(above)
            assert m, (
                f"{page.relative_to(ROOT)}:{lineno}: a ```python block without a '<!-- NAME: "
                f"tests/test_readme.py runs this block ...' marker above it (make it ```bash/```text if "
                f"it is not Python)"
            )
            assert m.group(1) in tested, f"{page.relative_to(ROOT)}:{lineno}: marker {m.group(1)!r} has no test here"
            seen.append(m.group(1))
    assert len(seen) == len(set(seen)), f"a marker is used twice: {sorted(seen)}"
    assert tested <= set(seen), f"tests whose block is gone: {sorted(tested - set(seen))}"


def test_readme_is_a_short_front_door():
    n = len(README.splitlines())
    assert n <= 260, f"README.md has {n} lines; move details to a docs/ page and link it"


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    out, counts = set(), {}
    for h in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        s = _slug(h)
        out.add(s if s not in counts else f"{s}-{counts[s]}")
        counts[s] = counts.get(s, 0) + 1
    return out


def test_every_relative_link_resolves():
    bad = []
    for page in PAGES:
        text = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", page.read_text(), flags=re.S))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_the_leave_one_class_out_commands_run_as_written(tmp_path, capsys):
    # docs/anomaly-detection.md's newcomer path, command by command through the CLI, with --steps 2 (and eager steps)
    # in place of the page's 2000: every command is accepted as written and prints what the page says it prints.
    import shlex

    from fastwgan.cli import main

    block = re.search(r"```bash\n(.*?)```", DOCS.split("<!-- anomaly-cli:")[1], re.S).group(1)
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith(".venv/bin/")]
    assert [c[1] for c in commands] == ["train", "score", "score", "score", "encode", "score"]
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for argv in commands:
            argv = ["2" if a == "2000" else a for a in argv[1:]]
            if argv[0] in ("train", "encode"):
                argv += ["--no-compile", "--no-progress"]
            assert main(argv) == 0, capsys.readouterr().err
            if argv[0] == "score":
                assert "AUROC" in capsys.readouterr().err
    finally:
        os.chdir(cwd)
