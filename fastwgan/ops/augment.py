"""DiffAugment: differentiable augmentation of every critic input (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS), as one op: `diff_augment`, and `apply`, its use in training.

A critic trained on few images memorises them; augmenting only the reals would teach the generator the augmented
distribution. DiffAugment applies one random transform T to every image the critic sees, real or fake, in both
phases, and keeps T differentiable so the generator's gradient passes through it:

    critic:     L_D = E[D(T(G(z)))] - E[D(T(x))]  (+ lambda * penalty)
    generator:  L_G = -E[D(T(G(z)))]

T (``TrainConfig.augment``; per sample, each call with its own seed from the run's stream, ``fastwgan.core.rng``), in
the order of the paper's code:
    color:        x + (u1 - 1/2);  then (x - mean_C x) * 2 u2 + mean_C x;  then (x - mean x) * (u3 + 1/2) + mean x
    translation:  shift by integers in [-H/8, H/8] x [-W/8, W/8], zero fill
    cutout:       zero a square of half the image's side at a random centre
T is affine in x for fixed random draws, so its backward is its adjoint (`diff_augment`: one fused Triton kernel,
fastwgan.kernels.augment, drawing its parameters in the kernel from the seed; `twin_diff_augment`, public as
``fastwgan.ops.twins.diff_augment``: the plain-PyTorch twin, bit-identical draws).

Where the gradient penalty is taken. x_hat interpolates the AUGMENTED pair, eps T(x) + (1 - eps) T'(G(z)), and
the penalty is ||grad D(x_hat)|| - 1 on it. Why: the critic loss above is the Kantorovich-Rubinstein dual between
the augmented real and fake distributions, with D as the potential, and WGAN-GP asks D to be 1-Lipschitz on lines
between samples of exactly the two distributions the loss compares. Penalising D o T on the un-augmented pair
instead constrains another function (T's own Lipschitz constant enters: cutout and colour change it per sample)
on points the loss never evaluates, and needs a second-order gradient through T. The property is tested:
with augmentation the penalty equals the one computed by hand on the augmented pair (tests/test_augment.py).

One file per op (STYLE habit 1): schemas, fake impls, the autograd wrappers, the public functions and the twins.
"""

from __future__ import annotations

import torch

from . import dispatch
from .dispatch import as_scalar_tensor, compute_dtype, per_sample
from .penalty import counter_bits, seed_tensor

if dispatch.HAS_TRITON:
    from ..kernels import augment as _kaugment

# The affine forward (linear=True: without the brightness constant, i.e. A x) and the adjoint A^T g. Not in
# fastwgan.ops.optimizer/penalty's SCHEMAS, which tests/test_ops_opcheck.py runs opcheck on (one sample set per
# entry); the opcheck of these two lives in tests/test_kernels_augment.py.
SCHEMAS = {
    "diff_augment": "(Tensor x, Tensor seed, bool color, bool translation, bool cutout, bool linear) -> Tensor",
    "diff_augment_adjoint": "(Tensor grad, Tensor seed, bool color, bool translation, bool cutout) -> Tensor",
}
dispatch.define(SCHEMAS)


@dispatch.register("diff_augment", dispatch.fake_like_first)
def _diff_augment_impl(x, seed, color, translation, cutout, linear):
    x = x.contiguous()
    if dispatch.kernel_runs_on(x.device):
        return _kaugment.diff_augment(x, seed, color, translation, cutout, brightness=not linear)
    # .clone(): an op's output must not alias its input (the empty policy returns x itself)
    return twin_diff_augment_flags(x, seed, color, translation, cutout, linear).contiguous().clone()


@dispatch.register("diff_augment_adjoint", dispatch.fake_like_first)
def _diff_augment_adjoint_impl(grad, seed, color, translation, cutout):
    grad = grad.contiguous()
    if dispatch.kernel_runs_on(grad.device):
        return _kaugment.diff_augment(grad, seed, color, translation, cutout, adjoint=True)
    return twin_diff_augment_adjoint_flags(grad, seed, color, translation, cutout).contiguous().clone()


_BYPASS = (
    "its custom backward (the autograd.Function in fastwgan.ops.diff_augment) was bypassed. Under "
    "torch.compile this happens when it is applied directly to the input of a torch.func "
    "transform (DESIGN fact 4): augment a computed tensor, or use impl='torch'."
)
dispatch.forbid_autograd("diff_augment", _BYPASS)
dispatch.forbid_autograd("diff_augment_adjoint", _BYPASS)


