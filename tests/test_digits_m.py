"""The offline two-domain digits "digits-m" (the bundled digits blended with seeded colour textures, like MNIST-M)
and the 3-channel digit classifier."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastwgan import data
from fastwgan.eval.classifier import DigitClassifier, accuracy, predict, train_classifier

N = 1797


def _hash(x: torch.Tensor, y: torch.Tensor) -> str:
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def dm():
    return data.digits_m()


def test_shape_dtype_and_labels(dm):
    x, y = dm
    assert x.shape == (N, 3, 8, 8) and x.dtype == torch.uint8
    assert y.dtype == torch.int64
    assert torch.equal(y, data.load_digits(return_labels=True)[1])


def test_deterministic_in_process_and_leaves_global_rng_alone(dm):
    state = torch.get_rng_state()
    x, y = data.digits_m()
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(x, dm[0]) and torch.equal(y, dm[1])
    assert torch.equal(data.colour_textures(5, seed=3), data.colour_textures(5, seed=3))
    assert not torch.equal(data.colour_textures(5, seed=3), data.colour_textures(5, seed=4))
    assert not torch.equal(data.digits_m(seed=1)[0], x)


def test_deterministic_across_processes(dm):
    # torch seeds its global RNG randomly per process: a fresh interpreter must still make the same images.
    code = (
        "import hashlib; from fastwgan import data; x, y = data.digits_m(); "
        "print(hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest())"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _hash(*dm)


def test_blend_is_abs_texture_minus_digit(dm):
    tex = data.colour_textures(N, 8, data.DIGITS_M_SEED).numpy().astype(np.int64)
    digits = data.load_digits().numpy().astype(np.int64)
    for i in (0, 1, 17, 900, N - 1):
        expected = np.stack([np.abs(tex[i, c] - digits[i, 0]) for c in range(3)])
        np.testing.assert_array_equal(dm[0][i].numpy(), expected)


def _bilinear(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling with align_corners=True, written out: (..., g, g) -> (..., size, size)."""
    g = grid.shape[-1]
    w = np.zeros((size, g))
    for j in range(size):
        p = j * (g - 1) / (size - 1)
        k = min(int(np.floor(p)), g - 2)
        w[j, k], w[j, k + 1] = 1 - (p - k), p - k
    return w @ grid @ w.T


def _pure_hue(h: float) -> np.ndarray:
    """The fully saturated colour of hue h (0 red, 1/3 green, 2/3 blue), written out from HSV with S = V = 1."""
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    rise, fall = f, 1 - f
    return np.array(
        [(1, rise, 0), (fall, 1, 0), (0, 1, rise), (0, fall, 1), (rise, 0, 1), (1, 0, fall)][i], dtype=np.float64
    )


def test_colour_textures_follow_the_documented_recipe():
    n, size, seed = 7, 8, 5
    g = torch.Generator().manual_seed(seed)
    shapes = ((n, 1, 1, 1), (n, 1, 3, 3), (n, 1, 5, 5), (n, 1, 1, 1), (n, 1, 1, 1), (n, 1, 1, 1), (n, 3, 1, 1))
    base, coarse, fine, gain, hue, sat, offset = (
        torch.rand(*s, generator=g, dtype=torch.float64).numpy() for s in shapes
    )
    light = np.clip(
        base + (0.3 + 0.6 * gain) * (_bilinear(coarse, size) - 0.5 + 0.25 * (_bilinear(fine, size) - 0.5)), 0, 1
    )
    pure = np.stack([_pure_hue(float(h)) for h in hue.ravel()])[:, :, None, None]  # (n, 3, 1, 1)
    tint = 1 - (0.15 + 0.35 * sat) * (1 - pure)
    expected = np.rint(np.clip(light * tint + 0.08 * (offset - 0.5), 0, 1) * 255)
    got = data.colour_textures(n, size, seed).numpy().astype(np.float64)
    assert got.shape == (n, 3, size, size)
    assert np.abs(got - expected).max() <= 1  # exact up to a rounding tie


def test_textures_are_not_constant():
    tex = data.colour_textures(200).float()
    sd = tex.flatten(1).std(1)  # every texture varies (one clamped field can be nearly flat, like a patch of sky)
    assert sd.min() > 1 and (sd > 10).double().mean() > 0.9
    assert tex.std((2, 3)).mean(1).median() > 10  # and mostly in space, not only across channels
    means = tex.mean((2, 3))  # (200, 3) mean colours
    assert torch.cdist(means, means).add(torch.eye(200) * 1e9).min() > 0  # all different
    assert means.mean(1).max() - means.mean(1).min() > 100  # varied brightness
    spread = means.max(1).values - means.min(1).values  # tinted: colours, not grey, but not garish
    assert spread.median() > 10 and spread.max() < 160


def _channel_correlation(tex: torch.Tensor) -> torch.Tensor:
    """(n,) the mean over channel pairs of the correlation over pixels, per texture (flat channels count as 1)."""
    f = tex.double().flatten(2)
    f = f - f.mean(2, keepdim=True)
    norm = f.norm(dim=2, keepdim=True)
    u = torch.where(norm > 0, f / norm.clamp(min=1e-12), torch.zeros_like(f))
    r = torch.stack([(u[:, a] * u[:, b]).sum(1) for a, b in ((0, 1), (0, 2), (1, 2))], 1)
    flat = (norm[:, :, 0] == 0).any(1)
    return torch.where(flat, torch.ones(len(r), dtype=r.dtype), r.mean(1))


def test_texture_channels_are_luminance_correlated():
    # one intensity field per texture, tinted: the channels rise and fall together (they were independent before)
    r = _channel_correlation(data.colour_textures(300, seed=2))
    assert r.median() > 0.95 and r.quantile(0.1) > 0.8


