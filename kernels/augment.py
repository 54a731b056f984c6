"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training") in one launch.

Per sample b of x (B, C, H, W), with parameters drawn in the kernel from a seed (the counter-based hash of
kernels/gp.py; `fastwgan.ops.twins.augment_params_from_seed` draws the same bits):
  color        x <- x + bri;  x <- (x - mean_C x) sat + mean_C x;  x <- (x - mean_CHW x) con + mean_CHW x
  translation  y[h, w] = x[h - ty, w - tx] if in bounds, else 0
  cutout       y[h, w] = 0 inside a (CUT_H, CUT_W) square at rows [cy - CUT_H // 2, cy - CUT_H // 2 + CUT_H),
               columns likewise
applied in that order (the official DiffAugment-pytorch order). mean_C of the brightened image is
mean_C x + bri and the contrast mean of the saturated image is mean_CHW x + bri, so the colour block is
  y = ((x - m_C) sat + (m_C - m)) con + m + bri,   m_C = mean_C x (per pixel), m = mean_CHW x (per sample)
and the whole augmentation is affine: aug(x) = A x + bri * keep, A = cutout . translate . K . S.

Adjoint (the backward): A^T = S^T K^T translate^T cutout^T. S (saturation) and K (contrast) are
s I + (1 - s) P with P an orthogonal projection (channel mean, sample mean), so they are self-adjoint and commute;
translate^T gathers from (h + ty, w + tx), and the cutout mask is applied at that source pixel. With
u = translate^T cutout^T g:  A^T g = sat con u + (1 - sat) con m_C(u) + (1 - con) m(u), the same expression
as the linear colour block above evaluated on u, so one kernel does both (ADJOINT flips the gather and the mask).

Structure: one program per sample looping over its pixels twice, (1) the per-sample mean (of x, or of u for the
adjoint), (2) the output. Chosen over a separate torch reduction because the adjoint's mean is of the
un-translated, masked gradient, which a plain reduction would first have to materialise; here both passes share
the gather. Parallelism is B programs: fine for GAN batches (images of a few thousand elements per sample).
"""

import torch
import triton
import triton.language as tl

from .common import check_float, hash32, round_to

#: Random slots per sample: parameter j of sample b uses counter b * SLOTS + j + 1 (see PARAM_SLOTS).
SLOTS = 8
#: Slot of each parameter (7 is unused, reserved). The same layout in fastwgan.ops.twins.augment_params_from_seed.
PARAM_SLOTS = {
    "brightness": 0,
    "saturation": 1,
    "contrast": 2,
    "translate_y": 3,
    "translate_x": 4,
    "cutout_y": 5,
    "cutout_x": 6,
}
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def sizes(h: int, w: int) -> tuple[int, int, int, int]:
    """(shift_h, shift_w, cut_h, cut_w) of the official code: int(size * ratio + 0.5)."""
    return (
        int(h * TRANSLATION_RATIO + 0.5),
        int(w * TRANSLATION_RATIO + 0.5),
        int(h * CUTOUT_RATIO + 0.5),
        int(w * CUTOUT_RATIO + 0.5),
    )


@triton.jit
def _bits24(seed_hash, b, j):
    # 24 uniform bits for slot j of sample b: hash(hash(seed) + (b * SLOTS + j + 1) * GOLDEN) >> 8
    return hash32(seed_hash + (b * 8 + j + 1) * 0x61C88647) >> 8


@triton.jit
def _uniform(seed_hash, b, j):
    # a multiple of 2^-24 in [0, 1), exact in fp32
    return _bits24(seed_hash, b, j).to(tl.float32) * (1.0 / 16777216.0)


@triton.jit
def _randint(seed_hash, b, j, count):
    # floor(u * count) in integers: exact for any count (u * count in fp32 can round up to count)
    return (_bits24(seed_hash, b, j) * count) >> 24


@triton.jit
def _gather(
    X,
    base,
    C,
    H,
    W,
    start,
    ty,
    tx,
    lo_h,
    lo_w,
    CUT_H,
    CUT_W,
    TRANSLATION: tl.constexpr,
    CUTOUT: tl.constexpr,
    ADJOINT: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    # For destination pixels p = start .. start + BLOCK_P (flat h * W + w): the C channels of the source pixel
    # (h - ty, w - tx), 0 where the source is out of bounds or the cutout square covers the pixel (the destination
    # in the forward, the source in the adjoint). Returns ((BLOCK_C, BLOCK_P) fp32 values, (BLOCK_P,) valid, p).
    p = start + tl.arange(0, BLOCK_P)
    ch = tl.arange(0, BLOCK_C).to(tl.int64)
    h = p // W
    w = p % W
    src_h = h - ty
    src_w = w - tx
    valid = p < H * W
    if TRANSLATION:
        valid = valid & (src_h >= 0) & (src_h < H) & (src_w >= 0) & (src_w < W)
    if CUTOUT:
        if ADJOINT:
            cut = (src_h >= lo_h) & (src_h < lo_h + CUT_H) & (src_w >= lo_w) & (src_w < lo_w + CUT_W)
        else:
            cut = (h >= lo_h) & (h < lo_h + CUT_H) & (w >= lo_w) & (w < lo_w + CUT_W)
        valid = valid & (cut == 0)
    src = (src_h * W + src_w).to(tl.int64)
    mask = (ch[:, None] < C) & valid[None, :]
    v = tl.load(X + base + ch[:, None] * H * W + src[None, :], mask=mask, other=0.0).to(tl.float32)
    return v, valid, p


@triton.jit
def diff_augment_kernel(
    X,  # *T (B, C, H, W) input; the upstream gradient when ADJOINT
    SEED,  # *int64 0-d seed
    OUT,  # *T (B, C, H, W) augmented x, or A^T g when ADJOINT
    C,  # channels
    H,  # height
    W,  # width
    C_F,  # fp32 C (a float: Triton specialises an int argument equal to 1 into a constexpr)
    N_F,  # fp32 C * H * W
    SHIFT_H,  # translation: ty uniform in [-SHIFT_H, SHIFT_H]
    SHIFT_W,  # translation: tx uniform in [-SHIFT_W, SHIFT_W]
    CUT_H,  # cutout square height
    CUT_W,  # cutout square width
    COLOR: tl.constexpr,
    TRANSLATION: tl.constexpr,
    CUTOUT: tl.constexpr,
    ADJOINT: tl.constexpr,  # compute A^T X instead of A X
    BRIGHTNESS: tl.constexpr,  # add the brightness constant (the affine forward; False: the linear part A x)
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    hw = H * W
    base = b * C * hw
    seed_hash = hash32(tl.load(SEED).to(tl.int64))
    ch = tl.arange(0, BLOCK_C).to(tl.int64)

    # ---- parameters of sample b (slot layout: PARAM_SLOTS) ----
    ty = 0
    tx = 0
    if TRANSLATION:
        ty = _randint(seed_hash, b, 3, 2 * SHIFT_H + 1) - SHIFT_H
        tx = _randint(seed_hash, b, 4, 2 * SHIFT_W + 1) - SHIFT_W
        if ADJOINT:  # translate^T gathers from (h + ty, w + tx)
            ty = -ty
            tx = -tx
    lo_h = 0
    lo_w = 0
    if CUTOUT:
        lo_h = _randint(seed_hash, b, 5, H + 1 - CUT_H % 2) - CUT_H // 2
        lo_w = _randint(seed_hash, b, 6, W + 1 - CUT_W % 2) - CUT_W // 2

    if COLOR:
        bri = _uniform(seed_hash, b, 0) - 0.5
        sat = _uniform(seed_hash, b, 1) * 2.0
        con = _uniform(seed_hash, b, 2) + 0.5
        # ---- pass 1: per-sample mean of the colour block's input (x; u = translate^T cutout^T g if ADJOINT) ----
        acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=tl.float32)
        start = 0
        while start < hw:  # a while loop for triton 3.6's interpreter, see kernels/gp.py
            if ADJOINT:
                v, valid, p = _gather(
                    X,
                    base,
                    C,
                    H,
                    W,
                    start,
                    ty,
                    tx,
                    lo_h,
                    lo_w,
                    CUT_H,
                    CUT_W,
                    TRANSLATION,
                    CUTOUT,
                    True,
                    BLOCK_C,
                    BLOCK_P,
                )
            else:
                v, valid, p = _gather(
                    X, base, C, H, W, start, 0, 0, 0, 0, CUT_H, CUT_W, False, False, False, BLOCK_C, BLOCK_P
                )
            acc += v
            start += BLOCK_P
        mean = tl.div_rn(tl.sum(tl.sum(acc, axis=1), axis=0), N_F)

    # ---- pass 2: the output ----
    start = 0
    while start < hw:
        v, valid, p = _gather(
            X, base, C, H, W, start, ty, tx, lo_h, lo_w, CUT_H, CUT_W, TRANSLATION, CUTOUT, ADJOINT, BLOCK_C, BLOCK_P
        )
        y = v
        if COLOR:
            # forward: y = ((v - m_C) sat + (m_C - m)) con + m (+ bri), zero where translation/cutout zero it;
            # adjoint: the same linear expression on u = v everywhere (= sat con u + (1 - sat) con m_C + (1 - con) m)
            m_c = tl.div_rn(tl.sum(v, axis=0), C_F)  # (BLOCK_P,)
            y = ((v - m_c[None, :]) * sat + (m_c[None, :] - mean)) * con + mean
            if BRIGHTNESS:
                y = y + bri
            if not ADJOINT:
                y = tl.where(valid[None, :], y, 0.0)
        out_mask = (ch[:, None] < C) & (p < hw)[None, :]
        tl.store(
            OUT + base + ch[:, None] * hw + p[None, :].to(tl.int64), round_to(y, OUT.dtype.element_ty), mask=out_mask
        )
        start += BLOCK_P


def diff_augment(
    x, seed, color: bool, translation: bool, cutout: bool, adjoint: bool = False, brightness: bool = True
) -> torch.Tensor:
    """Launcher: DiffAugment of x (B, C, H, W) with parameters from `seed` (0-d int64), or its adjoint A^T x.

    brightness=False drops the constant (the linear part A x); it is ignored by the adjoint (always linear).
    """
    check_float("diff_augment", x)
    if x.dim() != 4:
        raise ValueError(f"diff_augment needs (B, C, H, W), got shape {tuple(x.shape)}")
    out = torch.empty_like(x)
    b, c, h, w = x.shape
    if x.numel() == 0:
        return out
    shift_h, shift_w, cut_h, cut_w = sizes(h, w)
    block_c = triton.next_power_of_2(c)
    block_p = min(triton.next_power_of_2(h * w), max(16, 2048 // block_c))
    diff_augment_kernel[(b,)](
        x,
        seed,
        out,
        c,
        h,
        w,
        float(c),
        float(c * h * w),
        shift_h,
        shift_w,
        cut_h,
        cut_w,
        COLOR=color,
        TRANSLATION=translation,
        CUTOUT=cutout,
        ADJOINT=adjoint,
        BRIGHTNESS=brightness and not adjoint,
        BLOCK_C=block_c,
        BLOCK_P=block_p,
    )
    return out
