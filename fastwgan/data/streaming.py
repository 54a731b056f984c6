"""Image folders larger than memory: decoded one image at a time in DataLoader workers, not all at once.

``fastwgan.data.load(FOLDER)`` decodes a whole folder into one uint8 array: the fastest path when it fits. When the
decoded folder would not fit a memory budget (``ImageFolderDataset.nbytes`` > ``memory_budget()``), ``fastwgan train``
trains from ``folder_loader`` instead: a DataLoader over ``ImageFolderDataset`` whose workers decode each batch as the
trainer needs it (``fastwgan.data.sources.LoaderSource`` prefetches the next step's batches), so memory holds the file
list and a few batches, whatever the folder's size. The images are the ones ``load`` gives (the same header pass
chooses the mode and checks sizes, the same ``decode_image`` converts and resizes them), and labels come from
class sub-folders as there.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..core.images import DataError
from .readers import decode_image, folder_classes, folder_files, folder_format

__all__ = ["ImageFolderDataset", "memory_budget", "folder_loader"]


class ImageFolderDataset(torch.utils.data.Dataset):
    """A folder of PNG/JPEG images (recursive, sorted by relative path, as ``fastwgan.data.load`` reads it) as a
    map-style dataset of (C, H, W) uint8 tensors, or (image, class id) pairs with ``labels=True`` (one sub-folder
    per class).

    Args:
        folder: the image folder.
        image_size: centre-crop and resize every image to this square size (needed for mixed sizes).
        channels: 1 or 3 to convert; default: 1 when every image is grayscale, else 3.
        labels: yield (image, class id) with the class of the image's first sub-folder.
    """

    def __init__(self, folder, image_size: int | None = None, channels: int | None = None, labels: bool = False):
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder of images" if folder.exists() else f"{folder}: no such folder")
        self.files = folder_files(folder)
        y, self.class_names = folder_classes(folder, self.files, need=labels)
        self.labels = y if labels else None  # (N,) int64 class ids, yielded with the images
        self.mode, self.shape = folder_format(folder, self.files, image_size, channels)  # headers only
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        x = torch.tensor(decode_image(self.files[i], self.mode, self.image_size))  # (C, H, W) uint8, a copy
        return x if self.labels is None else (x, int(self.labels[i]))

    @property
    def nbytes(self) -> int:
        """The decoded size of the whole folder in bytes (uint8)."""
        c, h, w = self.shape
        return len(self.files) * c * h * w


def memory_budget() -> int:
    """The default budget for holding a decoded dataset in memory: a quarter of the machine's physical memory
    (``load`` briefly holds the decoded images twice while stacking them, and training needs the rest)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platforms without sysconf
        return 4 << 30


def folder_loader(
    dataset: ImageFolderDataset,
    batch_size: int,
    *,
    workers: int,
    device: torch.device,
    seed: int,
    world_size: int = 1,
    rank: int = 0,
) -> torch.utils.data.DataLoader:
    """The DataLoader ``fastwgan train`` streams a folder with: shuffled, full batches only (drop_last), decoding
    in ``workers`` processes (0: in the training process), pinned for CUDA, one shard per rank under torchrun (a
    DistributedSampler seeded with the run's seed; fit sets its epoch).

    Args:
        dataset: the folder.
        batch_size: the batch per process (the config's batch over the world size).
        workers: decoding processes.
        device: the training device (pinning on CUDA).
        seed: the run's seed (shuffling under torchrun).
        world_size, rank: the process group.
    """
    sampler = None
    if world_size > 1:
        sampler = torch.utils.data.DistributedSampler(
            dataset, world_size, rank, shuffle=True, seed=seed, drop_last=True
        )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