# ---------------------------------------------------------------------------------------------------------------
# Autograd. aug(x) = A x + c with A linear and fixed by the seed, so the backward is the adjoint op and the
# adjoint's backward is the linear forward op: derivatives of every order are exact (STYLE habit 3).
# ---------------------------------------------------------------------------------------------------------------
class _SeededLinear(torch.autograd.Function):
    """Both Functions below are linear in their first input for a fixed (seed, color, translation, cutout): each
    saves the seed and the flags (inputs 1 to 4) for a backward that applies the other."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])
        ctx.flags = tuple(inputs[2:5])


class _DiffAugment(_SeededLinear):
    @staticmethod
    def forward(x, seed, color, translation, cutout, linear):
        return torch.ops.fastwgan.diff_augment(x, seed, color, translation, cutout, linear)

    @staticmethod
    def backward(ctx, grad_out):
        # d aug / dx = A, so dL/dx = A^T dL/daug
        return _DiffAugmentAdjoint.apply(grad_out, *ctx.saved_tensors, *ctx.flags), None, None, None, None, None


class _DiffAugmentAdjoint(_SeededLinear):
    @staticmethod
    def forward(grad, seed, color, translation, cutout):
        return torch.ops.fastwgan.diff_augment_adjoint(grad, seed, color, translation, cutout)

    @staticmethod
    def backward(ctx, grad_out):
        # (A^T)^T = A: the linear forward, without the brightness constant
        return _DiffAugment.apply(grad_out, *ctx.saved_tensors, *ctx.flags, True), None, None, None, None


# ---------------------------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------------------------
def diff_augment(x: torch.Tensor, seed: int | torch.Tensor, policy: str, impl: str = "auto") -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): per-sample random colour, translation and cutout in one launch.

    The official DiffAugment-pytorch operations, always applied in the order color, translation (ratio 1/8, zero
    fill), cutout (ratio 1/2), with per-sample parameters drawn from `seed` by a counter-based hash
    (`augment_params_from_seed`), identical in every impl. Differentiable in x to any order with every impl: the
    augmentation is affine in x, the Triton path's backward is the adjoint kernel and the adjoint's backward is
    the linear forward kernel.

    Args:
        x: (B, C, H, W) float32, bfloat16 or float16 images (any strides; float64 with impl="torch").
        seed: an int or a 0-d integer tensor (a tensor: a new seed per step does not recompile a compiled step).
        policy: comma-separated subset of "color", "translation", "cutout" (any order); "" returns x itself.
        impl: "auto" | "triton" | "torch" (fastwgan.ops.dispatch).
    Returns:
        (B, C, H, W) of x.dtype, contiguous with impl="triton" (computed in fp32).
    """
    if x.dim() != 4:
        raise ValueError(f"diff_augment needs (B, C, H, W), got shape {tuple(x.shape)}")
    color, translation, cutout = parse_augment_policy(policy)
    if not (color or translation or cutout):
        dispatch.resolves_to_triton(impl, x)  # still validate impl
        return x
    if dispatch.resolves_to_triton(impl, x):
        seed_t = as_scalar_tensor(seed, x.device, torch.int64).to(torch.int64)
        return _DiffAugment.apply(x, seed_t, color, translation, cutout, False)
    return twin_diff_augment(x, seed, policy)


def apply(x: torch.Tensor, seed, policy: str, impl: str = "auto") -> torch.Tensor:
    """T(x): the DiffAugment ``policy`` (``TrainConfig.augment``) applied to a (B, C, H, W) batch.

    Args:
        x: (B, C, H, W) float images.
        seed: an int or 0-d int64 tensor; the per-sample draws are a hash of (seed, sample, parameter).
        policy: comma-separated "color", "translation", "cutout"; "" returns x.
        impl: "auto" (the Triton kernel where it runs), "triton" or "torch" (the twin).
    Returns:
        (B, C, H, W) augmented images, differentiable w.r.t. x.
    """
    if not policy:
        return x
    if x.dim() != 4:
        raise ValueError(
            f"augment: DiffAugment transforms images (B, C, H, W); got shape {tuple(x.shape)} "
            "(TrainConfig.augment needs image data)"
        )
    return diff_augment(x, seed, policy, impl=impl)


# ---------------------------------------------------------------------------------------------------------------
# The per-sample draws (shared by the kernel and the twin)
# ---------------------------------------------------------------------------------------------------------------
AUGMENT_SLOTS = 8  # random slots per sample (must equal fastwgan.kernels.augment.SLOTS; tested)
AUGMENT_POLICIES = ("color", "translation", "cutout")  # also the order they are applied in


