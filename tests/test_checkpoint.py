"""save/load: round trip on every namespace, atomic writes, and rejection of bad files."""

import numpy as np
import pytest

from digitnet import Network, backend
from digitnet.checkpoint import CheckpointError


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(xp, tmp_path, dtype):
    net = Network([6, 4, 3], seed=4, device=xp, dtype=dtype)
    path = tmp_path / "model.npz"
    net.save(path)
    back = Network.load(path, device=xp)
    assert back.sizes == [6, 4, 3] and back.dtype == backend.dtype_of(xp, dtype)
    for a, b in zip(net.weights + net.biases, back.weights + back.biases):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    x = xp.asarray(np.random.default_rng(0).random((6, 5)), dtype=net.dtype)
    np.testing.assert_array_equal(backend.to_numpy(net.feedforward(x)),
                                  backend.to_numpy(back.feedforward(x)))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temp file left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    Network([3, 2], seed=0, device="cpu").save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        Network([3, 2], seed=1, device="cpu").save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_saved_files_follow_the_umask(tmp_path):
    import os
    old = os.umask(0o027)
    try:
        Network([3, 2], device="cpu").save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o640


def test_save_into_a_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Network([3, 2], device="cpu").save(tmp_path / "nope" / "m.npz")


def good_arrays():
    net = Network([4, 3, 2], seed=0, device="cpu")
    return {"format": np.array("digitnet-network"), "version": np.array(1),
            "sizes": np.array([4, 3, 2]), "dtype": np.array("float32"),
            "weights_0": net.weights[0], "biases_0": net.biases[0],
            "weights_1": net.weights[1], "biases_1": net.biases[1]}


@pytest.mark.parametrize("change, match", [
    (lambda a: a.pop("format"), "not a digitnet model"),
    (lambda a: a.update(format=np.array("something-else")), "not a digitnet model"),
    (lambda a: a.update(version=np.array(99)), "format version 99"),
    (lambda a: a.pop("weights_1"), "missing array 'weights_1'"),
    (lambda a: a.update(weights_0=np.zeros((4, 3), np.float32)), "do not match its description"),
    (lambda a: a.update(biases_1=np.full((2, 1), np.nan, np.float32)), "NaN"),
    (lambda a: a.update(dtype=np.array("float16")), "unsupported dtype"),
    (lambda a: a.update(sizes=np.array([4])), "at least an input"),
])
def test_bad_model_files(tmp_path, change, match):
    arrays = good_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=match) as err:
        Network.load(path, device="cpu")
    assert str(path) in str(err.value)


def test_foreign_and_pickled_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a .npz file"):
        Network.load(text, device="cpu")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled objects"):
        Network.load(pickled, device="cpu")
    with pytest.raises(CheckpointError, match="file not found"):
        Network.load(tmp_path / "missing.npz", device="cpu")
    with pytest.raises(CheckpointError, match="is a folder"):
        Network.load(tmp_path, device="cpu")
