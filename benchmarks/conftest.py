"""Benchmark set-up: profiles, device, timers, memory, copy bandwidth, compile cache, machine info (STYLE habit 10).

Run (never collected by a plain `pytest`: testpaths = ["tests"]):

    pytest benchmarks --benchmark-only [--profile NAME] [--bench-device auto|cpu|cuda]
           [--compile-cache as-found|cold|warm|cold+warm]
           [--benchmark-storage=benchmarks/results --benchmark-save=NAME]

Profiles (`--profile` or FASTWGAN_BENCH_PROFILE; default: full on CUDA, quick on CPU):
  quick      small sizes for a 2-core CPU (whole suite < 10 min): parameter counts 1e4..1e6, GP batches 16 and 64
             at 32 px, steps at 32 px with a reduced DCGAN width (32 and 16 instead of 64) and batches 16 and 32;
  full       the issue's ranges for a GPU: parameter counts 1e4..1e8, GP batches 16..512 at 32 and 64 px, steps at
             32 and 64 px with DCGAN width 64 and batches 64 and 256, plus width 32 and 128 at 32 px, batch 64;
  cpu        the speed issue's four step cases at their real sizes (kernels as quick): DCGAN-32 width 64 batch 64
             wgan-clip with a batch-norm critic and wgan-gp with a layer-norm critic (8 rounds each, ~1-3 s per
             iteration on a 2-core CPU), and the WGAN-GP authors' 2-D toy MLP (3 hidden layers, width 128 and
             512, batch 256; 20 rounds);
  gpu-check  what `make gpu-check` runs on a GPU lease (minutes, compiles included): kernels at 1e5..1e7
             parameters and GP batches 64 and 256, steps DCGAN-32 b64 clip-BN and gp-LN and the toy MLP 512 b256;
  smoke      tiny sizes for `make gpu-check SMOKE=1` on CPU (harness check, timings meaningless).

Compile cache (`--compile-cache`, recorded per compiled provider in extra_info["compile_cache"]):
  as-found   (default) whatever inductor's on-disk cache holds (a second compiled provider may find it warm);
  cold       each compiled provider compiles in a fresh empty cache (new TORCHINDUCTOR_CACHE_DIR and
             TRITON_CACHE_DIR, inductor's in-memory caches cleared, torch._dynamo.reset()): first use on a new
             machine;
  warm       an untimed compile of the same case first fills the on-disk cache, then dynamo and the in-memory
             caches are reset and the timed first call reads the cache: a second run of the same program;
  cold+warm  cold, then (after the timed rounds) the warm first call again in that same cache: both in one run
             (`compile_s` cold, `compile_warm_s` warm).
What no mode resets is per process: the compile worker pool's start and the hashing of torch's sources fall on
the first compiled provider of a pytest process, and the Triton JIT's in-process cache of fastwgan's own kernels
is never cleared (a second provider in the same process does not recompile them).

Shared helpers are fixtures here (no path hacks, no package): `bench` (device, profile, sync, timer and
memory helpers), `copy_bandwidth` (measured once per session), `plain_loop` (the `loop` provider, plain_loop.py).
Tests are parametrised per profile by `pytest_generate_tests`; every case id starts with the device type, so stored
runs of different devices never share a benchmark name (a regression comparison across devices finds nothing to
compare instead of passing).
"""

from __future__ import annotations

import importlib.util
import os
import re
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# The Triton interpreter is for correctness, never for speed: with TRITON_INTERPRET=1 the "fastwgan" provider
# would time interpreted kernels. It is read when fastwgan.kernels is imported, so drop it before that happens.
_INTERPRET_DROPPED = os.environ.pop("TRITON_INTERPRET", None) not in (None, "", "0")

import torch  # noqa: E402

import fastwgan  # noqa: E402
from fastwgan import ops  # noqa: E402
from fastwgan.core.run import environment  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COMPILE_CACHE_MODES = ("as-found", "cold", "warm", "cold+warm")


# ---------------------------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCase:
    """One generator-iteration benchmark.

    Fields:
        preset: "wgan-clip" or "wgan-gp" (TrainConfig.preset).
        image_size: DCGAN image size in px (3 channels); None for the 2-D toy.
        batch: batch size.
        width: DCGAN width (channels at the widest resolution), or the toy MLP's hidden width.
        model: "dcgan", or "mlp": the WGAN-GP authors' 2-D toy (3 hidden ReLU layers, latent 2, lambda 0.1,
            Adam betas (0.5, 0.9), 25-gaussians data).
        critic_norm: the critic's normalisation, "none" | "batch" | "layer".
        rounds: timed iterations (None: the profile's step_rounds).
    """

    preset: str
    image_size: int | None
    batch: int
    width: int
    model: str = "dcgan"
    critic_norm: str = "none"
    rounds: int | None = None

    @property
    def id(self) -> str:
        loss = self.preset.removeprefix("wgan-")
        if self.model == "mlp":
            return f"{loss}-toy-mlp{self.width}-b{self.batch}"
        norm = {"none": "", "batch": "-bn", "layer": "-ln"}[self.critic_norm]
        return f"{loss}-{self.image_size}px-b{self.batch}-w{self.width}{norm}"


