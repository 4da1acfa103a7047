"""Shared fixtures: array namespaces and the real MNIST (see ../conftest.py
for the guard that fails CI when real-data tests were skipped)."""

import numpy as np
import pytest


def blobs(n, features=12, classes=4, seed=0, noise=0.15, dtype=np.float64):
    """Learnable blobs: each class a random centre plus noise, in [0, 1]."""
    from digitnet.data import Dataset
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.random((classes, features))
    images = np.clip(centres[labels] + noise * rng.standard_normal((n, features)), 0, 1)
    return Dataset(images.T.astype(dtype), labels)


def finite_differences(model, x, y, masks, cost, per_array, eps=1e-6):
    """(i, index, backprop's entry, central difference of cost(model, x, y,
    masks)) for a random sample of per_array entries of every weight, then
    every bias array."""
    from digitnet import backend
    xp, rng = model.xp, np.random.default_rng(0)
    nabla_b, nabla_w = model.backprop(x, y, masks)
    for params, nablas in ((model.weights, nabla_w), (model.biases, nabla_b)):
        for i, analytic in enumerate(nablas):
            p, analytic = backend.to_numpy(params[i]).copy(), backend.to_numpy(analytic)
            assert analytic.shape == p.shape
            flat = rng.choice(p.size, min(per_array, p.size), replace=False)
            for ix in zip(*np.unravel_index(flat, p.shape)):
                costs = []
                for sign in (1, -1):
                    q = p.copy()
                    q[ix] += sign * eps
                    params[i] = xp.asarray(q)
                    costs.append(cost(model, x, y, masks))
                params[i] = xp.asarray(p)
                yield i, ix, analytic[ix], (costs[0] - costs[1]) / (2 * eps)


def _namespaces():
    spaces = [pytest.param("numpy", id="numpy"), pytest.param("strict", id="strict")]
    spaces.append(pytest.param("cupy", id="cupy", marks=pytest.mark.gpu))
    return spaces


def load_namespace(name):
    if name == "numpy":
        return np
    if name == "strict":
        return pytest.importorskip("array_api_strict",
                                   reason="array-api-strict is not installed")
    from digitnet import backend
    cupy, why = backend.cupy_or_reason()
    if cupy is None:
        pytest.skip(f"no GPU here: {why}")
    return cupy


@pytest.fixture(params=_namespaces())
def xp(request):
    """Every array namespace the core must run on: NumPy, a strict Array API
    namespace (catches NumPy-only calls without a GPU), and CuPy when present."""
    return load_namespace(request.param)


@pytest.fixture(scope="session")
def trained_net(mnist):
    """The chapter's [784, 30, 10] after one epoch (~0.2 s; about 90% on test)."""
    from digitnet import Network
    training, _, _ = mnist
    net = Network([784, 30, 10], seed=1, device="cpu")
    net.sgd(training, 1, 10, 3.0)
    return net


@pytest.fixture(scope="session")
def trained_model(trained_net, tmp_path_factory):
    """`trained_net` saved as a model file, for the command line."""
    path = tmp_path_factory.mktemp("model") / "net.npz"
    from digitnet import save
    save(trained_net, path)
    return path


@pytest.fixture(scope="session")
def fashion_dir(mnist_dir):
    """The data folder, if it also holds Fashion-MNIST (CI's does)."""
    from pathlib import Path
    from digitnet import download
    if not all((Path(mnist_dir) / "fashion-mnist" / f).is_file() for f in download.FILES):
        # A real-data fixture: the root conftest counts this skip as a gap in CI.
        pytest.skip(f"Fashion-MNIST not found: no fashion-mnist/ in {mnist_dir}")
    return mnist_dir


def write_idx_slice(source, target, n):
    """The first n records of an IDX .gz file (images or labels), as a
    smaller IDX .gz file with its count patched: real data, less of it."""
    import gzip
    import struct
    raw = gzip.decompress(source.read_bytes())
    magic, _ = struct.unpack(">II", raw[:8])
    dims = magic & 0xFF
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    header = 4 + 4 * dims
    record = int(np.prod(shape[1:], dtype=np.int64))
    out = raw[:4] + struct.pack(">I", n) + raw[8:header] + raw[header:header + n * record]
    target.write_bytes(gzip.compress(out, compresslevel=1))


SMALL_TRAIN, SMALL_VALIDATION, SMALL_TEST = 1000, 200, 500


@pytest.fixture(scope="session")
def small_mnist_dir(mnist_dir, tmp_path_factory):
    """A data folder with the first 1,200 training and 500 test images of the
    real MNIST, for whole `digitnet train` runs in seconds; a test that uses
    it sets data.N_TRAIN to SMALL_TRAIN (`small_split`), so the book's split
    becomes 1,000 training and 200 validation images."""
    root = tmp_path_factory.mktemp("small-data")
    folder = root / "mnist"
    folder.mkdir()
    for name, n in (("train-images-idx3-ubyte.gz", SMALL_TRAIN + SMALL_VALIDATION),
                    ("train-labels-idx1-ubyte.gz", SMALL_TRAIN + SMALL_VALIDATION),
                    ("t10k-images-idx3-ubyte.gz", SMALL_TEST),
                    ("t10k-labels-idx1-ubyte.gz", SMALL_TEST)):
        write_idx_slice(mnist_dir / "mnist" / name, folder / name, n)
    return root


@pytest.fixture
def small_split(small_mnist_dir, monkeypatch):
    """small_mnist_dir with the split it needs: (data folder flags)."""
    from digitnet import data
    monkeypatch.setattr(data, "N_TRAIN", SMALL_TRAIN)
    return ["--data-dir", str(small_mnist_dir)]
