"""Plain-PyTorch twins of every fastwgan op: the same signature (less `impl`), the same definitions.

They are the `impl="torch"` path, the oracle the kernels are tested against, and what benchmarks compare with.
They stay in plain tensor ops (no `.item()`, no Python RNG) so that they trace under `torch.func` and
`torch.compile`, where inductor fuses them itself (DESIGN fact 7).
"""

from __future__ import annotations

import math

import torch

# Constants of the counter-based hash that draws in-kernel eps (must equal fastwgan.kernels.gp; tested).
_MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D
_MUL2 = 0x2C1B3C6D
_GOLDEN = 0x61C88647


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp16/bf16/fp32 (the kernels' accumulation type), fp64 stays fp64 (for gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1)))  # (B, 1, ..., 1)


def clip_(x: torch.Tensor | list[torch.Tensor], clip_value: float):
    """Clamp `x` (a tensor or a list of tensors) to [-clip_value, clip_value] in place.

    Args:
        x: tensor or list of tensors, modified in place.
        clip_value: positive bound c.
    Returns:
        `x`.
    """
    with torch.no_grad():
        for t in [x] if isinstance(x, torch.Tensor) else x:
            t.clamp_(-clip_value, clip_value)
    return x


def rmsprop_clip(param, grad, square_avg, lr, alpha=0.99, eps=1e-8, clip_value=None):
    """One step of torch.optim.RMSprop (no momentum, not centered, no weight decay), then the clamp, out of place.

    The same tensor ops in the same order as `torch.optim.RMSprop`'s single-tensor path (so the same values).

    Args:
        param, grad, square_avg: tensors of one shape (not modified).
        lr: learning rate, a float or a 0-d tensor.
        alpha, eps: RMSprop constants.
        clip_value: clamp the new parameters to [-clip_value, clip_value]; None: no clamp.
    Returns:
        (new param, new square_avg).
    """
    with torch.no_grad():
        square_avg = (square_avg * alpha).addcmul_(grad, grad, value=1 - alpha)
        avg = square_avg.sqrt().add_(eps)
        if isinstance(lr, torch.Tensor):
            param = param - grad / avg * lr
        else:
            param = param.addcdiv(grad, avg, value=-lr)
        if clip_value is not None:
            param = param.clamp(-clip_value, clip_value)
        return param, square_avg


def rmsprop_clip_(param, grad, square_avg, lr, alpha=0.99, eps=1e-8, clip_value=None):
    """`rmsprop_clip` in place: param and square_avg are updated. Returns None."""
    new_param, new_avg = rmsprop_clip(param, grad, square_avg, lr, alpha, eps, clip_value)
    with torch.no_grad():
        square_avg.copy_(new_avg)
        param.copy_(new_param)


def adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps=1e-8):
    """One step of torch.optim.Adam (bias-corrected, no weight decay, no amsgrad), out of place.

    The same tensor ops in the same order as `torch.optim.Adam`'s single-tensor path (so the same values).

    Args:
        param, grad, exp_avg, exp_avg_sq: tensors of one shape (not modified).
        step: the step count after the increment (1 on the first step), an int or a 0-d tensor.
        lr: learning rate, a float or a 0-d tensor.
        beta1, beta2, eps: Adam constants.
    Returns:
        (new param, new exp_avg, new exp_avg_sq).
    """
    with torch.no_grad():
        exp_avg = torch.lerp(exp_avg, grad, 1 - beta1)
        exp_avg_sq = (exp_avg_sq * beta2).addcmul_(grad, grad, value=1 - beta2)
        if isinstance(step, torch.Tensor):
            step = step.to(torch.float32)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
        if isinstance(step_size, torch.Tensor):
            param = param - exp_avg / denom * step_size
        else:
            param = param.addcdiv(exp_avg, denom, value=-step_size)
        return param, exp_avg, exp_avg_sq


def adam_(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps=1e-8):
    """`adam` in place: param, exp_avg and exp_avg_sq are updated. Returns None."""
    new_param, new_avg, new_sq = adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
    with torch.no_grad():
        exp_avg.copy_(new_avg)
        exp_avg_sq.copy_(new_sq)
        param.copy_(new_param)