def _steps(sizes_batches_widths) -> tuple[StepCase, ...]:
    return tuple(StepCase(p, s, b, w) for p in ("wgan-clip", "wgan-gp") for s, b, w in sizes_batches_widths)


def _issue_dcgan(width: int, batch: int, rounds: int | None = None) -> tuple[StepCase, ...]:
    """The speed issue's DCGAN-32 pair: WGAN with a batch-norm critic (as in the WGAN paper), WGAN-GP with layer
    norm (batch norm breaks the per-sample penalty)."""
    return (
        StepCase("wgan-clip", 32, batch, width, critic_norm="batch", rounds=rounds),
        StepCase("wgan-gp", 32, batch, width, critic_norm="layer", rounds=rounds),
    )


def _toy(width: int, batch: int, rounds: int | None = None) -> StepCase:
    return StepCase("wgan-gp", None, batch, width, model="mlp", rounds=rounds)


@dataclass(frozen=True)
class Profile:
    name: str
    clip_numels: tuple[int, ...]  # parameter counts for clipping and the fused optimizer
    gp_cases: tuple[tuple[int, int], ...]  # (batch, image size) for GP interpolation and penalty
    step_cases: tuple[StepCase, ...]
    kernel_max_time: float  # pytest-benchmark max_time per kernel benchmark (s)
    kernel_min_rounds: int
    step_rounds: int  # timed generator iterations per step benchmark
    step_warmup: int  # untimed iterations after the compiling first call
    copy_numel: int  # fp32 elements of the copy-bandwidth probe


PROFILES = {
    "quick": Profile(
        name="quick",
        clip_numels=(10**4, 10**5, 10**6),
        gp_cases=((16, 32), (64, 32)),
        # Reduced DCGAN width (default 64) so that a 2-core CPU runs the whole suite in < 10 min: batch axis at
        # width 32 (16, 32), parameter axis at batch 16 (width 16, 32).
        step_cases=_steps(((32, 16, 32), (32, 32, 32), (32, 16, 16))),
        kernel_max_time=0.1,
        kernel_min_rounds=5,
        step_rounds=10,
        step_warmup=1,
        copy_numel=2**24,
    ),
    "full": Profile(
        name="full",
        clip_numels=(10**4, 10**5, 10**6, 10**7, 10**8),
        gp_cases=tuple((b, s) for s in (32, 64) for b in (16, 64, 256, 512)),
        step_cases=_steps(((32, 64, 64), (32, 256, 64), (64, 64, 64), (64, 256, 64), (32, 64, 32), (32, 64, 128))),
        kernel_max_time=1.0,
        kernel_min_rounds=10,
        step_rounds=20,
        step_warmup=3,
        copy_numel=2**28,
    ),
    "cpu": Profile(
        name="cpu",
        clip_numels=(10**4, 10**5, 10**6),
        gp_cases=((16, 32), (64, 32)),
        step_cases=(*_issue_dcgan(64, 64, rounds=8), _toy(128, 256, rounds=20), _toy(512, 256, rounds=20)),
        kernel_max_time=0.1,
        kernel_min_rounds=5,
        step_rounds=10,
        step_warmup=1,
        copy_numel=2**24,
    ),
    "gpu-check": Profile(
        name="gpu-check",
        clip_numels=(10**5, 10**6, 10**7),
        gp_cases=((64, 32), (256, 32)),
        step_cases=(*_issue_dcgan(64, 64), _toy(512, 256)),
        kernel_max_time=0.25,
        kernel_min_rounds=5,
        step_rounds=30,
        step_warmup=3,
        copy_numel=2**26,
    ),
    "smoke": Profile(
        name="smoke",
        clip_numels=(10**4,),
        gp_cases=((8, 32),),
        step_cases=(*_issue_dcgan(8, 8), _toy(32, 64)),
        kernel_max_time=0.01,
        kernel_min_rounds=2,
        step_rounds=2,
        step_warmup=0,
        copy_numel=2**20,
    ),
}


