"""fastwgan.data labels: load(source, labels=True), load_labels, class_names and check_labels on every format,
built here in tmp_path, and every bad input (one line that names the source and the problem)."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from datafiles import idx_bytes
from PIL import Image

from fastwgan import data


def _rand_u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write(path, payload: bytes):
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _cifar_batch(path, labels, seed=0, key="labels"):
    d = {b"data": _rand_u8((len(labels), 3072), seed), key.encode(): list(labels), b"batch_label": b"fake"}
    path.write_bytes(pickle.dumps(d))
    return torch.from_numpy(d[b"data"].reshape(-1, 3, 32, 32))


def _png(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def _raises(fragments, call, *args, exc=ValueError, **kwargs):
    """`call` raises `exc` with ONE line holding every fragment; returns the message."""
    with pytest.raises(exc) as e:
        call(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert str(f) in msg, f"{f!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------------------------------------------------------
# Bundled digits
# ---------------------------------------------------------------------------------------------------------------
def test_default_return_unchanged():
    x = data.load("digits")
    assert isinstance(x, torch.Tensor) and torch.equal(x, data.load("digits", labels=False))
    assert {"class_names", "check_labels"} <= set(data.__all__)


def test_digits_labels():
    x, y = data.load("digits", labels=True)
    x0, y0 = data.load_digits(return_labels=True)
    assert torch.equal(x, x0) and torch.equal(y, y0) and y.dtype == torch.int64
    assert torch.equal(data.load_labels("digits"), y0)
    assert data.class_names("digits") == [str(i) for i in range(10)]


@pytest.mark.parametrize("part", ["train", "heldout"])
def test_digits_split_labels_match_images(part):
    x, y = data.load(f"digits-{part}", labels=True)
    assert torch.equal(x, data.load(f"digits-{part}"))
    assert len(x) == len(y) == (1297 if part == "train" else 500) and y.dtype == torch.int64
    # each split image's label is a label the full set gives that very image (match on pixels)
    full_x, full_y = data.load_digits(return_labels=True)
    by_pixels = {}
    for img, lab in zip(full_x.numpy(), full_y.tolist()):
        by_pixels.setdefault(img.tobytes(), set()).add(lab)
    assert all(lab in by_pixels[img.tobytes()] for img, lab in zip(x.numpy(), y.tolist()))
    assert torch.equal(data.load_labels(f"digits-{part}"), y)
    assert data.class_names(f"digits-{part}") == data.class_names("digits")
    # image_size / channels change the images only
    xr, yr = data.load(f"digits-{part}", labels=True, image_size=16, channels=3)
    assert torch.equal(xr, data.load(f"digits-{part}", image_size=16, channels=3)) and torch.equal(yr, y)


def test_stacked_digits_and_toys_refused():
    _raises(["stacked-digits", "3 digits"], data.load, "stacked-digits", labels=True)
    _raises(["stacked-digits", "3 digits"], data.load_labels, "stacked-digits")
    _raises(["toy:8gaussians", "no labels"], data.load, "toy:8gaussians", labels=True)
    _raises(["toy:8gaussians", "no labels"], data.load_labels, "toy:8gaussians")
    assert data.class_names("stacked-digits") is None and data.class_names("toy:8gaussians") is None


# ---------------------------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "images_name,labels_name",
    [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ("t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"),
        ("train-images-idx3.ubyte", "train-labels-idx1.ubyte"),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte"),  # compression may differ
    ],
)
def test_idx_labels_beside_images(tmp_path, images_name, labels_name):
    imgs, labels = _rand_u8((7, 5, 5)), np.array([3, 1, 4, 1, 5, 9, 2], np.uint8)
    _write(tmp_path / images_name, idx_bytes(imgs))
    _write(tmp_path / labels_name, idx_bytes(labels))
    x, y = data.load(tmp_path / images_name, labels=True)
    assert torch.equal(x, data.load(tmp_path / images_name))
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    assert torch.equal(data.load_labels(tmp_path / images_name), y)
    assert torch.equal(data.load_labels(tmp_path / labels_name), y)  # the labels file on its own
    assert data.class_names(tmp_path / images_name) is None
    xr, yr = data.load(tmp_path / images_name, labels=True, image_size=8, channels=3)
    assert xr.shape == (7, 3, 8, 8) and torch.equal(yr, y)


@pytest.mark.parametrize("fmt", ["idx", "idx.gz", "npy", "npz"])
def test_explicit_labels_path(tmp_path, fmt):
    imgs, labels = _rand_u8((4, 3, 3)), np.array([2, 0, 1, 2], np.uint8)
    _write(tmp_path / "train-images-idx3-ubyte", idx_bytes(imgs))
    _write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))  # ignored: labels_path wins
    lp = tmp_path / {"idx": "mine-idx1-ubyte", "idx.gz": "mine-idx1-ubyte.gz", "npy": "y.npy", "npz": "y.npz"}[fmt]
    if fmt.startswith("idx"):
        _write(lp, idx_bytes(labels))
    elif fmt == "npy":
        np.save(lp, labels.astype(np.int32))
    else:
        np.savez(lp, labels=labels)
    x, y = data.load(tmp_path / "train-images-idx3-ubyte", labels=True, labels_path=lp)
    assert torch.equal(x[:, 0], torch.from_numpy(imgs)) and y.tolist() == [2, 0, 1, 2]
    assert torch.equal(data.load_labels(tmp_path / "train-images-idx3-ubyte", labels_path=lp), y)
    np.save(tmp_path / "images.npy", imgs)  # a .npy needs labels_path
    assert data.load(tmp_path / "images.npy", labels=True, labels_path=lp)[1].tolist() == [2, 0, 1, 2]


def test_idx_bad_labels(tmp_path):
    img = tmp_path / "train-images-idx3-ubyte.gz"
    _write(img, idx_bytes(_rand_u8((5, 4, 4))))
    _raises([img, "train-labels-idx1-ubyte.gz", "label file"], data.load, img, labels=True)
    _write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.arange(4, dtype=np.uint8)))
    _raises([img, "5 images but 4 labels"], data.load, img, labels=True)
    lp = tmp_path / "other-labels-idx1-ubyte"
    _raises(["labels_path", "no such file", lp], data.load, img, labels=True, labels_path=lp, exc=FileNotFoundError)
    _write(lp, idx_bytes(_rand_u8((5, 2, 2))))  # an images file given as labels
    _raises([lp, "3 dimensions, expected 1"], data.load, img, labels=True, labels_path=lp)
    _raises(["labels_path", "labels=True"], data.load, img, labels_path=lp)
    _raises(["labels_path", "digits"], data.load, "digits", labels=True, labels_path=lp)
    _raises(["labels must be True or False", "labels_path"], data.load, img, labels=str(lp))
    lab = tmp_path / "train-labels-idx1-ubyte.gz"
    _raises([lab, "images file"], data.load, lab)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------------------------
def test_cifar_labels_in_load_order(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    b10 = _cifar_batch(folder / "data_batch_10", [9, 9], seed=10)
    b2 = _cifar_batch(folder / "data_batch_2", [5, 6, 7], seed=2)
    b1 = _cifar_batch(folder / "data_batch_1", [0, 1, 2, 3], seed=1)
    _cifar_batch(folder / "test_batch", [8], seed=99)  # not part of the training set
    x, y = data.load(folder, labels=True)
    assert torch.equal(x, torch.cat([b1, b2, b10])) and torch.equal(x, data.load(folder))  # numeric order 1, 2, 10
    assert y.tolist() == [0, 1, 2, 3, 5, 6, 7, 9, 9]
    assert torch.equal(data.load_labels(folder), y)
    xb, yb = data.load(folder / "data_batch_2", labels=True)
    assert torch.equal(xb, b2) and yb.tolist() == [5, 6, 7]
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert data.class_names(folder) == names and data.class_names(folder / "test_batch") == names
    assert data.load(folder, labels=True, channels=1, image_size=8)[1].tolist() == y.tolist()


def test_cifar_bad_labels(tmp_path):
    p = tmp_path / "data_batch_1"
    _cifar_batch(p, [0, 1, 2])
    d = pickle.loads(p.read_bytes())
    d[b"labels"] = [0, 1]
    p.write_bytes(pickle.dumps(d))
    _raises([p, "3 images but 2 labels"], data.load, p, labels=True)
    del d[b"labels"]
    p.write_bytes(pickle.dumps(d))
    _raises([p, "no 'labels'"], data.load, p, labels=True)
    d[b"labels"] = [0, 1, 12]  # CIFAR-10 has 10 classes
    p.write_bytes(pickle.dumps(d))
    _raises([p, "label 12", "num_classes=10"], data.load, p, labels=True)
    _raises(["labels_path", "own labels"], data.load, p, labels=True, labels_path=p)


# ---------------------------------------------------------------------------------------------------------------
# Image folders (torchvision ImageFolder layout)
# ---------------------------------------------------------------------------------------------------------------
def _class_folder(root):
    """3 classes whose names sort differently from their paths ("cat-big/..." < "cat/..." as '-' < '/'), a nested
    image, and a sub-folder with no image. Image pixels encode (class, index) so each label can be checked."""
    names = ["cat", "cat-big", "dog"]
    files = {"cat": ["b.png", "a.png", "sub/c.png"], "cat-big": ["z.png"], "dog": ["m.png", "n.png"]}
    for k, name in enumerate(names):
        for j, f in enumerate(files[name]):
            a = np.full((6, 6), 40 * k + j, np.uint8)
            a[0, 0] = k
            _png(root / name / f, a)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a class")
    return names


def test_image_folder_labels_line_up(tmp_path):
    names = _class_folder(tmp_path)
    x, y = data.load(tmp_path, labels=True)
    assert torch.equal(x, data.load(tmp_path)) and len(y) == len(x) == 6 and y.dtype == torch.int64
    assert torch.equal(x[:, 0, 0, 0].long(), y)  # label i goes with image i
    assert y.tolist()[0] == 1  # cat-big/z.png sorts first, class 1
    assert data.class_names(tmp_path) == names
    assert torch.equal(data.load_labels(tmp_path), y)
    xr, yr = data.load(tmp_path, labels=True, image_size=4, channels=3)
    assert xr.shape == (6, 3, 4, 4) and torch.equal(yr, y)


def test_flat_image_folder_has_no_labels(tmp_path):
    _png(tmp_path / "a.png", _rand_u8((4, 4)))
    _png(tmp_path / "k" / "b.png", _rand_u8((4, 4)))
    assert data.load(tmp_path).shape == (2, 1, 4, 4)
    _raises([tmp_path, "sub-folder per class", "a.png"], data.load, tmp_path, labels=True)
    _raises([tmp_path, "sub-folder per class"], data.load_labels, tmp_path)
    assert data.class_names(tmp_path) is None
    _raises(["labels_path", "class sub-folders"], data.load, tmp_path, labels=True, labels_path=tmp_path / "a.png")


# ---------------------------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["labels", "y"])
def test_npz_labels(tmp_path, key):
    imgs = _rand_u8((4, 3, 5, 5))
    p = tmp_path / "d.npz"
    np.savez(p, images=imgs, **{key: np.array([3, 0, 2, 1], np.int16)})
    x, y = data.load(p, labels=True)
    assert torch.equal(x, torch.from_numpy(imgs)) and y.dtype == torch.int64 and y.tolist() == [3, 0, 2, 1]
    assert torch.equal(data.load_labels(p), y) and data.class_names(p) is None
    np.savez(p, pictures=imgs, labels=np.array([[1.0], [0.0], [1.0], [1.0]]), class_names=np.array(["no", "yes"]))
    x, y = data.load(p, labels=True)  # float exact integers, (N, 1), names
    assert torch.equal(x, torch.from_numpy(imgs)) and y.tolist() == [1, 0, 1, 1]
    assert data.class_names(p) == ["no", "yes"]


BAD_NPZ = {
    "count": (np.array([0, 1, 2]), None, ["4 images but 3 labels"]),
    "negative": (np.array([0, -1, 2, 1]), None, ["labels must be >= 0", "-1", "index 1"]),
    "float": (np.array([0.0, 1.0, 1.5, 2.0]), None, ["labels must be integers", "1.5", "index 2"]),
    "nan": (np.array([0.0, np.nan, 1.0, 2.0]), None, ["labels must be integers", "nan"]),
    "strings": (np.array(["a", "b", "c", "d"]), None, ["labels must be integers", "dtype"]),
    "2-d": (np.zeros((4, 2), np.int64), None, ["1-D", "(4, 2)"]),
    "over names": (np.array([0, 1, 2, 1]), np.array(["a", "b"]), ["label 2", "num_classes=2"]),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_npz_bad_labels(tmp_path, case):
    labels, names, fragments = BAD_NPZ[case]
    p = tmp_path / "d.npz"
    np.savez(p, images=_rand_u8((4, 5, 5)), labels=labels, **({} if names is None else {"class_names": names}))
    _raises([p, *fragments], data.load, p, labels=True)
    assert data.load(p).shape == (4, 1, 5, 5)  # images alone still load


def test_sources_without_labels(tmp_path):
    np.savez(tmp_path / "nolab.npz", images=_rand_u8((2, 4, 4)))
    _raises([tmp_path / "nolab.npz", "no labels", "'labels' or 'y'"], data.load, tmp_path / "nolab.npz", labels=True)
    np.save(tmp_path / "a.npy", _rand_u8((2, 4, 4)))
    _raises([tmp_path / "a.npy", "no labels", "labels_path"], data.load, tmp_path / "a.npy", labels=True)
    _raises([tmp_path / "a.npy", "no labels"], data.load_labels, tmp_path / "a.npy")
    assert data.class_names(tmp_path / "a.npy") is None


# ---------------------------------------------------------------------------------------------------------------
# check_labels, the validator the trainers call
# ---------------------------------------------------------------------------------------------------------------
def test_check_labels():
    y = data.check_labels(torch.tensor([0, 2, 1], dtype=torch.uint8), 3, num_classes=3)
    assert y.dtype == torch.int64 and y.tolist() == [0, 2, 1]
    assert data.check_labels(np.array([1.0, 0.0]), 2).tolist() == [1, 0]
    assert data.check_labels([4, 5], None).tolist() == [4, 5]
    assert data.check_labels(torch.zeros(0, dtype=torch.long), 0, num_classes=1).shape == (0,)
    _raises(["train", "label 3 at index 1", "num_classes=3"], data.check_labels, [0, 3, 1], 3, 3, what="train")
    _raises(["labels", "1-D", "length 4", "(2, 2)"], data.check_labels, torch.zeros(2, 2, dtype=torch.long), 4)
    _raises(["labels", "4 images but 3 labels"], data.check_labels, torch.tensor([0, 1, 2]), 4)
    _raises(["labels must be integers", "torch.bool"], data.check_labels, torch.tensor([True, False]), 2)
    _raises(["labels must be integers", "0.5"], data.check_labels, torch.tensor([0.5]), 1)
    _raises(["labels must be >= 0", "-2"], data.check_labels, torch.tensor([1, -2]), 2)
    _raises(["num_classes must be a positive int"], data.check_labels, [0], 1, num_classes=0)