def parse_augment_policy(policy: str) -> tuple[bool, bool, bool]:
    """(color, translation, cutout) flags of a comma-separated policy such as "color,translation,cutout".

    Order in the string does not matter (the operations always run as color, translation, cutout); "" is none.
    """
    names = {p.strip() for p in policy.split(",")} - {""}
    unknown = names - set(AUGMENT_POLICIES)
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {sorted(unknown)}; choose from {AUGMENT_POLICIES}")
    return tuple(p in names for p in AUGMENT_POLICIES)


def augment_sizes(h: int, w: int) -> tuple[int, int, int, int]:
    """(shift_h, shift_w, cut_h, cut_w): translation ratio 1/8, cutout ratio 1/2, int(size * ratio + 0.5)."""
    return int(h * 0.125 + 0.5), int(w * 0.125 + 0.5), int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)


def augment_params_from_seed(
    seed: int | torch.Tensor, batch: int, height: int, width: int, device=None
) -> dict[str, torch.Tensor]:
    """The per-sample parameters `diff_augment` draws for `seed`, bit-identical to the kernel's draw.

    Parameter j of sample b is the 24 high bits k of hash(hash(seed) + (b * 8 + j + 1) * GOLDEN) (the hash of
    `gp_eps_from_seed`), u = k 2^-24 in [0, 1), an integer in [0, n) is (k n) >> 24 = floor(u n). Slots j:
    0 brightness, 1 saturation, 2 contrast, 3 translate_y, 4 translate_x, 5 cutout_y, 6 cutout_x, 7 unused.
    Every slot is drawn whatever the policy, so a seed gives the same colour parameters with or without
    translation. Note: sample 0's brightness uses the same counter as `gp_eps_from_seed`'s sample 0: do not reuse
    one seed for both.

    Args:
        seed: an int or a 0-d integer tensor.
        batch, height, width: B, H, W of the images.
        device: where to put the results (default: the seed's device, else CPU).
    Returns:
        dict of (B,) tensors: "brightness" in [-0.5, 0.5), "saturation" in [0, 2), "contrast" in [0.5, 1.5)
        (float32); "translate_y" in [-shift_h, shift_h], "translate_x" in [-shift_w, shift_w] (output pixel
        (h, w) takes input (h - translate_y, w - translate_x)); "cutout_y" in [0, H + 1 - cut_h % 2), "cutout_x"
        likewise (square centres as the official code; the square starts at cutout_y - cut_h // 2) (int64).
    """
    s = seed_tensor(seed, device)
    counters = (
        torch.arange(batch, dtype=torch.int64, device=s.device)[:, None] * AUGMENT_SLOTS
        + torch.arange(AUGMENT_SLOTS, dtype=torch.int64, device=s.device)
        + 1
    )  # (B, SLOTS)
    k = counter_bits(s, counters)  # (B, SLOTS), 24 bits
    u = k.to(torch.float32) * (1.0 / 16777216.0)

    def randint(j, n):  # floor(u n) in integers (u * n in fp32 can round up to n)
        return (k[:, j] * n) >> 24

    shift_h, shift_w, cut_h, cut_w = augment_sizes(height, width)
    return {
        "brightness": u[:, 0] - 0.5,
        "saturation": u[:, 1] * 2,
        "contrast": u[:, 2] + 0.5,
        "translate_y": randint(3, 2 * shift_h + 1) - shift_h,
        "translate_x": randint(4, 2 * shift_w + 1) - shift_w,
        "cutout_y": randint(5, height + 1 - cut_h % 2),
        "cutout_x": randint(6, width + 1 - cut_w % 2),
    }


