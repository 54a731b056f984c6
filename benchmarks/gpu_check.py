"""`make gpu-check`: everything a short GPU lease should measure, in one command, leaving data even if cut short.

    python3 benchmarks/gpu_check.py            # a machine with an NVIDIA GPU: <= 8 min wall, compiles included
    python3 benchmarks/gpu_check.py --smoke    # the same phases on CPU with tiny sizes (CI runs this: harness check)

The GPU machine is assumed to have torch, triton, pytest, pytest-benchmark, hypothesis, safetensors, tqdm,
matplotlib and Pillow for `python3`, and no network. Phases, each a subprocess with its own timeout (at its
deadline it gets SIGINT, so pytest-benchmark still writes what it measured, then SIGKILL). They run in the order
install, steps-toy, steps-gp-dcgan, steps-clip-dcgan, gpu-tests, kernels: the lease's main result first.

  install     `pip install --no-deps --no-build-isolation --no-index -e .`; if that fails (an old setuptools, a
              read-only or externally managed Python), fastwgan/ is copied to a temporary site folder with
              kernels/ as fastwgan/kernels (pyproject maps the package `fastwgan.kernels` to kernels/) and the
              children run from there. Either way a child then checks that `fastwgan.kernels` imports (on CUDA:
              that the Triton kernels are live, else every "fastwgan" number would time the plain twins).
  gpu-tests   `pytest -m gpu tests -q`: the CUDA equivalence tests.
  kernels     benchmarks/test_bench_kernels.py, profile gpu-check (smoke: profile smoke, compiled providers left out).
  steps-*     benchmarks/test_bench_steps.py, profile gpu-check, one phase per case (DCGAN-32 b64 wgan-gp with a
              layer-norm critic, wgan-clip with a batch-norm critic, the toy MLP 512 b256), providers loop /
              reference / compiled_reference / fastwgan / fastwgan_cudagraphs, `--compile-cache cold+warm`.
              Smoke: the DCGAN phases run loop and reference only (a cold DCGAN compile takes 40-80 s on 2 CPU
              cores); the toy phase runs loop and fastwgan, separately and interleaved (test_step_vs_loop).

After every phase, under benchmarks/results/<machine>/ (machine from the GPU's name, e.g. nvidia-h200; smoke:
benchmarks/results-smoke/cpu-smoke/, not committed): the phase's pytest-benchmark JSON, `<run>-summary.md`
(machine, versions, commit, phase outcomes, the tables of benchmarks/report.py) and `<run>.log` (every child's
output); on a GPU the docs/benchmarks.md block between `<!-- gpu-check:begin -->` and `<!-- gpu-check:end -->` is
rewritten (smoke never touches it). Exit status: 0 when every phase passed, 1 otherwise.

Only the standard library (and benchmarks/report.py) in this process: torch is imported by the children only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import report  # benchmarks/report.py: this script's folder is sys.path[0]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
README_BEGIN, README_END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"
PHASE_NAMES = ("gpu-tests", "kernels", "steps-gp-dcgan", "steps-clip-dcgan", "steps-toy")
GRACE_S = 20  # after SIGINT at a phase's deadline: time for pytest to write its JSON before SIGKILL

# Runs in the children's environment (from the repository root, as the phases do): which fastwgan, which kernels.
VERIFY = r"""
import json, platform, sys
out = {"python": platform.python_version(), "executable": sys.executable}
try:
    import torch
    out.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        out.update(device_name=torch.cuda.get_device_name(0), device_count=torch.cuda.device_count())
    try:
        import triton
        out["triton"] = triton.__version__
    except ImportError:
        out["triton"] = None
    import fastwgan, fastwgan.kernels
    from fastwgan import ops
    out.update(fastwgan=fastwgan.__file__, kernels=fastwgan.kernels.__file__, has_triton=ops.HAS_TRITON,
               interpret=ops.INTERPRET)
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
print("VERIFY " + json.dumps(out))
"""


# ---------------------------------------------------------------------------------------------------------------
# log
# ---------------------------------------------------------------------------------------------------------------
class Log:
    """Timestamped progress lines `[HH:MM:SS +elapsed] ...` on stdout and in the log file; child output to the file."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.file = None
        self.pending: list[str] = []  # lines written before the log file exists

    def open(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)
        for line in self.pending:
            self.file.write(line + "\n")
        self.pending.clear()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, msg: str) -> None:
        line = f"[{datetime.now():%H:%M:%S} +{_dur(self.elapsed())}] {msg}"
        print(line, flush=True)
        self.raw(line)

    def raw(self, line: str) -> None:
        if self.file:
            self.file.write(line + "\n")
        else:
            self.pending.append(line)


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s"