def pytest_addoption(parser):
    group = parser.getgroup("fastwgan benchmarks")
    group.addoption(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="benchmark sizes: quick (2-core CPU, < 10 min), full (GPU), cpu (the issue's four step "
        "cases), gpu-check (a GPU lease), smoke (tiny). Default: $FASTWGAN_BENCH_PROFILE, else "
        "full on CUDA and quick on CPU.",
    )
    group.addoption(
        "--compile-cache",
        choices=COMPILE_CACHE_MODES,
        default="as-found",
        help="inductor cache for the compiled providers' first call: as-found (default), cold (fresh "
        "empty cache per provider), warm (filled by an untimed compile first), cold+warm (both)",
    )
    group.addoption(
        "--bench-device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="device to benchmark (default: $FASTWGAN_BENCH_DEVICE, else cuda when available)",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: $FASTWGAN_BENCH_THREADS, else torch's default). On a "
        "CPU shared with other busy processes, OpenMP barriers wait for descheduled threads "
        "(milliseconds per op): 1 thread then measures the code, not the scheduler.",
    )


def _device(config) -> torch.device:
    name = config.getoption("--bench-device") or os.environ.get("FASTWGAN_BENCH_DEVICE", "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--bench-device cuda: CUDA is not available on this machine")
    return torch.device(name)


def _profile(config) -> Profile:
    name = config.getoption("--profile") or os.environ.get("FASTWGAN_BENCH_PROFILE")
    if name is None:
        name = "full" if _device(config).type == "cuda" else "quick"
    if name not in PROFILES:
        raise pytest.UsageError(f"FASTWGAN_BENCH_PROFILE must be one of {sorted(PROFILES)}, got {name!r}")
    return PROFILES[name]


def _numel_id(n: int) -> str:
    e = len(str(n)) - 1
    return f"1e{e}" if n == 10**e else str(n)


def pytest_generate_tests(metafunc):
    cfg = metafunc.config
    prof, dev = _profile(cfg), _device(cfg).type
    if "clip_numel" in metafunc.fixturenames:
        metafunc.parametrize("clip_numel", prof.clip_numels, ids=[f"{dev}-{_numel_id(n)}" for n in prof.clip_numels])
    if "gp_case" in metafunc.fixturenames:
        metafunc.parametrize("gp_case", prof.gp_cases, ids=[f"{dev}-b{b}-{s}px" for b, s in prof.gp_cases])
    if "step_case" in metafunc.fixturenames:
        metafunc.parametrize("step_case", prof.step_cases, ids=[f"{dev}-{c.id}" for c in prof.step_cases])
    if "domain_case" in metafunc.fixturenames:  # two-domain steps: the module's DOMAIN_CASES, every profile
        cases = metafunc.module.DOMAIN_CASES
        metafunc.parametrize("domain_case", cases, ids=[f"{dev}-{c.id}" for c in cases])


# ---------------------------------------------------------------------------------------------------------------
# Timing: on CUDA the timer synchronises, so a pytest-benchmark round (many launches) ends when the GPU is done
# ---------------------------------------------------------------------------------------------------------------
def cuda_sync_timer() -> float:
    """perf_counter after draining the CUDA queue (pytest-benchmark timer for CUDA runs)."""
    torch.cuda.synchronize()
    return time.perf_counter()


def pytest_collection_modifyitems(config, items):
    prof, dev = _profile(config), _device(config)
    opts = dict(max_time=prof.kernel_max_time, min_rounds=prof.kernel_min_rounds)
    if dev.type == "cuda":
        opts["timer"] = cuda_sync_timer
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.benchmark(**opts))


