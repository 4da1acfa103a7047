"""MNIST and Fashion-MNIST: the IDX reader, the data folder and the book's splits.

The book trains on the first 50,000 official training images, keeps the
last 10,000 for validation, and tests on the official 10,000.
"""

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import download

DATASETS = ("mnist", "fashion-mnist")
CLASSES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
ROWS = COLS = 28


N_PIXELS = ROWS * COLS      # a network's inputs
N_CLASSES = 10              # and outputs, for both datasets
N_TRAIN = 50_000
SPLIT_NEEDS = {"train": f"the book's split needs more than {N_TRAIN:,} (the first {N_TRAIN:,} "
                        "train, the rest validate)",
               "t10k": "the test set needs at least one"}


def dataset_of(classes):
    """The dataset whose class names these are ("mnist" for None, the
    digits), or None for names of neither."""
    classes = CLASSES["mnist"] if classes is None else tuple(str(c) for c in classes)
    return next((name for name, names in CLASSES.items() if names == classes), None)


class DataError(ValueError):
    """A dataset file is missing, foreign, damaged or inconsistent."""


class Dataset:
    """Images as one (784, n) matrix of floats in [0, 1] and labels (n,).

    `images` may instead be uint8 (0 to 255, read as k/255): `expand` keeps
    its 250,000 images that way, a quarter of the memory, and the trainer
    turns each mini-batch into floats as it goes (backend.bytes_to_float).

    Slicing gives a Dataset again (`training[:1000]`, as readers of the book
    do); an integer index gives one (image column, label) pair.

    One layout: examples are stored as rows, (n, 784), each image's pixels
    contiguous (the IDX files' order, what a mini-batch gathers), and
    `images` is the book's (784, n) view of that memory, one column per
    example.  `rows` is the boundary back: the trainer, `expand` and the
    plots take rows; networks take columns (the book's `feedforward`).
    """

    def __init__(self, images, labels, classes=CLASSES["mnist"]):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 2 or labels.ndim != 1 or images.shape[1] != labels.shape[0]:
            raise ValueError(f"images must be (features, n) and labels (n,), got "
                             f"{images.shape} and {labels.shape}")
        self.images, self.labels, self.classes = images, labels, tuple(classes)

    def __len__(self):
        return self.labels.shape[0]

    @property
    def rows(self):
        """The examples as (n, features) rows: a view for datasets read from
        files or sliced from them, a copy only for a matrix given by columns."""
        return np.ascontiguousarray(self.images.T)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return Dataset(self.images[:, key], self.labels[key], self.classes)
        label = int(self.labels[key])  # raises IndexError when out of range
        return self.images[:, key:key + 1 or None], label  # "or None": key -1

    def __repr__(self):
        return f"Dataset({self.images.shape[0]} features x {len(self)} examples)"


# The source checkout's data/ folder (src/digitnet/data.py -> ../../data),
# or None for an installed package: site-packages has no data/ of ours.
_ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = _ROOT / "data" if (_ROOT / "pyproject.toml").is_file() else None


class Place(NamedTuple):
    """A dataset's folder and why it is that one, in the words that
    `digitnet info` and the download error use."""
    path: Path
    why: str


def user_cache():
    """The per-user cache folder (~/.cache/digitnet on Linux, as
    pooch.os_cache("digitnet") gives): where Keras and scikit-learn keep
    theirs, so a command finds one copy of the data from any folder."""
    import platformdirs
    return Path(platformdirs.user_cache_dir("digitnet"))


def has_files(directory):
    """True when `directory` holds a dataset's four files."""
    return all((Path(directory) / f).is_file() for f in download.FILES)


def place(name, data_dir=None):
    """Where dataset `name` lives: `data_dir` (--data-dir), else
    $DIGITNET_DATA, else the checkout's data/ when it holds that dataset's
    files, else the per-user cache.  The first two are the user's word and
    are used whether or not the files are there (downloads go there); the
    checkout's folder only when it already has them, so a run from any
    folder finds the files an offline user copied there."""
    if data_dir:
        return Place(Path(data_dir) / name, "--data-dir")
    if os.environ.get("DIGITNET_DATA"):
        return Place(Path(os.environ["DIGITNET_DATA"]) / name, "$DIGITNET_DATA")
    if CHECKOUT is not None and has_files(CHECKOUT / name):
        return Place(CHECKOUT / name, "the checkout's data/, which holds the files")
    return Place(user_cache() / name, "the per-user cache: no --data-dir or $DIGITNET_DATA"
                 + (", and the checkout's data/ lacks the files" if CHECKOUT else ""))


def _read_gz(path):
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc})") from None


