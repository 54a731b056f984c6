"""fastwgan.data: every reader on files built here, toys, normalisation, writers, and every bad input."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from datafiles import idx_bytes
from PIL import Image

from fastwgan import data
from fastwgan.data import readers


def _rand_u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Bundled digits
# ---------------------------------------------------------------------------------------------------------------
def test_digits_shape_dtype_labels():
    x = data.load("digits")
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.uint8
    assert x.min() == 0 and x.max() == 255
    x2, y = data.load_digits(return_labels=True)
    assert torch.equal(x, x2)
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(10))
    assert torch.equal(data.load_labels("digits"), y)
    x[0] = 7  # callers get their own copy
    assert not torch.equal(data.load("digits")[0], x[0])


def test_digits_resize_and_channels():
    x = data.load("digits", image_size=28, channels=3)
    assert x.shape == (1797, 3, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # gray -> RGB is a repeat


# ---------------------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------------------
def test_to_float_to_uint8_round_trip():
    u = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    f = data.to_float(u)
    assert f.dtype == torch.float32
    assert f.min() == -1.0 and f.max() == 1.0
    torch.testing.assert_close(f, u.float() / 127.5 - 1)
    assert torch.equal(data.to_uint8(f), u)
    assert torch.equal(data.to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        data.to_float(f)  # double normalisation is refused


# ---------------------------------------------------------------------------------------------------------------
# Toys
# ---------------------------------------------------------------------------------------------------------------
def test_25gaussians_statistics():
    x = data.toy("25gaussians", 10_000, seed=0)
    assert x.shape == (10_000, 2) and x.dtype == torch.float32
    centres, std = data.toy_modes("25gaussians")
    assert centres.shape == (25, 2)
    assert std == pytest.approx(0.05 / 2.828)
    torch.testing.assert_close(centres.max(), torch.tensor(4 / 2.828))
    dist = torch.cdist(x, centres)  # (N, 25)
    nearest, which = dist.min(dim=1)
    assert nearest.max() < 5 * std * 2**0.5  # 2-D radius: chi with 2 dof, 5 sigma per axis
    counts = torch.bincount(which, minlength=25)
    assert (counts == 400).all()  # balanced like the authors' loop
    # the noise really has std 0.05 / 2.828 per coordinate
    resid = x - centres[which]
    assert resid.std(dim=0).sub(std).abs().max() < 0.05 * std


def test_8gaussians_statistics():
    x = data.toy("8gaussians", 8_000, seed=1)
    centres, std = data.toy_modes("8gaussians")
    assert centres.shape == (8, 2) and std == pytest.approx(0.02 / 1.414)
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2 / 1.414))
    nearest, which = torch.cdist(x, centres).min(dim=1)
    assert nearest.max() < 6 * std
    counts = torch.bincount(which, minlength=8)
    assert counts.min() > 800 and counts.max() < 1200  # uniform choice of centre


def test_swissroll_statistics():
    x = data.toy("swissroll", 5_000, seed=0)
    assert x.shape == (5_000, 2) and torch.isfinite(x).all()
    r = (x * 7.5).norm(dim=1)  # radius t of the roll, t in [1.5 pi, 4.5 pi] plus noise
    assert r.min() > 1.5 * np.pi - 1.5 and r.max() < 4.5 * np.pi + 1.5
    with pytest.raises(ValueError, match="swissroll"):
        data.toy_modes("swissroll")


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toy_seeds(name):
    a, b, c = data.toy(name, 500, seed=3), data.toy(name, 500, seed=3), data.toy(name, 500, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_load_toy_returns_float():
    x = data.load("toy:8gaussians")
    assert x.dtype == torch.float32 and x.shape == (data.TOY_SIZE, 2)
    with pytest.raises(ValueError, match="nope"):
        data.load("toy:nope")
    with pytest.raises(ValueError, match="n must"):
        data.toy("25gaussians", 0)


# ---------------------------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------------------------
def _write_png(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_image_folder_gray_sorted_recursive(tmp_path):
    imgs = [_rand_u8((6, 5), seed=i) for i in range(3)]
    _write_png(tmp_path / "b" / "z.png", imgs[2])
    _write_png(tmp_path / "a" / "y.png", imgs[1])
    _write_png(tmp_path / "a" / "x.PNG", imgs[0])
    (tmp_path / "notes.txt").write_text("ignored")
    x = data.load(tmp_path)
    assert x.shape == (3, 1, 6, 5) and x.dtype == torch.uint8  # all grayscale -> 1 channel, H=6, W=5
    for i in range(3):
        assert torch.equal(x[i, 0], torch.from_numpy(imgs[i]))
    assert data.load_labels(tmp_path).tolist() == [0, 0, 1]  # one sub-folder per class


def test_image_folder_mixed_modes_rgb_and_jpeg(tmp_path):
    gray, rgb = _rand_u8((8, 8), 1), _rand_u8((8, 8, 3), 2)
    _write_png(tmp_path / "0.png", gray)
    _write_png(tmp_path / "1.png", rgb)
    smooth = np.stack(np.broadcast_arrays(*np.indices((8, 8)) * 20, np.full((8, 8), 90)), -1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "2.jpg", quality=95)
    x = data.load(tmp_path)
    assert x.shape == (3, 3, 8, 8)  # any colour image -> RGB
    assert torch.equal(x[0, 0], torch.from_numpy(gray)) and torch.equal(x[0, 2], torch.from_numpy(gray))
    assert torch.equal(x[1], torch.from_numpy(rgb).permute(2, 0, 1))
    assert (x[2].float() - torch.from_numpy(smooth).permute(2, 0, 1)).abs().mean() < 6  # JPEG: lossy but close
    g = data.load(tmp_path, channels=1)
    assert g.shape == (3, 1, 8, 8)
    expected = np.array(Image.fromarray(rgb).convert("L"))
    assert torch.equal(g[1, 0], torch.from_numpy(expected))


def test_image_folder_resize_mixed_sizes(tmp_path):
    _write_png(tmp_path / "a.png", np.full((10, 10, 3), 200, np.uint8))
    _write_png(tmp_path / "b.png", np.full((20, 12, 3), 50, np.uint8))  # non-square: centre crop, then resize
    with pytest.raises(ValueError, match="different sizes") as e:
        data.load(tmp_path)
    assert str(tmp_path) in str(e.value)
    x = data.load(tmp_path, image_size=16)
    assert x.shape == (2, 3, 16, 16)
    assert (x[0] == 200).all() and (x[1] == 50).all()  # constant images stay constant


def test_resize_is_antialiased():
    # A 1-pixel checkerboard downsampled 4x must average to grey, not alias to black or white.
    a = (np.indices((32, 32)).sum(0) % 2 * 255).astype(np.uint8)
    x = readers.resize(a[None, None], 8)
    assert x.shape == (1, 1, 8, 8)
    assert np.abs(x.astype(int) - 128).max() <= 2


# ---------------------------------------------------------------------------------------------------------------
# IDX, CIFAR, arrays
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels(tmp_path, gz):
    imgs, labels = _rand_u8((5, 28, 28)), np.arange(5, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write = (lambda p, b: gzip.open(p, "wb").write(b)) if gz else (lambda p, b: p.write_bytes(b))
    write(tmp_path / f"train-images-idx3-ubyte{suffix}", idx_bytes(imgs))
    write(tmp_path / f"train-labels-idx1-ubyte{suffix}", idx_bytes(labels))
    x = data.load(tmp_path / f"train-images-idx3-ubyte{suffix}")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], torch.from_numpy(imgs))
    assert data.load_labels(tmp_path / f"train-images-idx3-ubyte{suffix}").tolist() == list(range(5))
    assert data.load(tmp_path / f"train-images-idx3-ubyte{suffix}", image_size=32).shape == (5, 1, 32, 32)


def _cifar_batch(path, n=4, seed=0, bytes_keys=False):
    d = {"data": _rand_u8((n, 3072), seed), "labels": list(range(n)), "batch_label": "fake"}
    if bytes_keys:
        d = {k.encode(): v for k, v in d.items()}
    path.write_bytes(pickle.dumps(d))
    return d


def test_cifar_batch_file_and_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    b2 = _cifar_batch(folder / "data_batch_2", seed=2, bytes_keys=True)
    b1 = _cifar_batch(folder / "data_batch_1", seed=1)
    _cifar_batch(folder / "data_batch_10", seed=10)
    _cifar_batch(folder / "test_batch", seed=99)  # not part of the training set
    x = data.load(folder / "data_batch_1")
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x, torch.from_numpy(b1["data"].reshape(4, 3, 32, 32)))  # rows are R plane, G, B
    xs = data.load(folder)
    assert xs.shape == (12, 3, 32, 32)
    assert torch.equal(xs[4:8], torch.from_numpy(b2[b"data"].reshape(4, 3, 32, 32)))  # numeric order 1, 2, 10
    assert data.load_labels(folder).tolist() == [0, 1, 2, 3] * 3
    assert data.load(folder, channels=1, image_size=28).shape == (12, 1, 28, 28)


def test_cifar_refuses_non_numpy_pickle(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "evil": pytest.raises}))
    with pytest.raises(ValueError, match="refusing") as e:
        data.load(p)
    assert str(p) in str(e.value)


LAYOUTS = {
    "nhw": ((4, 6, 6), lambda a: a[:, None]),
    "nhwc1": ((4, 6, 6, 1), lambda a: a.transpose(0, 3, 1, 2)),
    "nhwc3": ((4, 6, 6, 3), lambda a: a.transpose(0, 3, 1, 2)),
    "nchw1": ((4, 1, 6, 6), lambda a: a),
    "nchw3": ((4, 3, 6, 6), lambda a: a),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fmt", ["npy", "npz-images", "npz-x", "npz-arr_0", "npz-only"])
def test_array_layouts(tmp_path, layout, fmt):
    shape, to_nchw = LAYOUTS[layout]
    a = _rand_u8(shape)
    p = tmp_path / ("a.npy" if fmt == "npy" else "a.npz")
    if fmt == "npy":
        np.save(p, a)
    elif fmt == "npz-arr_0":
        np.savez(p, a)
    elif fmt == "npz-only":
        np.savez(p, pictures=a)
    else:
        np.savez(p, **{fmt[4:]: a, "labels": np.arange(4)})
    x = data.load(p)
    assert x.dtype == torch.uint8
    assert torch.equal(x, torch.from_numpy(np.ascontiguousarray(to_nchw(a))))


def test_float_and_int_arrays(tmp_path):
    f = np.linspace(0, 1, 4 * 3 * 5 * 5, dtype=np.float32).reshape(4, 3, 5, 5)
    np.save(tmp_path / "f.npy", f)
    x = data.load(tmp_path / "f.npy")
    assert x.dtype == torch.uint8 and x.min() == 0 and x.max() == 255
    assert torch.equal(x, torch.from_numpy(np.rint(f.astype(np.float64) * 255).astype(np.uint8)))
    np.save(tmp_path / "i.npy", np.arange(2 * 4 * 4, dtype=np.int64).reshape(2, 4, 4))
    assert data.load(tmp_path / "i.npy").tolist() == np.arange(32).reshape(2, 1, 4, 4).tolist()
    np.savez(tmp_path / "l.npz", images=_rand_u8((3, 4, 4)), y=np.array([2, 0, 1]))
    assert data.load_labels(tmp_path / "l.npz").tolist() == [2, 0, 1]


# ---------------------------------------------------------------------------------------------------------------
# Bad input: each raises, naming the file and the problem.
# ---------------------------------------------------------------------------------------------------------------
def _bad_cases(tmp_path):
    """name -> (path, expected message fragment, exception type)."""
    cases = {}
    cases["missing"] = (tmp_path / "nope" / "x.npz", "no such file", FileNotFoundError)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    cases["empty folder"] = (tmp_path / "empty", "empty folder", ValueError)
    corrupt = tmp_path / "corrupt"
    _write_png(corrupt / "ok.png", _rand_u8((8, 8)))
    (corrupt / "bad.png").write_bytes(b"\x89PNG not really")
    cases["corrupt image"] = (corrupt, "bad.png", ValueError)
    trunc = tmp_path / "trunc"
    _write_png(trunc / "a.png", _rand_u8((64, 64, 3)))
    full = (trunc / "a.png").read_bytes()
    (trunc / "a.png").write_bytes(full[: len(full) // 2])
    cases["truncated image"] = (trunc, "a.png", ValueError)
    single = tmp_path / "single.png"
    _write_png(single, _rand_u8((8, 8)))
    cases["file for folder"] = (single, "expected a folder", ValueError)
    np.save(tmp_path / "shape2d.npy", _rand_u8((4, 16)))
    cases["2-d array"] = (tmp_path / "shape2d.npy", "array shape", ValueError)
    np.save(tmp_path / "c4.npy", _rand_u8((4, 5, 5, 4)))
    cases["4 channels"] = (tmp_path / "c4.npy", "channels must be 1 or 3", ValueError)
    np.save(tmp_path / "range.npy", np.full((2, 4, 4), 2.0, np.float32))
    cases["float out of range"] = (tmp_path / "range.npy", "[0, 1]", ValueError)
    np.save(tmp_path / "nan.npy", np.full((2, 4, 4), np.nan, np.float32))
    cases["float nan"] = (tmp_path / "nan.npy", "image 0 holds nan (at index (0, 0, 0))", ValueError)
    np.save(tmp_path / "neg.npy", np.full((2, 4, 4), -1, np.int32))
    cases["int out of range"] = (tmp_path / "neg.npy", "0..255", ValueError)
    np.save(tmp_path / "cplx.npy", np.zeros((2, 4, 4), np.complex64))
    cases["complex dtype"] = (tmp_path / "cplx.npy", "dtype", ValueError)
    np.savez(tmp_path / "keys.npz", a=_rand_u8((2, 4, 4)), b=_rand_u8((2, 4, 4)))
    cases["ambiguous npz"] = (tmp_path / "keys.npz", "which array", ValueError)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cases["corrupt npz"] = (tmp_path / "junk.npz", "not a readable", ValueError)
    (tmp_path / "t-images-idx3-ubyte").write_bytes(idx_bytes(_rand_u8((3, 4, 4)))[:-5])
    cases["truncated idx"] = (tmp_path / "t-images-idx3-ubyte", "truncated", ValueError)
    (tmp_path / "m-images-idx3-ubyte").write_bytes(b"\x01\x02\x08\x03" + bytes(20))
    cases["bad idx magic"] = (tmp_path / "m-images-idx3-ubyte", "magic", ValueError)
    (tmp_path / "g-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    cases["corrupt gzip"] = (tmp_path / "g-images-idx3-ubyte.gz", "cannot read", ValueError)
    (tmp_path / "data_batch_7").write_bytes(b"garbage")
    cases["corrupt cifar"] = (tmp_path / "data_batch_7", "CIFAR", ValueError)
    (tmp_path / "data.csv").write_text("1,2,3")
    cases["unknown file"] = (tmp_path / "data.csv", "unrecognised", ValueError)
    return cases


def test_bad_inputs_name_the_file(tmp_path):
    cases = _bad_cases(tmp_path)
    for name, (path, fragment, exc) in cases.items():
        with pytest.raises(exc) as e:
            data.load(path)
        msg = str(e.value)
        assert str(path) in msg, f"{name}: message does not name the path: {msg}"
        assert fragment in msg, f"{name}: message does not say {fragment!r}: {msg}"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown data source 'mnist'"):
        data.load("mnist")
    with pytest.raises(ValueError, match="channels"):
        data.load("digits", channels=2)
    with pytest.raises(ValueError, match="image_size"):
        data.load("digits", image_size=0)
    with pytest.raises(ValueError, match="no labels"):
        data.load_labels(data.__file__)
    assert issubclass(data.DataError, ValueError)


def test_labels_need_class_folders(tmp_path):
    _write_png(tmp_path / "a.png", _rand_u8((4, 4)))
    with pytest.raises(ValueError, match="sub-folder") as e:
        data.load_labels(tmp_path)
    assert str(tmp_path) in str(e.value)
    (tmp_path / "x-images-idx3-ubyte").write_bytes(idx_bytes(_rand_u8((2, 4, 4))))
    with pytest.raises(ValueError, match="label file"):
        data.load_labels(tmp_path / "x-images-idx3-ubyte")


# ---------------------------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_save_image_folder_round_trip(tmp_path, channels):
    u = torch.from_numpy(_rand_u8((11, channels, 5, 7)))
    paths = data.save_image_folder(data.to_float(u), tmp_path / "out", start_index=95)
    assert [p.name for p in paths][:2] == ["000095.png", "000096.png"] and len(paths) == 11
    back = data.load(tmp_path / "out")
    assert torch.equal(back, u)  # sorted names keep the order
    with pytest.raises(ValueError, match="is a file") as e:
        data.save_image_folder(u, paths[0])
    assert str(paths[0]) in str(e.value)


def test_save_grid_layout(tmp_path):
    u = torch.from_numpy(_rand_u8((5, 3, 4, 6)))
    p = data.save_grid(u, tmp_path / "sub" / "grid.png", nrow=2, padding=1)
    g = np.asarray(Image.open(p))
    assert g.shape == (3 * 5 + 1, 2 * 7 + 1, 3)  # 3 rows x 2 columns of 4x6 with 1 px padding
    assert np.array_equal(g[1:5, 1:7], u[0].permute(1, 2, 0).numpy())
    assert np.array_equal(g[6:10, 8:14], u[3].permute(1, 2, 0).numpy())  # image 3: row 1, column 1
    assert (g[11:15, 8:14] == 0).all()  # the empty slot stays black
    gray = data.save_grid(data.to_float(u[:, :1]), tmp_path / "gray.png")  # default nrow = ceil(sqrt(5)) = 3
    assert np.asarray(Image.open(gray)).shape == (2 * 6 + 2, 3 * 8 + 2)
    with pytest.raises(ValueError, match="shape"):
        data.save_grid(torch.zeros(5, 2), tmp_path / "x.png")


def test_save_npz_round_trip(tmp_path):
    u = torch.from_numpy(_rand_u8((6, 3, 4, 4)))
    data.save_npz(data.to_float(u), tmp_path / "s.npz")
    assert torch.equal(data.load(tmp_path / "s.npz"), u)
    pts = data.toy("8gaussians", 10)
    data.save_npz(pts, tmp_path / "toy.npz")
    with np.load(tmp_path / "toy.npz") as z:
        assert np.array_equal(z["x"], pts.numpy())
