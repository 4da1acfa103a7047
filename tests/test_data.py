"""The IDX reader on tiny files written here, every malformed case, and the splits."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from digitnet import data, download
from digitnet.data import DataError, Dataset, read_idx, read_split


def write_idx(path, magic, dims, payload, compress=True):
    raw = struct.pack(">i", magic) + struct.pack(">" + "i" * len(dims), *dims) + bytes(payload)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_split(directory, prefix, pixels, labels):
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", 2051, pixels.shape, pixels.tobytes())
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", 2049, labels.shape, labels.tobytes())


@pytest.fixture
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_split(tmp_path, "train", pixels, labels)
    return tmp_path, pixels, labels


def test_reads_a_good_split(tiny):
    directory, pixels, labels = tiny
    ds = read_split(directory, "train", data.CLASSES["mnist"])
    assert ds.images.shape == (784, 5) and ds.images.dtype == np.float32
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_allclose(ds.images[:, 2], pixels[2].reshape(784) / 255.0, rtol=1e-6)
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0


@pytest.mark.parametrize("magic, dims, payload, match", [
    (2049, (5, 28, 28), bytes(5 * 784), "magic number 2049, expected 2051"),
    (2051, (5, 27, 28), bytes(5 * 27 * 28), "27x28, expected 28x28"),
    (2051, (5, 28, 28), bytes(4 * 784), "incomplete, 3136 of 3920 data bytes"),
    (2051, (5, 28, 28), bytes(5 * 784 + 3), "3 unexpected bytes"),
])
def test_malformed_image_files(tmp_path, magic, dims, payload, match):
    path = write_idx(tmp_path / "x.gz", magic, dims, payload)
    with pytest.raises(DataError, match=match) as err:
        read_idx(path, 2051)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_short_header(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(DataError, match="too short for an IDX header"):
        read_idx(path, 2049)


def test_not_gzip_and_truncated_gzip(tmp_path):
    plain = write_idx(tmp_path / "plain.gz", 2049, (3,), b"\x01\x02\x03", compress=False)
    with pytest.raises(DataError, match="not a complete gzip file"):
        read_idx(plain, 2049)
    good = write_idx(tmp_path / "good.gz", 2049, (3000,), bytes(range(10)) * 300)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(DataError, match="cut.gz: not a complete gzip file"):
        read_idx(cut, 2049)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope.gz", 2051)


def test_count_mismatch_and_bad_labels(tmp_path):
    pixels = np.zeros((3, 28, 28), np.uint8)
    write_split(tmp_path, "train", pixels, np.array([1, 2], np.uint8))
    with pytest.raises(DataError, match="3 images but train-labels-idx1-ubyte.gz has 2 labels"):
        read_split(tmp_path, "train", data.CLASSES["mnist"])
    write_split(tmp_path, "train", pixels, np.array([1, 2, 12], np.uint8))
    with pytest.raises(DataError, match="label 12 out of range"):
        read_split(tmp_path, "train", data.CLASSES["mnist"])


def test_dataset_slicing_and_indexing(tiny):
    ds = read_split(tiny[0], "train", data.CLASSES["mnist"])
    part = ds[1:4]
    assert isinstance(part, Dataset) and len(part) == 3 and part.images.shape == (784, 3)
    np.testing.assert_array_equal(part.labels, [1, 4, 1])
    x, label = ds[-1]
    assert x.shape == (784, 1) and label == 5
    np.testing.assert_array_equal(x[:, 0], ds.images[:, 4])
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError, match="images must be"):
        Dataset(np.zeros((784, 3)), np.zeros(4))


def four_files(folder):
    folder.mkdir(parents=True)
    for name in download.FILES:
        (folder / name).write_bytes(b"")
    return folder


@pytest.fixture
def places(monkeypatch, tmp_path):
    """A checkout data/ folder and a user cache of the test's own."""
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    monkeypatch.setattr(data, "CHECKOUT", tmp_path / "checkout" / "data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_place_precedence(places, monkeypatch):
    """Each rule alone: the user's words first, whether or not the files are
    there; the checkout's data/ only when it holds that dataset's files."""
    cache = places / "cache" / "digitnet"
    assert data.place("mnist") == (cache / "mnist", data.place("mnist").why)
    assert "per-user cache" in data.place("mnist").why
    four_files(places / "checkout" / "data" / "mnist")
    assert data.place("mnist").path == places / "checkout" / "data" / "mnist"
    assert "checkout" in data.place("mnist").why
    assert data.place("fashion-mnist").path == cache / "fashion-mnist"  # not its files
    monkeypatch.setenv("DIGITNET_DATA", str(places / "env"))
    assert data.place("mnist") == (places / "env" / "mnist", "$DIGITNET_DATA")
    assert data.place("mnist", places / "flag") == (places / "flag" / "mnist", "--data-dir")


def test_checkout_needs_all_four_files(places):
    folder = four_files(places / "checkout" / "data" / "mnist")
    (folder / download.FILES[-1]).unlink()
    assert data.place("mnist").path == places / "cache" / "digitnet" / "mnist"


def test_installed_package_has_no_checkout(places, monkeypatch):
    monkeypatch.setattr(data, "CHECKOUT", None)
    assert "checkout" not in data.place("mnist").why


def test_checkout_is_this_source_tree():
    assert data.CHECKOUT == Path(__file__).resolve().parent.parent / "data"


def test_missing_data_error_says_which_folder_and_why(places, monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", "http://127.0.0.1:9/")
    with pytest.raises(download.DownloadError) as caught:
        data.load_dataset("mnist")
    message = str(caught.value)
    assert str((places / "cache" / "digitnet" / "mnist").resolve()) in message
    assert "per-user cache" in message and "\n" not in message


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        data.load_dataset("cifar", download_missing=False)


def test_real_mnist_splits(mnist):
    training, validation, test = mnist
    assert (len(training), len(validation), len(test)) == (50_000, 10_000, 10_000)
    assert training.images.shape == (784, 50_000) and training.images.dtype == np.float32
    assert 0.0 == training.images.min() and training.images.max() == 1.0
    # SOURCES.md: pixel mean 33.3184/255 over all 60,000 training images.
    mean = (training.images.sum(dtype=np.float64) + validation.images.sum(dtype=np.float64)) / (60_000 * 784)
    assert mean * 255 == pytest.approx(33.3184, abs=1e-3)
    counts = np.bincount(np.concatenate([training.labels, validation.labels]), minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert len(training[:1000]) == 1000


def test_real_fashion_mnist(mnist_dir):
    if not (mnist_dir / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("no fashion-mnist beside the MNIST files")
    training, validation, test = data.load_dataset("fashion-mnist", mnist_dir, download_missing=False)
    assert (len(training), len(validation), len(test)) == (50_000, 10_000, 10_000)
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes[9] == "Ankle boot"
