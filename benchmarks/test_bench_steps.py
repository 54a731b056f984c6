"""Step benchmarks: one generator iteration (n_critic = 5 critic updates + 1 generator update).

Cases per profile (conftest.py): WGAN (weight clipping) and WGAN-GP with the DCGAN models (full: 32 and 64 px at
batch 64 and 256 with DCGAN width 64, plus width 32 and 128 at 32 px, batch 64; quick (2-core CPU): 32 px with the
width reduced to 32 (batch 16 and 32) and 16 (batch 16)); the speed issue's cases (profiles cpu and gpu-check):
DCGAN-32 b64 wgan-clip with a batch-norm critic, wgan-gp with a layer-norm critic, and the WGAN-GP authors' 2-D toy
(`models.mlp((2,), latent_dim=2, hidden=W, depth=3)`, batch 256, lambda 0.1, Adam betas (0.5, 0.9), data
`fastwgan.data.toy("25gaussians", N)`).

Providers:
  loop                 benchmarks/plain_loop.py: the plain eager loop as public WGAN / WGAN-GP scripts write it
                       (`G(z).detach()`, `autograd.grad(create_graph=True)`, `torch.optim` with its defaults,
                       `p.data.clamp_` loop), on the same modules, random numbers and normalisation; the bar fastwgan
                       must clear on every device. tests/test_gpu_check.py proves its critic update equals the
                       reference trainer's.
  reference            `fastwgan.ReferenceTrainer`: the eager oracle, written like the papers' Algorithm 1
                       (per-parameter optimizers (foreach off) and clamp loop, `autograd.grad(create_graph=True)`).
  compiled_reference   `fastwgan.Trainer(impl="torch", compile=True)`: the same algorithm as one
                       `torch.compile(fullgraph=True)` graph per step, with every op the plain-PyTorch twin
                       (no custom kernel; inductor fuses the math itself). This stands for the best a user gets
                       from stock PyTorch: the eager step itself cannot be compiled (DESIGN fact 1: compiled
                       regions refuse `autograd.grad(create_graph=True)`, "does not currently support double
                       backward"), so the step has to be rewritten functionally with `torch.func` first, which is
                       what this provider is. It already has fastwgan's flat buffers and device-resident batches,
                       so fastwgan / compiled_reference isolates the hand-written kernels, and fastwgan /
                       reference is the whole library's gain.
  fastwgan             `fastwgan.Trainer(compile=True)`, impl "auto": Triton kernels on CUDA (fused RMSprop +
                       clip, Adam, GP interpolation; the penalty per `fastwgan.gan.trainer.DEFAULT_IMPL`). On CPU "auto"
                       resolves to the same twins as compiled_reference, so there the two must tie (a sanity check
                       of the harness, not a result).
  fastwgan_cudagraphs  `fastwgan.Trainer(compile=True, compile_mode="reduce-overhead")`: the same plus CUDA graphs
                       (CUDA only; skipped on CPU).

Two-domain cases (`DOMAIN_CASES`, every profile; `test_domain_step_vs_loop`): one step of a `fastwgan.uses` trainer,
`fastwgan` (the fast trainer, compiled) and `reference` (its eager oracle), each interleaved with `loop`, that
method's plain loop as its public PyTorch port writes it (plain_loop.py), all on the same networks, settings, data
and draws (tests/test_gpu_check.py: each loop's step equals the reference trainer's). WDGRL:
`adapt.default_config("wdgrl", batch_size=B)` (k_critic 5, k_clf 1, lambda 0.1, gamma 10, Adam 1e-4) and
`adapt.digit_networks(C)` on random uint8 digits; one step = one `fit(..., add_steps=1)` step (the features, 5 critic
updates, 10 extractor + classifier updates). A method is one `DomainCase` and one builder in `DOMAIN_BUILDERS` (and
its loop in plain_loop.py).

Timed: the provider's train step (`trainer._step(data, noise)`, the trainer's thread policy included;
`PlainLoop.train_step`) + synchronise, one generator iteration per round; the random numbers are drawn in the
untimed set-up (identical for every provider).
The first call (tracing and compilation for the compiled providers) and `step_warmup` more iterations run before the
timed rounds. `extra_info` holds `first_call_s`, `compile_s` (first call minus the median iteration), the
`compile_cache` mode it was measured under (conftest.py: as-found, cold, warm, cold+warm, the last adding
`first_call_warm_s` / `compile_warm_s`) and the peak memory of the timed rounds (conftest.PeakMemory says how it is
measured on each device).
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass

import pytest
import torch

from fastwgan import ReferenceTrainer, TrainConfig, Trainer, data, ops
from fastwgan.core import rng
from fastwgan.gan import models

N_DATA = 1024  # synthetic uint8 images / toy points; batches are drawn with replacement, so N only sets the gather
# Most important first: a phase cut short at its deadline (make gpu-check) keeps the ratio fastwgan / loop.
PROVIDERS = ["loop", "fastwgan", "fastwgan_cudagraphs", "reference", "compiled_reference"]
COMPILED = ("compiled_reference", "fastwgan", "fastwgan_cudagraphs")


# ---------------------------------------------------------------------------------------------------------------
# case -> config, models, data
# ---------------------------------------------------------------------------------------------------------------
def _config(case, device: str) -> TrainConfig:
    if case.model == "mlp":  # the WGAN-GP authors' toy script (DESIGN section 1)
        return TrainConfig.preset("wgan-gp-toy", batch_size=case.batch, device=device)
    return TrainConfig.preset(case.preset, batch_size=case.batch, device=device)


def _models(case, cfg: TrainConfig):
    torch.manual_seed(0)  # every provider starts from the same weights
    if case.model == "mlp":
        return models.mlp((2,), latent_dim=cfg.latent_dim, hidden=case.width, depth=3)
    return models.dcgan(case.image_size, 3, latent_dim=cfg.latent_dim, width=case.width, critic_norm=case.critic_norm)


def _dataset(case) -> torch.Tensor:
    if case.model == "mlp":
        return data.toy("25gaussians", N_DATA)  # (N, 2) float32
    return torch.randint(
        0,
        256,
        (N_DATA, 3, case.image_size, case.image_size),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(0),
    )  # (N, 3, S, S)


def _build(provider: str, case, cfg: TrainConfig, dataset: torch.Tensor, plain_loop):
    """(trainer, prepared data, step function) for one provider, on freshly built models."""
    G, D = _models(case, cfg)
    if provider == "loop":
        loop = plain_loop.PlainLoop(G, D, cfg)
        return loop, loop.prepare(dataset), loop.train_step
    if provider == "reference":
        trainer = ReferenceTrainer(G, D, cfg)
    elif provider == "compiled_reference":
        trainer = Trainer(G, D, cfg, compile=True, impl="torch")
    elif provider == "fastwgan":
        trainer = Trainer(G, D, cfg, compile=True)
    else:
        trainer = Trainer(G, D, cfg, compile=True, compile_mode="reduce-overhead")
    return trainer, trainer.batch_source(dataset), trainer._step


# ---------------------------------------------------------------------------------------------------------------
# inductor caches (conftest.py, --compile-cache)
# ---------------------------------------------------------------------------------------------------------------
def _fresh_inductor_cache():
    """A fresh empty TORCHINDUCTOR_CACHE_DIR / TRITON_CACHE_DIR with in-memory caches cleared (removed on exit)."""
    from torch._inductor import utils

    return (getattr(utils, "fresh_cache", None) or utils.fresh_inductor_cache)()


def _forget_compiled() -> None:
    """What a new process would not have: dynamo's compiled code and inductor's in-memory caches (disk kept)."""
    from torch._inductor import utils

    torch._dynamo.reset()
    (getattr(utils, "clear_caches", None) or utils.clear_inductor_caches)()


# ---------------------------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_step(benchmark, bench, step_case, provider, plain_loop):
    if provider == "fastwgan_cudagraphs":
        bench.require_cuda("CUDA graphs (torch.compile mode='reduce-overhead')")
    case, prof = step_case, bench.profile
    torch._dynamo.reset()  # each case compiles afresh (and never hits the recompile limit across cases)
    gc.collect()
    if bench.device.type == "cuda":
        torch.cuda.empty_cache()

    cfg = _config(case, bench.device.type)
    dataset = _dataset(case)
    gen = rng.make_generator(cfg.seed)

    def draw():
        return rng.draw_step(gen, N_DATA, cfg.n_critic, cfg.batch_size, cfg.latent_dim, cfg.uses_penalty)

    def first_call(step_fn, prepared) -> float:
        noise = draw()
        bench.sync()
        t = time.perf_counter()
        step_fn(prepared, noise)
        bench.sync()
        return time.perf_counter() - t

    compiled = provider in COMPILED
    mode = bench.compile_cache if compiled else None
    info = {}
    with _fresh_inductor_cache() if mode in ("cold", "cold+warm") else contextlib.nullcontext():
        if mode == "warm":  # fill the on-disk cache untimed, then forget what a new process would not have
            primer, prepared, step_fn = _build(provider, case, cfg, dataset, plain_loop)
            first_call(step_fn, prepared)
            del primer, prepared, step_fn
            _forget_compiled()
        trainer, prepared, train_step = _build(provider, case, cfg, dataset, plain_loop)
        params_d, params_g = (sum(p.numel() for p in m.parameters()) for m in (trainer.critic, trainer.generator))

        def step(noise):
            train_step(prepared, noise)
            bench.sync()

        # Compile (compiled providers) and warm up outside the timed rounds.
        first = first_call(train_step, prepared)
        for _ in range(prof.step_warmup):
            step(draw())
        policy = getattr(trainer, "threads", None)
        while policy is not None and policy.settling:  # threads="auto": its first probe is warm-up, not timed
            step(draw())

        benchmark.group = f"step {bench.device.type} {case.id}"
        with bench.peak_memory() as mem:
            benchmark.pedantic(
                step, setup=lambda: ((draw(),), {}), rounds=case.rounds or prof.step_rounds, iterations=1
            )
        median = benchmark.stats.stats.median
        if mode == "cold+warm":  # the same program started again: its cache is on disk now
            del trainer, prepared, train_step, step
            _forget_compiled()
            trainer, prepared, train_step = _build(provider, case, cfg, dataset, plain_loop)
            warm = first_call(train_step, prepared)
            info.update(first_call_warm_s=warm, compile_warm_s=max(0.0, warm - median))
    benchmark.extra_info.update(
        {
            "kind": "step",
            "provider": provider,
            "case": case.id,
            "model": case.model,
            "critic_norm": case.critic_norm,
            "preset": case.preset,
            "loss": cfg.loss,
            "image_size": case.image_size,
            "batch": case.batch,
            "width": case.width,
            "n_critic": cfg.n_critic,
            "params_d": params_d,
            "params_g": params_g,
            "first_call_s": first,
            "compile_s": max(0.0, first - median) if compiled else None,
            "compile_cache": mode,
            "compile_mode": "reduce-overhead" if provider == "fastwgan_cudagraphs" else None,
            "images_per_s": case.batch * cfg.n_critic / median,
            "impl": getattr(trainer, "impl", None),
            "fuse_iteration": getattr(trainer, "fuse_iteration", None),
            "kernels": ("triton" if provider.startswith("fastwgan") and ops.kernel_runs_on(bench.device) else "torch"),
            **info,
            **mem.info(),
        }
    )
    trainer = prepared = None  # release both now (step's closure holds prepared); not `del`: ruff reads that as F821


# ---------------------------------------------------------------------------------------------------------------
# fastwgan and the loop interleaved: the ratio that matters, robust to a machine whose speed drifts
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["fastwgan", "fastwgan_cudagraphs"])
def test_step_vs_loop(benchmark, bench, step_case, provider, plain_loop):
    """One round = one loop iteration (timed by hand, in the untimed set-up) then one fastwgan iteration (timed by
    pytest-benchmark), on the same random numbers. On a shared machine whose speed drifts over minutes (steal,
    other jobs), providers measured one after the other see different machines; interleaved rounds see the same
    one, so `extra_info["speedup_vs_loop"]` = median loop time / median fastwgan time is the side-by-side figure."""
    if provider == "fastwgan_cudagraphs":
        bench.require_cuda("CUDA graphs (torch.compile mode='reduce-overhead')")
    case = step_case
    torch._dynamo.reset()
    gc.collect()
    cfg = _config(case, bench.device.type)
    dataset = _dataset(case)
    _, loop_data, loop_step = _build("loop", case, cfg, dataset, plain_loop)
    trainer, prepared, fast_step = _build(provider, case, cfg, dataset, plain_loop)
    gen = rng.make_generator(cfg.seed)

    def draw():
        return rng.draw_step(gen, N_DATA, cfg.n_critic, cfg.batch_size, cfg.latent_dim, cfg.uses_penalty)

    benchmark.group = f"step-vs-loop {bench.device.type} {case.id}"
    loop_times, median = _interleaved(
        benchmark, bench, case.rounds, (loop_step, loop_data), (trainer, prepared, fast_step), draw
    )
    loop_median = sorted(loop_times)[len(loop_times) // 2]
    benchmark.extra_info.update(
        {
            "kind": "step_vs_loop",
            "provider": provider,
            "case": case.id,
            "model": case.model,
            "preset": case.preset,
            "batch": case.batch,
            "width": case.width,
            "loop_median_s": loop_median,
            "loop_times_s": loop_times,
            "speedup_vs_loop": loop_median / median,
            "threads_log": [list(x) for x in getattr(getattr(trainer, "threads", None), "log", [])],
            "fuse_iteration": getattr(trainer, "fuse_iteration", None),
        }
    )


def _interleaved(benchmark, bench, rounds, loop, provider, draw) -> tuple[list[float], float]:
    """Compile and warm up both, then rounds of one loop iteration (timed by hand, in the untimed set-up) and one
    provider iteration (timed by pytest-benchmark) on the same draw. Returns (loop times, provider median)."""
    (loop_step, loop_data), (trainer, prepared, fast_step) = loop, provider
    for _ in range(1 + bench.profile.step_warmup):
        noise = draw()
        loop_step(loop_data, noise)
        fast_step(prepared, noise)
        bench.sync()
    while getattr(trainer, "threads", None) is not None and trainer.threads.settling:
        fast_step(prepared, draw())
    loop_times = []

    def setup():
        noise = draw()
        bench.sync()
        t = time.perf_counter()
        loop_step(loop_data, noise)
        bench.sync()
        loop_times.append(time.perf_counter() - t)
        return (noise,), {}

    def step(noise):
        fast_step(prepared, noise)
        bench.sync()

    benchmark.pedantic(step, setup=setup, rounds=rounds or bench.profile.step_rounds, iterations=1)
    return loop_times, benchmark.stats.stats.median


# ---------------------------------------------------------------------------------------------------------------
# two-domain steps (fastwgan.uses): the fast trainer and its oracle, each interleaved with the method's plain loop
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DomainCase:
    """One two-domain step benchmark: a method of ``DOMAIN_BUILDERS`` on random uint8 digits of both domains."""

    method: str
    batch: int
    image_size: int = 8
    channels: int = 3
    rounds: int | None = None  # None: the profile's step_rounds

    @property
    def id(self) -> str:
        return f"{self.method}-{self.image_size}px-c{self.channels}-b{self.batch}"


DOMAIN_CASES = (
    DomainCase("wdgrl", 64),
    DomainCase("pixelda", 64),
    DomainCase("pixelda_cond", 64),
    DomainCase("dirtt", 64),
)  # conftest parametrises `domain_case` with these, in every profile


def _digits(case, n: int = N_DATA) -> torch.Tensor:
    g = torch.Generator().manual_seed(len(case.method))  # (N, C, S, S), the same for every provider
    return torch.randint(0, 256, (n, case.channels, case.image_size, case.image_size), dtype=torch.uint8, generator=g)


def _wdgrl(case, device: str, plain_loop):
    """WDGRL (fastwgan.uses.adapt) at its published settings: (config, make(provider), draw(generator))."""
    from fastwgan.uses import adapt

    cfg = adapt.default_config("wdgrl", batch_size=case.batch, device=device)
    x_s, x_t = _digits(case), _digits(case).flip(0)
    y_s = torch.randint(0, 10, (N_DATA,), generator=torch.Generator().manual_seed(1))

    def make(provider):
        torch.manual_seed(0)  # every provider starts from the same weights
        nets = adapt.digit_networks(case.channels, image_size=case.image_size)
        if provider == "loop":
            loop = plain_loop.PlainWDGRL(*nets, cfg, adapt.WEIGHTS["wdgrl"], adapt.CLF_STEPS["wdgrl"])
            return loop, loop.prepare(x_s, y_s, x_t), loop.train_step
        trainer = adapt.ReferenceAdaptTrainer(*nets, cfg) if provider == "reference" else adapt.AdaptTrainer(*nets, cfg)
        return trainer, trainer.domain_source((x_s, y_s, x_t), trainer.check_domains), trainer._step

    def draw(gen):  # the adaptation trainers' stream (fastwgan.uses.adapt docstring)
        b = cfg.batch_size
        idx_s, idx_t = (torch.randint(0, N_DATA, (b,), generator=gen) for _ in range(2))
        draw = {"idx_s": idx_s, "idx_t": idx_t, "eps": torch.rand(cfg.n_critic, b, generator=gen)}
        if adapt.SHIFT:  # the default's 1-pixel shifts of both batches, which every provider applies
            draw.update(shift_s=torch.randint(-1, 2, (b, 2), generator=gen))
            draw.update(shift_t=torch.randint(-1, 2, (b, 2), generator=gen))
        return draw

    return cfg, make, draw


def _pixelda(case, device: str, plain_loop):
    """PixelDA (fastwgan.uses.pixelda) at its defaults, the wgan-gp preset: (config, make(provider), draw); case
    "pixelda_cond": with the class-aware critic (``class_critic=True``)."""
    from fastwgan.uses import pixelda

    cond = case.method == "pixelda_cond"

    cfg = TrainConfig.preset("wgan-gp", batch_size=case.batch, device=device)
    x_s, x_t = _digits(case), _digits(case).flip(0)
    y_s = torch.randint(0, 10, (N_DATA,), generator=torch.Generator().manual_seed(1))

    def make(provider):
        torch.manual_seed(0)  # every provider starts from the same weights
        nets = pixelda.digit_networks(case.channels, case.channels, image_size=case.image_size, class_critic=cond)
        if provider == "loop":
            loop = plain_loop.PlainPixelDA(*nets, cfg, pixelda.ADV_WEIGHT, pixelda.TASK_WEIGHT, class_critic=cond)
            return loop, loop.prepare(x_s, y_s, x_t), loop.train_step
        cls = pixelda.ReferencePixelDATrainer if provider == "reference" else pixelda.PixelDATrainer
        trainer = cls(*nets, cfg, pretrain_epochs=0, class_critic=cond)
        return trainer, trainer.domain_source((x_s, y_s, x_t), trainer.check_domains), trainer._step

    def draw(gen):  # the PixelDA trainers' stream (fastwgan.uses.pixelda docstring)
        b, k, nz = cfg.batch_size, cfg.n_critic, pixelda.NOISE_DIM
        idx_s, idx_t, z, eps = [], [], [], []
        for _ in range(k):
            idx_s.append(torch.randint(0, N_DATA, (b,), generator=gen))
            idx_t.append(torch.randint(0, N_DATA, (b,), generator=gen))
            z.append(torch.rand(b, nz, generator=gen) * 2 - 1)
            eps.append(torch.rand(b, generator=gen))
        out = {"idx_s": torch.stack(idx_s), "idx_t": torch.stack(idx_t), "z": torch.stack(z), "eps": torch.stack(eps)}
        out["gen_s"] = torch.randint(0, N_DATA, (b,), generator=gen)
        out["z_gen"] = torch.rand(b, nz, generator=gen) * 2 - 1
        out["shift"] = torch.randint(-1, 2, (b, 2), generator=gen)
        return out

    return cfg, make, draw


def _dirtt(case, device: str, plain_loop):
    """DIRT-T's refinement (fastwgan.uses.adapt, method "dirtt") at the official code's settings: (config,
    make(provider), draw). The teacher is the starting weights (the trainers take it at their first step)."""
    from fastwgan.uses import adapt

    cfg = adapt.default_config("dirtt", batch_size=case.batch, device=device)
    x_s, x_t = _digits(case), _digits(case).flip(0)
    y_s = torch.randint(0, 10, (N_DATA,), generator=torch.Generator().manual_seed(1))
    radius = adapt.vat_radius(tuple(x_t.shape[1:]))

    def make(provider):
        torch.manual_seed(0)  # every provider starts from the same weights
        extractor, head, _ = adapt.digit_networks(case.channels, image_size=case.image_size)
        if provider == "loop":
            loop = plain_loop.PlainDIRTT(extractor, head, cfg, adapt.WEIGHTS["dirtt"], radius)
            return loop, loop.prepare(x_s, y_s, x_t), loop.train_step
        cls = adapt.ReferenceAdaptTrainer if provider == "reference" else adapt.AdaptTrainer
        trainer = cls(extractor, head, None, cfg, method="dirtt")
        return trainer, trainer.domain_source((x_s, y_s, x_t), trainer.check_domains), trainer._step

    def draw(gen):  # the adaptation trainers' stream, method "dirtt" (fastwgan.uses.adapt docstring)
        b = cfg.batch_size
        idx_s, idx_t = (torch.randint(0, N_DATA, (b,), generator=gen) for _ in range(2))
        return {"idx_s": idx_s, "idx_t": idx_t, "vat_d": torch.randn(1, b, x_t[0].numel(), generator=gen)}

    return cfg, make, draw


DOMAIN_BUILDERS = {"wdgrl": _wdgrl, "pixelda": _pixelda, "pixelda_cond": _pixelda, "dirtt": _dirtt}


@pytest.mark.parametrize("provider", ["fastwgan", "reference"])
def test_domain_step_vs_loop(benchmark, bench, domain_case, provider, plain_loop):
    """One two-domain step of ``provider`` interleaved round by round with the method's plain loop (as
    ``test_step_vs_loop``): ``extra_info["speedup_vs_loop"]`` = median loop time / median provider time."""
    case = domain_case
    torch._dynamo.reset()
    gc.collect()
    cfg, make, draw_step = DOMAIN_BUILDERS[case.method](case, bench.device.type, plain_loop)
    _, loop_data, loop_step = make("loop")  # the loop lives on in its bound train_step
    trainer, prepared, fast_step = make(provider)
    gen = rng.make_generator(cfg.seed)
    t = time.perf_counter()
    fast_step(prepared, draw_step(gen))  # the compile (fastwgan), outside the rounds
    bench.sync()
    first_s = time.perf_counter() - t
    benchmark.group = f"domain-step-vs-loop {bench.device.type} {case.id}"
    loop_times, median = _interleaved(
        benchmark, bench, case.rounds, (loop_step, loop_data), (trainer, prepared, fast_step), lambda: draw_step(gen)
    )
    loop_median = sorted(loop_times)[len(loop_times) // 2]
    benchmark.extra_info.update(
        {
            "kind": "domain_step_vs_loop",
            "provider": provider,
            "case": case.id,
            "method": case.method,
            "batch": case.batch,
            "n_critic": cfg.n_critic,
            "first_call_s": first_s,
            "loop_median_s": loop_median,
            "loop_times_s": loop_times,
            "speedup_vs_loop": loop_median / median,
            "threads_log": [list(x) for x in getattr(getattr(trainer, "threads", None), "log", [])],
        }
    )
    trainer = prepared = loop_data = None  # released now (see test_step)
