"""What the trainer equivalence tests share (the GAN, adaptation, PixelDA and translation trainers): tolerances,
assertions and the compiled-graph counts.

Tolerances (fp32): the fast path computes the same maths in another order (flat buffers, torch.func, fused
optimizer passes, inductor's fusions), so per-step losses differ by float rounding: ~1e-7 relative per op. Adam
and RMSprop divide by sqrt(v), which amplifies gradient differences where v is tiny (DESIGN fact 10), so losses are
compared with rtol 1e-4 / atol 1e-5 over a few steps, and gradients of the first critic step with rtol 1e-4 /
atol 1e-6 (they have seen no optimizer yet).
"""

import contextlib
import math

import torch

LOSS_TOL = dict(rtol=1e-4, atol=1e-5)
GRAD_TOL = dict(rtol=1e-4, atol=1e-6)
PRESETS = {"clip": "wgan-clip", "gp": "wgan-gp", "lp": "wgan-gp"}


def assert_same_history(ref, fast):
    assert len(ref.history) == len(fast.history)
    for a, b in zip(ref.history, fast.history):
        assert a.keys() == b.keys()
        for k, va in a.items():
            vb = b[k]
            assert (va is None) == (vb is None), k
            if va is not None:
                assert math.isclose(va, vb, rel_tol=LOSS_TOL["rtol"], abs_tol=LOSS_TOL["atol"]), (
                    f"step {a['step']} {k}: reference {va} vs fast {vb}"
                )


# Parameters after a few optimizer steps. RMSprop and Adam step by g / sqrt(v), a ratio that keeps the RELATIVE
# rounding error of a gradient, and a gradient that is a sum with cancellation carries far more than 1e-7 of it; each
# step is ~lr-sized whatever |g| (RMSprop's first: lr / sqrt(1 - alpha) = 10 lr), so rounding moves parameters by a
# share of the distance the optimizer can travel (DESIGN fact 10). Found by the exploring property tests at lr 1e-3:
# clip, dcgan28/32, batch 5: single generator weights apart by 3e-5..7e-5 after 3 steps, 0.1-0.2% of the 3e-2 the
# generator can travel in 3 updates. So every element is held to atol + rtol |p| + TRAVEL_SHARE x travel (a wrong
# sign, lr, clamp or bias correction moves parameters by whole steps: 10-100x more), and elements whose gradient sat
# at rounding noise (RMS under NOISE_RMS x the tensor's median, as the reference's optimizer recorded it; the
# direction of noise / noise is a coin flip) to the travel itself (dead ReLU units, whose gradient is exactly 0, fall
# here too, and do not move in either trainer).
TRAVEL_SHARE = 0.01
NOISE_RMS = 0.05


def _gradient_rms(ref, net: str, p: torch.Tensor) -> torch.Tensor | None:
    opt = getattr(ref, {"critic": "opt_d", "generator": "opt_g"}[net], None)
    state = opt.state.get(p, {}) if opt is not None else {}
    v = state.get("square_avg", state.get("exp_avg_sq"))
    return None if v is None else v.sqrt()


def assert_close_params(ref, fast, rtol=1e-3, atol=1e-5):
    cfg = ref.config
    for net in ("critic", "generator"):
        lr = cfg.lr_d if net == "critic" else cfg.lr_g
        travel = ref.step * (cfg.n_critic if net == "critic" else 1) * lr * 10  # the optimizer's largest reach
        for (n, a), b in zip(getattr(ref, net).named_parameters(), getattr(fast, net).parameters()):
            rms = _gradient_rms(ref, net, a)
            noise = torch.zeros_like(a, dtype=torch.bool) if rms is None else rms < NOISE_RMS * rms.median()
            torch.testing.assert_close(
                b[~noise], a[~noise], rtol=rtol, atol=atol + TRAVEL_SHARE * travel, msg=lambda m: f"{net}.{n}: {m}"
            )
            assert bool(((b - a)[noise].abs() <= travel + atol).all()), f"{net}.{n}: beyond any optimizer travel"


def assert_close_modules(ref, fast, rtol=1e-3, atol=1e-5, what=""):
    """Every parameter of two modules built alike (the two-domain trainers' networks) after a few steps."""
    for (n, a), b in zip(ref.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"{what}{n}: {m}")


def assert_penalty_reaches_critic(make_pair, *inputs):
    """The penalty's own gradient (weight 10 minus weight 0) at the critic's parameters, on a critic made 4x steeper
    (||grad|| > 1 somewhere, where the one-sided penalty acts too), is the same in the fast trainer (ops,
    torch.func) as in the eager oracle, and not zero. ``make_pair(config)`` -> (reference, fast) trainers;
    ``inputs``: what their ``critic_gradient`` takes."""
    pen = []
    for tr in range(2):
        grads = []
        for weight in (0.0, 10.0):
            t = make_pair({"gp_weight": weight})[tr]
            with torch.no_grad():
                for p in t.critic.parameters():
                    p.mul_(4)
            grads.append(t.critic_gradient(*inputs)[0])
        pen.append(grads[1] - grads[0])
    torch.testing.assert_close(pen[1], pen[0], rtol=1e-4, atol=1e-6)
    assert pen[0].abs().max() > 1e-3


def fresh_graph_counts():
    """Forget every compiled graph and zero dynamo's counters, so the graph counts read next are one trainer's."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def unique_graphs() -> int:
    """How many graphs dynamo has compiled since ``fresh_graph_counts``."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@contextlib.contextmanager
def no_recompile_once_warm():
    """Any recompile fails once some graph is compiled: a module-scoped compiled trainer's first example compiles,
    every later example (another drawn seed, the same shapes) must reuse its graphs."""
    import torch._dynamo

    with torch._dynamo.config.patch(error_on_recompile=unique_graphs() > 0):
        yield