def test_strokes_mostly_contrast_the_same_way_in_every_channel(dm):
    # |texture - digit|: on a luminance-correlated texture the strokes are darker (or brighter) than the background in
    # all three channels at once, except on colourful mid-brightness patches. Independent channels: ~72% mixed.
    x, digit = dm[0].double(), data.load_digits()[:, 0]
    stroke, bg = (digit >= 128).unsqueeze(1).double(), (digit == 0).unsqueeze(1).double()
    contrast = (x * stroke).sum((2, 3)) / stroke.sum((2, 3)) - (x * bg).sum((2, 3)) / bg.sum((2, 3))
    sign = torch.sign(contrast)
    mixed = ((sign.max(1).values > 0) & (sign.min(1).values < 0)).double().mean()
    assert mixed < 0.35


@pytest.mark.parametrize("part", ["train", "heldout"])
def test_splits_match_digits_split(dm, part):
    x, y = data.digits_m(part)
    xd, yd = data.digits_split(part)
    assert len(x) == len(xd) == (1297 if part == "train" else 500)
    assert torch.equal(y, yd)
    # image j is the blend of digits_split image j with the texture of its index in the full set
    perm = np.random.default_rng(0).permutation(N)  # the fixed split permutation, written out again
    idx = torch.from_numpy(perm[500:] if part == "train" else perm[:500])
    assert torch.equal(xd, data.load_digits()[idx])
    tex = data.colour_textures(N)[idx]
    assert torch.equal(x, (tex.int() - xd.int()).abs().to(torch.uint8))
    assert torch.equal(x, dm[0][idx])
    assert torch.equal(x, data.load(f"digits-m-{part}"))


def test_split_images_are_the_full_images_reindexed(dm):
    # the full set and the two parts together hold the same images (a permutation), with no overlap.
    xt, _ = data.digits_m("train")
    xh, _ = data.digits_m("heldout")
    both = torch.cat([xt, xh]).flatten(1)
    full = dm[0].flatten(1)
    key = lambda a: sorted(map(bytes, a.numpy()))  # noqa: E731
    assert key(both) == key(full)


def test_load_names_labels_and_channels(dm):
    for name in ("digits-m", "digits-m-train", "digits-m-heldout"):
        assert name in data.BUILTIN and data.is_named(name)
        assert data.class_names(name) == [str(i) for i in range(10)]
    x, y = data.load("digits-m-heldout", labels=True)
    xh, yh = data.digits_m("heldout")
    assert torch.equal(x, xh) and torch.equal(y, yh)
    assert torch.equal(data.load_labels("digits-m-train"), data.digits_m("train")[1])
    assert torch.equal(data.load("digits-m"), dm[0])
    gray = data.load("digits-m", channels=1)
    assert gray.shape == (N, 1, 8, 8) and gray.dtype == torch.uint8
    f = dm[0].double()
    assert torch.equal(gray[:, 0], torch.round(f[:, 0] * 0.299 + f[:, 1] * 0.587 + f[:, 2] * 0.114).to(torch.uint8))
    assert "digits_m" in data.__all__ and "colour_textures" in data.__all__


def test_bad_part_is_refused():
    with pytest.raises(data.DataError, match="digits_m: part"):
        data.digits_m("test")


def test_three_channel_classifier_trains_and_predicts():
    x, y = data.digits_m("train")
    model = train_classifier(x[:256], y[:256], steps=4, seed=0)
    assert model.channels == 3 and model.body[0].in_channels == 3
    xh, yh = data.digits_m("heldout")
    p = predict(model, xh[:50])
    assert p.shape == (50,) and p.dtype == torch.int64 and 0 <= int(p.min()) and int(p.max()) <= 9
    assert 0.0 <= accuracy(model, xh[:50], yh[:50]) <= 1.0
    with pytest.raises(ValueError, match=r"expected \(N, 3, 8, 8\)"):
        predict(model, data.digits_split("heldout")[0][:5])  # 1-channel digits into a 3-channel model
    one = train_classifier(*data.digits_split("train"), steps=1, seed=0)
    assert one.channels == 1 and one.body[0].in_channels == 1
    with pytest.raises(ValueError, match=r"expected \(N, 1, 8, 8\)"):
        predict(one, xh[:5])
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\) or \(N, 3, 8, 8\)"):
        train_classifier(torch.zeros(4, 2, 8, 8, dtype=torch.uint8), torch.zeros(4), steps=1)


def test_default_classifier_is_one_channel():
    torch.manual_seed(0)
    a = DigitClassifier()
    torch.manual_seed(0)
    b = DigitClassifier(channels=1)
    assert a.channels == 1 and a.body[0].weight.shape == (32, 1, 3, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="channels"):
        DigitClassifier(channels=2)


def test_photometric_training_reads_digits_of_either_polarity():
    # train_classifier(photometric=True) draws a polarity, gain and offset per image and channel on every batch:
    # the classifier then reads inverted held-out digits (255 - x), which the plain recipe reads at about chance
    x, y = data.digits_split("train")
    xh, yh = data.digits_split("heldout")
    plain = train_classifier(x, y, steps=200, seed=0)
    photo = train_classifier(x, y, steps=200, seed=0, photometric=True)
    assert accuracy(plain, 255 - xh, yh) < 0.5 < 0.85 < accuracy(photo, 255 - xh, yh)
    assert accuracy(photo, xh, yh) > 0.85  # and still the digits as they are
    again = train_classifier(x, y, steps=200, seed=0, photometric=True)  # the seed fixes the draws too
    assert all(torch.equal(p, q) for p, q in zip(photo.state_dict().values(), again.state_dict().values()))