def gp_interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_hat = eps * real + (1 - eps) * fake, one eps per sample.

    Computed in fp32 (fp64 for fp64 inputs) and cast to real.dtype, like the kernel.

    Args:
        real, fake: (B, ...) tensors of one shape and dtype.
        eps: (B,) interpolation weights.
    Returns:
        x_hat, (B, ...) of real.dtype.
    """
    ct = _compute_dtype(real.dtype)
    e = _per_sample(eps.to(ct), real)  # (B, 1, ..., 1)
    return (e * real.to(ct) + (1 - e) * fake.to(ct)).to(real.dtype)


def _hash32(x: torch.Tensor) -> torch.Tensor:
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * _MUL1) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _MUL2) & _MASK32
    return x ^ (x >> 16)


def gp_eps_from_seed(seed: int | torch.Tensor, batch: int, device=None) -> torch.Tensor:
    """The eps that `gp_interpolate_rand` draws for `seed`: a counter-based hash of (seed, sample index).

    Bit-identical to the kernel's draw. Values are multiples of 2^-24 in [0, 1).

    Args:
        seed: an int or a 0-d integer tensor.
        batch: number of samples B.
        device: where to put the result (default: the seed's device, else CPU).
    Returns:
        eps, (B,) float32.
    """
    if isinstance(seed, torch.Tensor):
        device = seed.device if device is None else device
        s = seed.to(device=device, dtype=torch.int64)
    else:
        s = torch.tensor(int(seed), dtype=torch.int64, device=device)
    rows = torch.arange(batch, dtype=torch.int64, device=s.device)
    x = _hash32(_hash32(s) + (rows + 1) * _GOLDEN)
    return (x >> 8).to(torch.float32) * (1.0 / 16777216.0)


def gp_interpolate_rand(real: torch.Tensor, fake: torch.Tensor, seed: int | torch.Tensor):
    """Interpolation with eps drawn from `seed` (see `gp_eps_from_seed`).

    Args:
        real, fake: (B, ...) tensors of one shape and dtype.
        seed: an int or a 0-d integer tensor.
    Returns:
        (x_hat (B, ...) of real.dtype, eps (B,) float32).
    """
    eps = gp_eps_from_seed(seed, real.shape[0], real.device)
    return gp_interpolate(real, fake, eps), eps


def gradient_penalty(grad: torch.Tensor, weight: float, one_sided: bool = False, return_norms: bool = False):
    """weight * mean_b((||g_b||_2 - 1)^2), the norm over all non-batch dims; one_sided: max(0, n - 1)^2.

    Differentiable to any order by autograd. At a zero row the gradient is 0: `torch.linalg.vector_norm`'s
    backward picks that subgradient (a hand-written sqrt(sum(g^2)) would give NaN), and the kernel defines the
    same.

    Args:
        grad: (B, ...) input gradient.
        weight: lambda.
        one_sided: use max(0, n - 1)^2 (the "lp" penalty).
        return_norms: also return the per-sample norms.
    Returns:
        penalty, a 0-d tensor of grad.dtype; with return_norms, (penalty, norms (B,) float32, or float64
        for float64 grad).
    """
    rows = grad.reshape(grad.shape[0], math.prod(grad.shape[1:]))  # (B, M)
    norms = torch.linalg.vector_norm(rows.to(_compute_dtype(grad.dtype)), dim=1)  # (B,)
    d = norms - 1
    if one_sided:
        d = d.clamp(min=0)
    pen = (weight * d.square().mean()).to(grad.dtype)
    return (pen, norms) if return_norms else pen


def gradient_penalty_backward(grad_out, grad, norms, weight: float, one_sided: bool = False) -> torch.Tensor:
    """The penalty's gradient w.r.t. grad: grad_out * weight * 2 d_b / (B n_b) * g_b, 0 on zero rows.

    Args:
        grad_out: 0-d upstream gradient.
        grad: (B, ...) input gradient of the forward.
        norms: (B,) float32 norms from the forward.
        weight, one_sided: as in the forward.
    Returns:
        (B, ...) tensor of grad.dtype.
    """
    d = norms - 1
    if one_sided:
        d = d.clamp(min=0)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    c = torch.where(norms > 0, 2.0 * weight / grad.shape[0] * d / safe, torch.zeros_like(norms))  # (B,)
    ct = _compute_dtype(grad.dtype)
    return (_per_sample(c.to(ct) * grad_out.to(ct), grad) * grad.to(ct)).to(grad.dtype)


# ---------------------------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020), the twin of fastwgan.kernels.augment
# ---------------------------------------------------------------------------------------------------------------
_AUGMENT_SLOTS = 8  # random slots per sample (must equal fastwgan.kernels.augment.SLOTS; tested)
_AUGMENT_POLICIES = ("color", "translation", "cutout")  # also the order they are applied in


def parse_augment_policy(policy: str) -> tuple[bool, bool, bool]:
    """(color, translation, cutout) flags of a comma-separated policy such as "color,translation,cutout".

    Order in the string does not matter (the operations always run as color, translation, cutout); "" is none.
    """
    names = {p.strip() for p in policy.split(",")} - {""}
    unknown = names - set(_AUGMENT_POLICIES)
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {sorted(unknown)}; choose from {_AUGMENT_POLICIES}")
    return tuple(p in names for p in _AUGMENT_POLICIES)


def _augment_sizes(h: int, w: int) -> tuple[int, int, int, int]:
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
    if isinstance(seed, torch.Tensor):
        device = seed.device if device is None else device
        s = seed.to(device=device, dtype=torch.int64)
    else:
        s = torch.tensor(int(seed), dtype=torch.int64, device=device)
    counters = (
        torch.arange(batch, dtype=torch.int64, device=s.device)[:, None] * _AUGMENT_SLOTS
        + torch.arange(_AUGMENT_SLOTS, dtype=torch.int64, device=s.device)
        + 1
    )  # (B, SLOTS)
    k = _hash32(_hash32(s) + counters * _GOLDEN) >> 8  # (B, SLOTS), 24 bits
    u = k.to(torch.float32) * (1.0 / 16777216.0)

    def randint(j, n):  # floor(u n) in integers (u * n in fp32 can round up to n)
        return (k[:, j] * n) >> 24

    shift_h, shift_w, cut_h, cut_w = _augment_sizes(height, width)
    return {
        "brightness": u[:, 0] - 0.5,
        "saturation": u[:, 1] * 2,
        "contrast": u[:, 2] + 0.5,
        "translate_y": randint(3, 2 * shift_h + 1) - shift_h,
        "translate_x": randint(4, 2 * shift_w + 1) - shift_w,
        "cutout_y": randint(5, height + 1 - cut_h % 2),
        "cutout_x": randint(6, width + 1 - cut_w % 2),
    }


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


def _cutout_keep(p: dict, h: int, w: int) -> torch.Tensor:
    """(B, 1, H, W) bool, False inside the cutout square. The official code clamps the square's indices to the
    image; the square always overlaps the image (0 <= cy and cy - cut // 2 < size), so clamping = intersecting."""
    _, _, cut_h, cut_w = _augment_sizes(h, w)
    lo_h, lo_w = p["cutout_y"] - cut_h // 2, p["cutout_x"] - cut_w // 2  # (B,)
    rows = torch.arange(h, device=lo_h.device) - lo_h[:, None]  # (B, H)
    cols = torch.arange(w, device=lo_w.device) - lo_w[:, None]  # (B, W)
    in_r, in_c = (rows >= 0) & (rows < cut_h), (cols >= 0) & (cols < cut_w)
    return ~(in_r[:, None, :, None] & in_c[:, None, None, :])


def diff_augment_flags(x, seed, color: bool, translation: bool, cutout: bool, linear: bool = False):
    """DiffAugment as the official code writes it, op by op, in fp32 (fp64 for fp64); linear: no brightness."""
    if not (color or translation or cutout):
        return x
    b, _, h, w = x.shape
    p = augment_params_from_seed(seed, b, h, w, x.device)
    ct = _compute_dtype(x.dtype)
    y = x.to(ct)  # (B, C, H, W)
    if color:
        if not linear:
            y = y + _per_sample(p["brightness"].to(ct), y)
        m = y.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        y = (y - m) * _per_sample(p["saturation"].to(ct), y) + m
        m = y.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        y = (y - m) * _per_sample(p["contrast"].to(ct), y) + m
    if translation:
        y = _translate(y, p["translate_y"], p["translate_x"])
    if cutout:
        y = torch.where(_cutout_keep(p, h, w), y, torch.zeros((), dtype=ct, device=y.device))
    return y.to(x.dtype)


def diff_augment(x: torch.Tensor, seed: int | torch.Tensor, policy: str) -> torch.Tensor:
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
    return diff_augment_flags(x, seed, *parse_augment_policy(policy))


def diff_augment_adjoint(grad: torch.Tensor, seed: int | torch.Tensor, policy: str) -> torch.Tensor:
    """A^T g, the adjoint of the linear part of `diff_augment` (its input gradient for upstream gradient g).

    A = cutout . translate . K . S (K contrast, S saturation; both self-adjoint), so A^T g = S K u with
    u = translate^T cutout^T g: mask, shift back by (-ty, -tx), then the same colour maps without brightness.

    Args:
        grad: (B, C, H, W) upstream gradient.
        seed, policy: as in `diff_augment`.
    Returns:
        (B, C, H, W) of grad.dtype.
    """
    return diff_augment_adjoint_flags(grad, seed, *parse_augment_policy(policy))


def diff_augment_adjoint_flags(grad, seed, color: bool, translation: bool, cutout: bool):
    if not (color or translation or cutout):
        return grad
    b, _, h, w = grad.shape
    p = augment_params_from_seed(seed, b, h, w, grad.device)
    ct = _compute_dtype(grad.dtype)
    u = grad.to(ct)  # (B, C, H, W)
    if cutout:
        u = torch.where(_cutout_keep(p, h, w), u, torch.zeros((), dtype=ct, device=u.device))
    if translation:
        u = _translate(u, -p["translate_y"], -p["translate_x"])
    if color:
        m = u.mean(dim=(1, 2, 3), keepdim=True)  # K: contrast
        u = (u - m) * _per_sample(p["contrast"].to(ct), u) + m
        m = u.mean(dim=1, keepdim=True)  # S: saturation
        u = (u - m) * _per_sample(p["saturation"].to(ct), u) + m
    return u.to(grad.dtype)