# ---------------------------------------------------------------------------------------------------------------
# Peak memory: CUDA max_memory_allocated; CPU peak resident set size (VmHWM) reset through /proc/self/clear_refs
# ---------------------------------------------------------------------------------------------------------------
def _proc_status_kib(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


class PeakMemory:
    """Peak memory over a block of code, measured the same way for every provider on a device.

    CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats (tensors of the caching allocator).
    CPU (Linux): the process's peak resident set size VmHWM, reset by writing 5 to /proc/self/clear_refs; the
    result is the peak RSS of the whole process (Python, torch, model, data, autograd buffers) and `delta` is
    the growth over the RSS at the start. Without /proc: getrusage's ru_maxrss, which cannot be reset (the
    peak since the process started; `kind` says so).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = self.start = None
        if device.type == "cuda":
            self.kind = "cuda max_memory_allocated"
        elif _proc_status_kib("VmHWM") is not None and os.access("/proc/self/clear_refs", os.W_OK):
            self.kind = "cpu peak RSS (VmHWM reset via /proc/self/clear_refs)"
        else:
            self.kind = "cpu ru_maxrss (process lifetime, not reset)"

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        elif self.kind.startswith("cpu peak RSS"):
            Path("/proc/self/clear_refs").write_text("5")
            self.start = _proc_status_kib("VmRSS") * 1024
        else:
            self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        elif self.kind.startswith("cpu peak RSS"):
            self.peak = _proc_status_kib("VmHWM") * 1024
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return False

    def info(self) -> dict:
        return {"peak_mem_bytes": self.peak, "peak_mem_delta_bytes": self.peak - self.start, "peak_mem_kind": self.kind}


# ---------------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------------
class Bench:
    """What every benchmark needs: device, profile, compile-cache mode, sync, skip reasons, peak memory."""

    def __init__(self, device: torch.device, profile: Profile, compile_cache: str = "as-found"):
        self.device, self.profile, self.compile_cache = device, profile, compile_cache

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def require_triton(self) -> None:
        """Skip (with the reason) where the fastwgan Triton kernels cannot run at speed."""
        if self.device.type != "cuda":
            pytest.skip(
                "fastwgan Triton kernels run compiled only on CUDA; on CPU they need the Triton "
                "interpreter (TRITON_INTERPRET=1), whose timings mean nothing"
            )
        if not ops.HAS_TRITON:
            pytest.skip("triton is not installed")

    def require_cuda(self, why: str) -> None:
        if self.device.type != "cuda":
            pytest.skip(f"CUDA only: {why}")

    def peak_memory(self) -> PeakMemory:
        return PeakMemory(self.device)

    def median_time(self, fn, reps: int, warmup: int = 2) -> float:
        """Median wall time of fn() (synchronised), for probes outside pytest-benchmark."""
        for _ in range(warmup):
            fn()
        ts = []
        for _ in range(reps):
            self.sync()
            t = time.perf_counter()
            fn()
            self.sync()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)


@pytest.fixture(scope="session")
def bench(request) -> Bench:
    return Bench(_device(request.config), _profile(request.config), request.config.getoption("--compile-cache"))


@pytest.fixture(scope="session")
def plain_loop():
    """benchmarks/plain_loop.py (the `loop` provider), loaded by path: benchmarks/ is not a package."""
    spec = importlib.util.spec_from_file_location("fastwgan_bench_plain_loop", HERE / "plain_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def copy_bandwidth(bench) -> float:
    """Measured copy bandwidth in GB/s (1e9 bytes/s): dst.copy_(src) of fp32 buffers, bytes read + written.

    The ceiling the memory-bound kernels are compared with (`frac_copy_bw` in extra_info). On CPU the probe is
    64 MiB, larger than the caches, so small kernels that stay in cache can exceed it (a fraction above 1).
    """
    n = bench.profile.copy_numel
    src = torch.randn(n, device=bench.device)
    dst = torch.empty_like(src)
    t = bench.median_time(lambda: dst.copy_(src), reps=20, warmup=3)
    gbps = 2 * 4 * n / t / 1e9
    request_cache["copy_gbps"] = gbps
    return gbps


request_cache: dict = {}  # values measured during the session that the machine-info hook adds when saving


# ---------------------------------------------------------------------------------------------------------------
# Machine info, header
# ---------------------------------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def pytest_configure(config):
    config._fastwgan_load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    threads = config.getoption("--bench-threads") or os.environ.get("FASTWGAN_BENCH_THREADS")
    if threads:
        if int(threads) < 1:
            raise pytest.UsageError(f"--bench-threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))


def pytest_benchmark_update_machine_info(config, machine_info):
    """Device, versions, commit and profile beside pytest-benchmark's own machine info (STYLE habit 10)."""
    dev = _device(config)
    env = environment()
    status = _git("status", "--porcelain", "--untracked-files=no")
    machine_info.update(
        {
            "device": dev.type,
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
            "torch": torch.__version__,
            "triton": env.get("triton"),
            "cuda": torch.version.cuda,
            "fastwgan": fastwgan.__version__,
            "commit": _git("rev-parse", "HEAD"),
            "commit_dirty": bool(status) if status is not None else None,
            "profile": _profile(config).name,
            "compile_cache": config.getoption("--compile-cache"),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_1m_start": getattr(config, "_fastwgan_load_start", None),
            "loadavg_1m_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "copy_gbps": request_cache.get("copy_gbps"),
            "triton_interpret_dropped": _INTERPRET_DROPPED,
        }
    )


def pytest_report_header(config):
    dev, prof = _device(config), _profile(config)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    lines = [
        f"fastwgan benchmarks: profile={prof.name} device={dev.type} ({name}) torch={torch.__version__} "
        f"triton={environment().get('triton')} cuda={torch.version.cuda} cpus={os.cpu_count()} "
        f"torch_threads={torch.get_num_threads()} compile_cache={config.getoption('--compile-cache')} "
        f"load(1m)={getattr(config, '_fastwgan_load_start', None)}"
    ]
    if _INTERPRET_DROPPED:
        lines.append("TRITON_INTERPRET was set: dropped for the benchmarks (interpreter timings mean nothing)")
    return lines