# ---------------------------------------------------------------------------------------------------------------
# phases
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    cmd: list[str]
    timeout: float
    json: Path | None = None  # the phase's --benchmark-json
    status: str = "not run"  # passed | failed (rc N) | timed out | skipped (...) | not run
    seconds: float | None = None
    summary: str = ""  # pytest's last line
    tail: list[str] = field(default_factory=list)


def _child_preexec() -> None:
    # A child started from a background job may inherit SIGINT ignored; reset it, so SIGINT at a deadline raises
    # KeyboardInterrupt in pytest, which then still writes its benchmark JSON.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_phase(phase: Phase, env: dict, log: Log, budget_left: float) -> None:
    timeout = min(phase.timeout, budget_left)
    if timeout < 10:
        phase.status = "skipped (time budget spent)"
        log(f"{phase.name}: skipped, {_dur(budget_left)} of the time budget left")
        return
    log(f"{phase.name}: start (timeout {_dur(timeout)}): {' '.join(phase.cmd)}")
    t = time.monotonic()
    proc = subprocess.Popen(
        phase.cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=_child_preexec,
    )
    lines: list[str] = []

    def pump():
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            log.raw(f"    {line}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out, next_beat = False, 30.0
    try:
        while proc.poll() is None:
            waited = time.monotonic() - t
            if waited > timeout:
                timed_out = True
                log(f"{phase.name}: timeout after {_dur(waited)}: SIGINT (pytest writes what it measured)")
                _signal_group(proc, signal.SIGINT)
                try:
                    proc.wait(GRACE_S)
                except subprocess.TimeoutExpired:
                    log(f"{phase.name}: still running {GRACE_S} s after SIGINT: SIGKILL")
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
                break
            if waited > next_beat:
                last = next((x for x in reversed(lines) if x.strip()), "(none yet)")
                log(f"{phase.name}: running {_dur(waited)}; last output line: {last[:120]}")
                next_beat += 30.0
            time.sleep(0.5)
    finally:  # leftovers of the child's session (compile workers) would hold the pipe open
        _signal_group(proc, signal.SIGKILL)
        reader.join(5)
    phase.seconds = time.monotonic() - t
    phase.tail = lines[-40:]
    phase.summary = next(
        (
            x.strip("= ")
            for x in reversed(lines)
            if re.search(
                r"\d+ (passed|failed|error|skipped|"
                r"deselected)",
                x,
            )
        ),
        "",
    )
    rc = proc.returncode
    if timed_out:
        phase.status = "timed out"
    elif rc == 0:
        phase.status = "passed"
    else:
        phase.status = f"failed (rc {rc})"
    log(f"{phase.name}: {phase.status} in {_dur(phase.seconds)}" + (f": {phase.summary}" if phase.summary else ""))
    if phase.status != "passed":
        for line in phase.tail[-25:]:
            print(f"    {line}", flush=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------------------------------
def _verify(cmd: list[str], env: dict, log: Log) -> dict:
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    for line in (r.stdout + r.stderr).splitlines():
        log.raw(f"    {line}")
    found = [line[len("VERIFY ") :] for line in r.stdout.splitlines() if line.startswith("VERIFY ")]
    return json.loads(found[-1]) if found else {"error": f"verify exited {r.returncode}: {r.stderr[-500:]}"}


def _copy_site(site: Path) -> tuple[Path, Path]:
    """fastwgan/ and kernels/ (as fastwgan/kernels) under `site`, plus runner scripts whose folder (sys.path[0])
    is `site`: run from the repository root, `python -m pytest` would import ./fastwgan, which has no kernels/."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    if site.exists():
        shutil.rmtree(site)
    shutil.copytree(REPO / "fastwgan", site / "fastwgan", ignore=ignore)
    shutil.copytree(REPO / "kernels", site / "fastwgan" / "kernels", ignore=ignore)
    runner = site / "run_pytest.py"
    runner.write_text("import sys\nimport pytest\n\nsys.exit(pytest.main(sys.argv[1:]))\n")
    verify = site / "verify.py"
    verify.write_text(VERIFY)
    return runner, verify


def install(mode: str, python: str, env: dict, site: Path, log: Log) -> tuple[list[str] | None, dict, dict]:
    """Make fastwgan (with fastwgan.kernels) importable for the children.

    Returns (pytest command prefix or None on failure, the children's environment, the verify report)."""
    pytest_cmd = [python, "-m", "pytest"]
    if mode in ("auto", "pip"):
        cmd = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-e", "."]
        log(f"install: {' '.join(cmd)}")
        try:
            r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
            ok, said = r.returncode == 0, (r.stdout + r.stderr).strip().splitlines()
            for line in said:
                log.raw(f"    {line}")
        except subprocess.TimeoutExpired:
            ok, said = False, ["timed out after 180 s"]
        info = (
            _verify([python, "-c", VERIFY], env, log)
            if ok
            else {"error": "pip install failed: " + (said[-1] if said else "?")}
        )
        if ok and "error" not in info:
            return pytest_cmd, env, {**info, "install": "pip -e"}
        log(
            f"install: pip route unusable ({info.get('error', '?')[:200]})"
            + ("; falling back to a copied site folder" if mode == "auto" else "")
        )
        if mode == "pip":
            return None, env, info
    if mode == "none":
        info = _verify([python, "-c", VERIFY], env, log)
        return (None if "error" in info else pytest_cmd), env, {**info, "install": "none (as found)"}
    runner, verify = _copy_site(site)
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))}
    log(
        f"install: copied fastwgan/ and kernels/ (as fastwgan/kernels) to {site}; children run {runner.name} from there"
    )
    info = _verify([python, str(verify)], env, log)
    return (None if "error" in info else [python, str(runner)]), env, {**info, "install": f"copy to {site}"}


