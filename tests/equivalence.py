"""What the trainer equivalence tests share (test_trainer.py, test_conditional.py): tolerances and assertions.

Tolerances (fp32): the fast path computes the same maths in another order (flat buffers, torch.func, fused
optimizer passes, inductor's fusions), so per-step losses differ by float rounding: ~1e-7 relative per op. Adam
and RMSprop divide by sqrt(v), which amplifies gradient differences where v is tiny (DESIGN fact 10), so losses are
compared with rtol 1e-4 / atol 1e-5 over a few steps, and gradients of the first critic step with rtol 1e-4 /
atol 1e-6 (they have seen no optimizer yet).
"""
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
                assert math.isclose(va, vb, rel_tol=LOSS_TOL["rtol"], abs_tol=LOSS_TOL["atol"]), \
                    f"step {a['step']} {k}: reference {va} vs fast {vb}"


def assert_close_params(ref, fast, rtol=1e-3, atol=1e-5):
    for net in ("critic", "generator"):
        for (n, a), b in zip(getattr(ref, net).named_parameters(), getattr(fast, net).parameters()):
            torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"{net}.{n}: {m}")


def assert_close_modules(ref, fast, rtol=1e-3, atol=1e-5, what=""):
    """Every parameter of two modules built alike (the two-domain trainers' networks) after a few steps."""
    for (n, a), b in zip(ref.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"{what}{n}: {m}")
