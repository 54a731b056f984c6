"""The files of ``fastwgan sample`` and ``score``, as Python functions: many samples streamed to disk (data
augmentation), the inputs ``score`` reads, and score CSVs written and read back.
"""

from __future__ import annotations

import csv
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["sample_batches", "write_samples", "load_inputs", "write_scores", "write_scores_csv", "read_scores_csv"]


def sample_batches(trainer, n: int, seed: int | None = None, batch_size: int = 1024, labels=None):
    """Yield ``n`` samples in batches of ``batch_size`` (the last may be shorter) without drawing all noise at once.

    The noise comes from one seeded stream (default ``config.seed + 1``, as ``trainer.sample``), drawn batch by
    batch, so the samples depend on ``seed`` and ``batch_size``. A class-conditional trainer samples the classes
    ``labels`` (``trainer.sample_labels``: an int, n ids, or None for balanced).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    y = trainer.sample_labels(n, labels)
    g = trainer.sample_noise_generator(seed)
    for i in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - i), trainer.config.latent_dim, generator=g)
        yield trainer.sample_from(z, batch_size, y=None if y is None else y[i : i + batch_size])


def _npy_into_zip(members: dict[str, Path], out: Path) -> None:
    """Put .npy files into a new .npz (a zip of .npy members) under their keys, streaming them (np.load reads it
    back)."""
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for key, npy in members.items():
            zf.write(npy, arcname=key + ".npy")
    os.replace(tmp, out)


def write_samples(
    trainer,
    n: int,
    out,
    seed: int | None = None,
    batch_size: int = 1024,
    progress: bool | None = None,
    data_shape: tuple[int, ...] | None = None,
    labels=None,
    class_names: list[str] | None = None,
) -> Path:
    """Write ``n`` generated samples to ``out`` in batches, never holding more than one batch in memory.

    Args:
        trainer: a trained fastwgan trainer.
        n: number of samples. out: a folder (one PNG per image, 000000.png ...) or FILE.npz: uint8 (N, C, H, W)
            under ``images`` for images (the dataset's format: ``fastwgan.data.load`` reads it), float32 under
            ``x`` for 2-D toys. The .npz is filled through a memory-mapped temporary .npy beside it, then zipped.
        seed, batch_size: see ``sample_batches``. progress: tqdm bar (default: when stderr is a terminal).
        data_shape: the per-sample shape (default: probed from one generator call).
        labels: class-conditional trainers: the classes to sample (``trainer.sample_labels``); the .npz gets them
            as int64 ``labels``, a folder gets one subfolder per class (torchvision's ImageFolder layout), named
            by ``class_names`` (default: the class ids).
    Returns:
        the path written.
    """
    from tqdm.auto import tqdm

    from .. import data

    out = Path(out)
    y = trainer.sample_labels(n, labels)
    if data_shape is None:
        y0 = None if y is None else y[:1]
        data_shape = tuple(trainer.sample_from(torch.zeros(1, trainer.config.latent_dim), y=y0).shape[1:])
    if y is not None:
        names = class_names or [str(k) for k in range(trainer.config.num_classes)]
        if len(names) != trainer.config.num_classes:
            raise ValueError(f"class_names: {len(names)} names for {trainer.config.num_classes} classes")
    images = len(data_shape) == 3
    if out.suffix and out.suffix != ".npz":
        raise ValueError(f"{out}: write samples to a folder or a .npz file")
    if not out.suffix and not images:
        raise ValueError(f"{out}: toy samples are points; write them to FILE.npz")

    def stream(write) -> None:  # write(start_index, batch) for each batch, behind one progress bar
        i = 0
        with tqdm(total=n, unit="img", disable=not progress if progress is not None else None) as bar:
            for x in sample_batches(trainer, n, seed, batch_size, y):
                write(i, x)
                i += len(x)
                bar.update(len(x))

    if not out.suffix:
        stream(
            lambda i, x: data.save_image_folder(
                x, out, start_index=i, classes=None if y is None else [names[k] for k in y[i : i + len(x)].tolist()]
            )
        )
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".npy", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        arr = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8 if images else np.float32, shape=(n, *data_shape)
        )

        def write(i, x, arr=arr):
            arr[i : i + len(x)] = (data.to_uint8(x) if images else x.float()).numpy()

        stream(write)
        arr.flush()
        del write, arr  # close the memory map before zipping the file
        members = {"images" if images else "x": tmp}
        if y is not None:
            members["labels"] = tmp.with_name(tmp.stem + "-labels.npy")
            np.save(members["labels"], y.numpy())
        _npy_into_zip(members, out)
    finally:
        for f in (tmp, tmp.with_name(tmp.stem + "-labels.npy")):
            f.unlink(missing_ok=True)
    return out


def load_inputs(path, run_data: dict | None = None, labels: bool = False):
    """Read what ``fastwgan score`` scores: any data ``fastwgan train --data`` takes (a built-in name such as
    "digits-heldout" or "toy:8gaussians", an image folder, an IDX / CIFAR file, ...), and .npz / .npy arrays of
    (N, D) float points for toy runs. Images are brought to the run's size and channels (``run_data``:
    config.json's "data"); samples of another shape than the run's are refused, with both shapes named.

    Returns:
        (samples, names, labels): names are the files' relative paths for folders, else SOURCE[row] (e.g.
        "digits-heldout[3]"); labels
        (N,) int64 read with the samples when ``labels`` (``fastwgan.data.load(..., labels=True)``), else None.
    """
    run_data = run_data or {}
    shape = run_data.get("shape")
    x, names, y = _read_inputs(path, run_data, shape, labels)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape[1:]):
        raise ValueError(
            f"score: {path} holds samples of shape {tuple(x.shape[1:])} but the run was trained on {tuple(shape[1:])}"
        )
    return x, names, y


def _read_inputs(path, run_data: dict, shape, labels: bool):
    from .. import data

    def load(source, **kw):  # (x, y): the labels only when asked
        out = data.load(source, labels=labels, **kw)
        return out if labels else (out, None)

    size = shape[-1] if shape is not None and len(shape) == 4 else run_data.get("image_size")
    channels = shape[1] if shape is not None and len(shape) == 4 else run_data.get("channels")
    if data.is_named(path) and not Path(path).exists():
        toy = path.startswith("toy:")  # points: no image size or channels
        x, y = load(path, image_size=None if toy else size, channels=None if toy else channels)
        return x, [f"{path}[{i}]" for i in range(len(x))], y  # the source and the row: "digits-heldout[3]"
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"score: no such file or folder: {path}")
    if path.suffix in (".npz", ".npy") and shape is not None and len(shape) == 2:  # toy points
        if path.suffix == ".npz":
            with np.load(path) as z:
                key = next((k for k in ("x", "arr_0", "images") if k in z.files), None)
                if key is None:
                    raise ValueError(f"{path}: no array named x, arr_0 or images (has {z.files})")
                arr = z[key]
        else:
            arr = np.load(path)
        x = torch.from_numpy(np.asarray(arr, dtype=np.float32))
        if x.dim() != 2 or x.shape[1] != shape[1]:
            raise ValueError(f"{path}: expected points (N, {shape[1]}), got shape {tuple(x.shape)}")
        return x, [f"{path.name}[{i}]" for i in range(len(x))], None  # toy points carry no labels
    x, y = load(str(path), image_size=size, channels=channels)
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in data.image_files(path)]
    else:  # an array or a data file: its name and the row
        names = [f"{path.name}[{i}]" for i in range(len(x))]
    return x, names, y


def write_scores(f, names: list[str], scores, extra: dict | None = None) -> None:
    """Write ``index,name,score`` rows (one per input, input order; scores with 9 significant digits) to a text
    file object (``sys.stdout`` too); ``extra`` {column: (N,) values} adds columns after score."""
    scores = torch.as_tensor(scores).tolist()
    extra = {k: torch.as_tensor(v).tolist() for k, v in (extra or {}).items()}
    if len(names) != len(scores) or any(len(v) != len(scores) for v in extra.values()):
        raise ValueError(f"write_scores: {len(names)} names but {len(scores)} scores")
    w = csv.writer(f)
    w.writerow(["index", "name", "score", *extra])
    for i, (name, s) in enumerate(zip(names, scores)):
        w.writerow([i, name, f"{s:.9g}", *(f"{v[i]:.9g}" for v in extra.values())])


def write_scores_csv(path, names: list[str], scores, extra: dict | None = None) -> Path:
    """``write_scores`` into the CSV file ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        write_scores(f, names, scores, extra)
    return path


def read_scores_csv(path) -> tuple[list[str], torch.Tensor]:
    """Inverse of ``write_scores_csv``: (names, scores float64)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["name"] for r in rows], torch.tensor([float(r["score"]) for r in rows], dtype=torch.float64)
