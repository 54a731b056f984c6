"""The data a GAN run trains on: read from ``fastwgan train``'s options (loaded whole, or an image folder streamed
from disk), or read back from a run's config.json the way the run read it (``score --method knn``, ``encode``)."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import data


def streamed_folder(args, labels: bool):
    """The folder as an ImageFolderDataset when it is to be streamed (--stream on, or auto and larger than the
    budget), else None (loaded whole)."""
    from ..data import streaming

    path = Path(args.data)
    folder = (
        not args.data.startswith("toy:")
        and not data.is_named(args.data)
        and path.is_dir()
        and not data.is_cifar_dir(path)
    )
    if args.stream == "off" or (not folder and args.stream == "auto"):
        return None
    if not folder:
        raise ValueError(f"--stream on: streaming decodes image folders; {args.data} is not one (it is loaded whole)")
    if args.memory_budget is not None and args.memory_budget <= 0:
        raise ValueError(f"--memory-budget: expected a positive size in GB, got {args.memory_budget:g}")
    ds = streaming.ImageFolderDataset(path, image_size=args.image_size, channels=args.channels, labels=labels)
    budget = streaming.memory_budget() if args.memory_budget is None else int(args.memory_budget * 2**30)
    return ds if args.stream == "on" or ds.nbytes > budget else None


def load_data(args):
    """(samples, labels or None): labels when the run is class-conditional (--conditional or --num-classes).
    A streamed image folder (--stream) comes back as (ImageFolderDataset, None): its labels travel with it."""
    conditional = args.conditional or args.num_classes is not None
    streamed = streamed_folder(args, conditional)
    if streamed is not None:
        if args.exclude_class is not None:
            raise ValueError(
                "--exclude-class selects from data loaded whole; this folder is streamed (--stream off "
                "loads it whole, or give a folder without those classes)"
            )
        return streamed, None
    if args.data.startswith("toy:"):
        if conditional:
            raise ValueError(
                f"--conditional: {args.data} has no labels (use labelled images: digits-train, an "
                "IDX file with its labels, CIFAR-10, a folder of class subfolders, .npz with labels)"
            )
        return data.toy(args.data[4:], n=args.toy_n, seed=0), None
    if args.exclude_class is not None:
        return data.without_classes(args.data, args.exclude_class, args.image_size, args.channels, conditional)
    if conditional:
        return data.load(args.data, image_size=args.image_size, channels=args.channels, labels=True)
    return data.load(args.data, image_size=args.image_size, channels=args.channels), None


def sample_shape(x) -> tuple[int, ...]:
    """The shape of one training sample: a tensor's rows, or a streamed folder's decoded images."""
    from ..data.streaming import ImageFolderDataset

    return tuple(x.shape) if isinstance(x, ImageFolderDataset) else tuple(x.shape[1:])


def training_data(rc: dict):
    """The images a run trained on, as it read them (``rc``: its config.json; a streamed folder: its loader, read
    chunk by chunk)."""
    d = rc.get("data") or {}
    source = d.get("source")
    if source is None:
        raise ValueError("the run's config.json names no training data")
    if d.get("streamed"):
        from ..data.streaming import ImageFolderDataset

        ds = ImageFolderDataset(source, image_size=d.get("image_size"), channels=d.get("channels"))
        return torch.utils.data.DataLoader(ds, batch_size=1024)
    if source.startswith("toy:"):
        return data.toy(source[4:], n=d.get("toy_n") or 100_000, seed=0)
    if d.get("exclude_class") is not None:  # trained without some classes: knn's reference set is what it saw
        return data.without_classes(source, d["exclude_class"], d.get("image_size"), d.get("channels"), False)[0]
    return data.load(source, image_size=d.get("image_size"), channels=d.get("channels"))
