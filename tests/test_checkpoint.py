"""save/load: round trip on every namespace, atomic writes, and rejection of bad files."""

import numpy as np
import pytest

from digitnet import Model, Network, backend, load, save
from digitnet.checkpoint import CheckpointError


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(xp, tmp_path, dtype):
    net = Network([6, 4, 3], seed=4, device=xp, dtype=dtype)
    path = tmp_path / "model.npz"
    save(net, path)
    back = load(path, device=xp)
    assert back.sizes == [6, 4, 3] and back.dtype == backend.dtype_of(xp, dtype)
    for a, b in zip(net.weights + net.biases, back.weights + back.biases):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    x = xp.asarray(np.random.default_rng(0).random((6, 5)), dtype=net.dtype)
    np.testing.assert_array_equal(backend.to_numpy(net.feedforward(x)),
                                  backend.to_numpy(back.feedforward(x)))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temp file left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save(Network([3, 2], seed=0, device="cpu"), path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save(Network([3, 2], seed=1, device="cpu"), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_saved_files_follow_the_umask(tmp_path):
    import os
    old = os.umask(0o027)
    try:
        save(Network([3, 2], device="cpu"), tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o640


def test_save_into_a_missing_folder(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        save(Network([3, 2], device="cpu"), tmp_path / "nope" / "m.npz")


def good_arrays():
    net = Network([4, 3, 2], seed=0, device="cpu")
    return {"format": np.array("digitnet-network"), "version": np.array(1),
            "sizes": np.array([4, 3, 2]), "dtype": np.array("float32"),
            "weights_0": net.weights[0], "biases_0": net.biases[0],
            "weights_1": net.weights[1], "biases_1": net.biases[1]}


@pytest.mark.parametrize("change, match", [
    (lambda a: a.pop("format"), "not a digitnet file"),
    (lambda a: a.update(format=np.array("something-else")), "not a digitnet file"),
    (lambda a: a.update(version=np.array(99)), "format version 99"),
    (lambda a: a.pop("weights_1"), "missing array 'weights_1'"),
    (lambda a: a.update(weights_0=np.zeros((4, 3), np.float32)), "description needs"),
    (lambda a: a.update(biases_1=np.full((2, 1), np.nan, np.float32)), "NaN"),
    (lambda a: a.update(dtype=np.array("float16")), "dtype 'float16' is not one of"),
    (lambda a: a.update(sizes=np.array([4])), "not a network's"),
    (lambda a: a.update(sizes=np.array([[4, 3, 2]])), "sizes is not a list of whole numbers"),
    (lambda a: a.update(sizes=np.array(["4", "3", "2"])), "sizes is not a list of whole numbers"),
    (lambda a: a.update(weights_0=np.array([["a"] * 4] * 3)), "holds <U1 values, not floats"),
    (lambda a: a.update(weights_0=np.ones((3, 4), np.int64)), "holds int64 values, not floats"),
    (lambda a: a.update(classes=np.array(["a", "b", "c"])), "classes must be 2 names"),
    (lambda a: a.update(classes=np.array(7)), "classes must be 2 names"),
    (lambda a: a.update(dtype=np.array(32)), "dtype is not a string"),
    (lambda a: a.update(version=np.array([1, 1])), "format version"),
    # a small file that claims a billion neurons: refused before any allocation
    (lambda a: a.update(sizes=np.array([4, 1_000_000_000, 2])), "description needs"),
])
def test_bad_model_files(tmp_path, change, match):
    arrays = good_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=match) as err:
        load(path, device="cpu")
    assert str(path) in str(err.value)


def test_foreign_and_pickled_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a .npz file"):
        load(text, device="cpu")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled objects"):
        load(pickled, device="cpu")
    with pytest.raises(CheckpointError, match="file not found"):
        load(tmp_path / "missing.npz", device="cpu")
    with pytest.raises(CheckpointError, match="is a folder"):
        load(tmp_path, device="cpu")