# ---------------------------------------------------------------------------------------------------------------
# summary and README
# ---------------------------------------------------------------------------------------------------------------
def machine_slug(info: dict, smoke: bool) -> str:
    if smoke:
        return "cpu-smoke"
    return re.sub(r"[^a-z0-9]+", "-", (info.get("device_name") or "gpu").lower()).strip("-")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write_summary(
    path: Path, run: str, args, info: dict, phases: list[Phase], log: Log, readme: Path | None, finished: bool
) -> None:
    files = [p.json for p in phases if p.json is not None and p.json.exists()]
    rows = report.load_rows(files=files) if files else []
    commit = _git("rev-parse", "--short=10", "HEAD") + (
        " (dirty)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    )
    device = info.get("device_name") or "CPU"
    versions = (
        f"torch {info.get('torch')}, triton {info.get('triton')}, CUDA {info.get('cuda') or '–'}, "
        f"Python {info.get('python')}"
    )
    state = f"finished in {_dur(log.elapsed())}" if finished else f"in progress ({_dur(log.elapsed())} so far)"
    cmd = "make gpu-check" + (" SMOKE=1" if args.smoke else "")
    head = [
        f"# gpu-check {run}",
        "",
        f"- machine: {device}; {versions}; commit {commit}; install: {info.get('install')}",
        f"- command: `{cmd}` (profile {args.profile}, compile cache {args.compile_cache}); {state} "
        f"(budget {_dur(args.budget)})",
        "",
        "| phase | status | seconds | pytest |",
        "|---|---|---|---|",
    ]
    head += [
        f"| {p.name} | {p.status} | {'' if p.seconds is None else f'{p.seconds:.0f}'} | {p.summary} |" for p in phases
    ]
    body = ["", report.markdown(rows) if rows else "No benchmark results yet."]
    path.write_text("\n".join(head + body) + "\n")
    if readme is None or not rows:
        return
    dev_rows = report.latest([r for r in rows if r["device"] == "cuda"]) or report.latest(rows)
    table = report.headline_table(dev_rows, [r for r in rows if r["device"] == dev_rows[0]["device"]])
    tests = next((p for p in phases if p.name == "gpu-tests"), None)
    block = [
        f"{device}; {versions}; commit {commit}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; `{cmd}` "
        f"{state}"
        + (
            f"; `pytest -m gpu tests`: {tests.status}" + (f" ({tests.summary})" if tests.summary else "")
            if tests
            else ""
        )
        + ".",
        "",
    ]
    block += table or ["No step results yet."]
    where = path.parent.relative_to(REPO) if path.parent.is_relative_to(REPO) else path.parent
    block += ["", f"Kernel tables, log and raw JSON: `{where}/{run}*`."]
    report.update_readme(readme, "\n".join(block) + "\n", README_BEGIN, README_END)


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------
def build_phases(args, pytest_cmd: list[str], out: Path, run: str) -> list[Phase]:
    common = [
        "--benchmark-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--profile",
        args.profile,
        "--bench-device",
        "cpu" if args.smoke else "cuda",
    ]
    if args.threads:
        common += ["--bench-threads", str(args.threads)]
    # Phase timeouts catch hangs; they never time anything. The smoke runs on shared CPU machines (CI, a laptop
    # running the test suite beside it): its cold toy compile took 70 s on a 2-core machine with `make test`
    # running alongside and its old 160 s phase limit killed it, so the smoke's limits are 6x the GPU's.
    t = 1.0 if not args.smoke else 6.0
    # Order: the step cases first (the lease's main result: fastwgan / loop), then the CUDA tests, then kernels.
    phases = []
    # Smoke: the DCGAN phases eager only; the toy phase the loop and fastwgan, separately and interleaved (one
    # compiled model, compiled cold then warm: enough to keep every code path alive on 2 CPU cores).
    eager_only = " and (loop or reference) and not compiled and not vs_loop" if args.smoke else ""
    toy_smoke = " and (loop or fastwgan) and not cudagraphs" if args.smoke else ""
    for name, select, timeout in (
        ("steps-toy", "toy", 80),
        ("steps-gp-dcgan", "gp and px", 130),
        ("steps-clip-dcgan", "clip", 110),
    ):
        js = out / f"{run}-{name}.json"
        k = select + (toy_smoke if name == "steps-toy" else eager_only)
        phases.append(
            Phase(
                name,
                [
                    *pytest_cmd,
                    "benchmarks/test_bench_steps.py",
                    *common,
                    "-k",
                    k,
                    f"--compile-cache={args.compile_cache}",
                    f"--benchmark-json={js}",
                ],
                timeout * t,
                json=js,
            )
        )
    phases.append(Phase("gpu-tests", [*pytest_cmd, "-m", "gpu", "tests", "-q", "-p", "no:cacheprovider"], 100 * t))
    kernels_k = ["-k", "not compiled_reference"] if args.smoke else []
    phases.append(
        Phase(
            "kernels",
            [
                *pytest_cmd,
                "benchmarks/test_bench_kernels.py",
                *common,
                *kernels_k,
                f"--benchmark-json={out / f'{run}-kernels.json'}",
            ],
            50 * t,
            json=out / f"{run}-kernels.json",
        )
    )
    return phases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: check the harness (never the docs)")
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results root (default: benchmarks/results; smoke: benchmarks/results-smoke); files go "
        "to <root>/<machine>/",
    )
    ap.add_argument("--budget", type=float, default=None, help="wall-clock budget in s (default 480; smoke 2400)")
    ap.add_argument(
        "--install",
        choices=("auto", "pip", "copy", "none"),
        default=None,
        help="auto: pip -e, else the copied site folder (default on GPU); copy (default for smoke: "
        "leaves the environment untouched); none: use fastwgan as installed",
    )
    ap.add_argument(
        "--compile-cache",
        default="cold+warm",
        choices=("as-found", "cold", "warm", "cold+warm"),
        help="the step phases' --compile-cache (benchmarks/conftest.py)",
    )
    ap.add_argument("--threads", type=int, default=None, help="--bench-threads for the benchmarks (smoke: 1)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the children (default: this one)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the gpu-check block of docs/benchmarks.md")
    ap.add_argument(
        "--timeout",
        action="append",
        default=[],
        metavar="PHASE=S",
        help="override a phase's timeout, e.g. --timeout gpu-tests=200 (repeatable)",
    )
    args = ap.parse_args(argv)
    args.profile = "smoke" if args.smoke else "gpu-check"
    args.budget = args.budget or (2400.0 if args.smoke else 480.0)
    args.install = args.install or ("copy" if args.smoke else "auto")
    if args.smoke and args.threads is None:
        args.threads = 1
    overrides = {}
    for item in args.timeout:
        name, _, seconds = item.partition("=")
        if name not in PHASE_NAMES or not seconds.replace(".", "", 1).isdigit():
            ap.error(f"--timeout {item!r}: expected PHASE=SECONDS with PHASE one of {', '.join(PHASE_NAMES)}")
        overrides[name] = float(seconds)

    log = Log()
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # never time the Triton interpreter
    env.setdefault("PYTHONUNBUFFERED", "1")
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="fastwgan-gpu-check-") as tmp:
        log(
            f"gpu-check{' (smoke)' if args.smoke else ''}: {args.python}, budget {_dur(args.budget)}, "
            f"install {args.install}"
        )
        t = time.monotonic()
        # The children compile in caches of their own, never the user's: a phase killed at its deadline mid-compile
        # can leave truncated artifacts behind (zero-byte .so files that then broke every later compile of the
        # same graph). TMPDIR too: inductor keeps its precompiled C++ headers under the temp folder.
        private = Path(tmp) / "compile-cache"
        env.update(
            TORCHINDUCTOR_CACHE_DIR=str(private / "inductor"),
            TRITON_CACHE_DIR=str(private / "triton"),
            TMPDIR=str(private / "tmp"),
        )
        (private / "tmp").mkdir(parents=True)
        pytest_cmd, env, info = install(args.install, args.python, env, Path(tmp) / "site", log)
        install_phase = Phase(
            "install", [], 0, status="passed" if pytest_cmd else "failed", seconds=time.monotonic() - t
        )
        phases.append(install_phase)
        log(f"install: {install_phase.status}: {json.dumps(info)}")
        if pytest_cmd and not args.smoke:
            if not info.get("cuda_available"):
                log(
                    "install: no CUDA device visible to torch; on a machine without a GPU run "
                    "`make gpu-check SMOKE=1` (the CPU harness check)"
                )
                pytest_cmd, install_phase.status = None, "failed (no CUDA)"
            elif not info.get("has_triton") or info.get("interpret"):
                log(
                    "install: fastwgan's Triton kernels are not live (has_triton=%s, interpret=%s): the fastwgan "
                    "numbers would time the plain twins" % (info.get("has_triton"), info.get("interpret"))
                )
                pytest_cmd, install_phase.status = None, "failed (kernels not live)"

        machine = machine_slug(info, args.smoke)
        root = args.results or (HERE / ("results-smoke" if args.smoke else "results"))
        out = root / machine
        out.mkdir(parents=True, exist_ok=True)
        run = f"gpu-check-{datetime.now():%Y%m%d-%H%M%S}"
        log.open(out / f"{run}.log")
        readme = None if (args.smoke or args.no_readme) else REPO / "docs" / "benchmarks.md"
        summary = out / f"{run}-summary.md"
        log(f"results: {out}/{run}*")
        if pytest_cmd:
            phases += build_phases(args, pytest_cmd, out, run)
            for name, seconds in overrides.items():
                for p in phases:
                    if p.name == name:
                        p.timeout = seconds
        write_summary(summary, run, args, info, phases, log, None, finished=False)
        for phase in phases[1:]:
            run_phase(phase, env, log, args.budget - log.elapsed() - 5)
            write_summary(summary, run, args, info, phases, log, readme, finished=False)
        write_summary(summary, run, args, info, phases, log, readme, finished=True)
    ok = all(p.status == "passed" for p in phases)
    log(f"gpu-check {'passed' if ok else 'FAILED'}: " + ", ".join(f"{p.name} {p.status}" for p in phases))
    log(f"summary: {summary}" + (f"; docs/benchmarks.md block updated ({README_BEGIN})" if readme else ""))
    log(f"wall time {_dur(log.elapsed())} ({log.elapsed():.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