# ---------------------------------------------------------------------------------------------------------------
# Plain-PyTorch twins (fastwgan.ops.twins): the impl="torch" path and the kernel's oracle
# ---------------------------------------------------------------------------------------------------------------
def _draw_and_upcast(x: torch.Tensor, seed) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(the parameters drawn for x's (B, C, H, W), x in fp32, fp64 for fp64): the start of every twin."""
    b, _, h, w = x.shape
    return augment_params_from_seed(seed, b, h, w, x.device), x.to(compute_dtype(x.dtype))


def _scale_about_mean(y: torch.Tensor, factor: torch.Tensor, dim) -> torch.Tensor:
    """(y - m) * factor_b + m with m the mean over `dim`: saturation (dim 1) and contrast (dims 1, 2, 3), each
    self-adjoint."""
    m = y.mean(dim=dim, keepdim=True)
    return (y - m) * per_sample(factor.to(y.dtype), y) + m


def _translate(x: torch.Tensor, ty: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
    """y[b, :, h, w] = x[b, :, h - ty_b, w - tx_b] where in bounds, else 0. x (B, C, H, W), ty/tx (B,) int64."""
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device) - ty[:, None]  # (B, H) source rows
    cols = torch.arange(w, device=x.device) - tx[:, None]  # (B, W) source columns
    ok_r, ok_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    x = x.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(b, c, h, w))
    x = x.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(b, c, h, w))
    ok = ok_r[:, None, :, None] & ok_c[:, None, None, :]  # (B, 1, H, W)
    return torch.where(ok, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _cut_out(y: torch.Tensor, p: dict) -> torch.Tensor:
    """y with the cutout square of each sample zeroed (self-adjoint). The official code clamps the square's indices
    to the image; the square always overlaps the image (0 <= cy and cy - cut // 2 < size), so clamping =
    intersecting."""
    _, _, h, w = y.shape
    _, _, cut_h, cut_w = augment_sizes(h, w)
    lo_h, lo_w = p["cutout_y"] - cut_h // 2, p["cutout_x"] - cut_w // 2  # (B,)
    rows = torch.arange(h, device=lo_h.device) - lo_h[:, None]  # (B, H)
    cols = torch.arange(w, device=lo_w.device) - lo_w[:, None]  # (B, W)
    in_r, in_c = (rows >= 0) & (rows < cut_h), (cols >= 0) & (cols < cut_w)
    keep = ~(in_r[:, None, :, None] & in_c[:, None, None, :])  # (B, 1, H, W)
    return torch.where(keep, y, torch.zeros((), dtype=y.dtype, device=y.device))


def twin_diff_augment_flags(x, seed, color: bool, translation: bool, cutout: bool, linear: bool = False):
    """DiffAugment as the official code writes it, op by op, in fp32 (fp64 for fp64); linear: no brightness."""
    if not (color or translation or cutout):
        return x
    p, y = _draw_and_upcast(x, seed)  # (B, C, H, W)
    if color:
        if not linear:
            y = y + per_sample(p["brightness"].to(y.dtype), y)
        y = _scale_about_mean(y, p["saturation"], 1)
        y = _scale_about_mean(y, p["contrast"], (1, 2, 3))
    if translation:
        y = _translate(y, p["translate_y"], p["translate_x"])
    if cutout:
        y = _cut_out(y, p)
    return y.to(x.dtype)


def twin_diff_augment(x: torch.Tensor, seed: int | torch.Tensor, policy: str) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): per-sample random colour, translation and cutout, differentiable in x.

    The official DiffAugment-pytorch operations (translation ratio 1/8 with zero fill, cutout ratio 1/2), always
    in the order color, translation, cutout, with the parameters of `augment_params_from_seed`. Plain tensor ops:
    autograd gives every order of derivative.

    Args:
        x: (B, C, H, W) images.
        seed: an int or a 0-d integer tensor.
        policy: comma-separated subset of "color", "translation", "cutout"; "" returns x.
    Returns:
        (B, C, H, W) of x.dtype (computed in fp32, fp64 for fp64).
    """
    if x.dim() != 4:
        raise ValueError(f"diff_augment needs (B, C, H, W), got shape {tuple(x.shape)}")
    return twin_diff_augment_flags(x, seed, *parse_augment_policy(policy))


def twin_diff_augment_adjoint(grad: torch.Tensor, seed: int | torch.Tensor, policy: str) -> torch.Tensor:
    """A^T g, the adjoint of the linear part of `diff_augment` (its input gradient for upstream gradient g).

    A = cutout . translate . K . S (K contrast, S saturation; both self-adjoint), so A^T g = S K u with
    u = translate^T cutout^T g: mask, shift back by (-ty, -tx), then the same colour maps without brightness.

    Args:
        grad: (B, C, H, W) upstream gradient.
        seed, policy: as in `diff_augment`.
    Returns:
        (B, C, H, W) of grad.dtype.
    """
    return twin_diff_augment_adjoint_flags(grad, seed, *parse_augment_policy(policy))


def twin_diff_augment_adjoint_flags(grad, seed, color: bool, translation: bool, cutout: bool):
    """`twin_diff_augment_adjoint` with the policy as flags."""
    if not (color or translation or cutout):
        return grad
    p, u = _draw_and_upcast(grad, seed)  # (B, C, H, W)
    if cutout:
        u = _cut_out(u, p)
    if translation:
        u = _translate(u, -p["translate_y"], -p["translate_x"])
    if color:
        u = _scale_about_mean(u, p["contrast"], (1, 2, 3))  # K
        u = _scale_about_mean(u, p["saturation"], 1)  # S
    return u.to(grad.dtype)