def read_idx(path, magic):
    """The uint8 array in an IDX .gz file, after checking it is what we expect.

    `magic` is 2051 (images, n x 28 x 28) or 2049 (labels, n); any other
    header, a wrong size, or a truncated file is a one-line DataError.
    """
    raw = _read_gz(path)
    ndim = 3 if magic == IMAGE_MAGIC else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    found = struct.unpack(">i", raw[:4])[0]
    if found != magic:
        kind = "images" if magic == IMAGE_MAGIC else "labels"
        raise DataError(f"{path}: magic number {found}, expected {magic} for IDX {kind}")
    dims = struct.unpack(">" + "i" * ndim, raw[4:header])
    if ndim == 3 and dims[1:] != (ROWS, COLS):
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected {ROWS}x{COLS}")
    expected = int(np.prod(dims))
    got = len(raw) - header
    if got < expected:
        raise DataError(f"{path}: incomplete, {got} of {expected} data bytes")
    if got > expected:
        raise DataError(f"{path}: {got - expected} unexpected bytes after the data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_split(directory, prefix, classes):
    """Images and labels of one official split ("train" or "t10k")."""
    directory = Path(directory)
    images_path = directory / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = directory / f"{prefix}-labels-idx1-ubyte.gz"
    pixels = read_idx(images_path, IMAGE_MAGIC)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if pixels.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path}: {pixels.shape[0]} images but {labels_path.name} "
                        f"has {labels.shape[0]} labels")
    if labels.size and labels.max() >= len(classes):
        raise DataError(f"{labels_path}: label {labels.max()} out of range 0..{len(classes) - 1}")
    # Rows are examples in memory, so a mini-batch gather reads contiguous
    # rows; `images` is the (784, n) transpose, a view.  float32 from the
    # start: never a float64 copy of the training set.
    rows = pixels.reshape(pixels.shape[0], N_PIXELS).astype(np.float32)
    rows /= np.float32(255.0)
    return Dataset(rows.T, labels.astype(np.int64), classes)


def load_dataset(name="mnist", data_dir=None, download_missing=True, progress=True):
    """(training, validation, test) as the book splits them: 50k / 10k / 10k."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}")
    directory, why = place(name, data_dir)
    if download_missing:
        download.ensure(name, directory, progress=progress, why=why)
    train = read_split(directory, "train", CLASSES[name])
    test = read_split(directory, "t10k", CLASSES[name])
    for split, data, least in (("train", train, N_TRAIN + 1), ("t10k", test, 1)):
        if len(data) < least:  # else an empty set reaches the trainer, nameless
            raise DataError(f"{directory / f'{split}-images-idx3-ubyte.gz'}: holds "
                            f"{len(data)} images; {SPLIT_NEEDS[split]}")
    return train[:N_TRAIN], train[N_TRAIN:], test


def load_mnist(data_dir=None):
    """The book's `load_data_wrapper`, minus the pickles: (training, validation, test)."""
    return load_dataset("mnist", data_dir)


def as_bytes(images, chunk=10_000):
    """(n, ...) float images as uint8 when every pixel is exactly k/255 in
    float32 (as read from the IDX files), else None; in chunks, so the
    check never holds a second float copy of the set."""
    if images.dtype == np.uint8:
        return images
    out = np.empty(images.shape, dtype=np.uint8)
    for k in range(0, images.shape[0], chunk):
        part = images[k:k + chunk]
        scaled = np.rint(part * 255.0)
        if scaled.min(initial=0) < 0 or scaled.max(initial=0) > 255 or not np.array_equal(
                (scaled.astype(np.float32) / np.float32(255.0)).astype(part.dtype), part):
            return None
        out[k:k + chunk] = scaled
    return out


def expand(dataset):
    """The book's expanded training set (chapter 6): each image, then copies
    shifted by one pixel up, down, left and right with zeros shifted in, so
    50,000 images become 250,000 that teach the net small translations.
    MNIST's pixels are kept as bytes (196 MB instead of 784 MB of floats)."""
    n = len(dataset)
    images = dataset.rows.reshape(n, ROWS, COLS)
    as_u8 = as_bytes(images)
    images = images if as_u8 is None else as_u8
    out = np.zeros((n, 5, ROWS, COLS), dtype=images.dtype)
    out[:, 0] = images
    out[:, 1, :-1, :] = images[:, 1:, :]   # up
    out[:, 2, 1:, :] = images[:, :-1, :]   # down
    out[:, 3, :, :-1] = images[:, :, 1:]   # left
    out[:, 4, :, 1:] = images[:, :, :-1]   # right
    return Dataset(out.reshape(5 * n, N_PIXELS).T, np.repeat(dataset.labels, 5),
                   dataset.classes)
