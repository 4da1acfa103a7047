"""Every condition a model file is checked by, alone (modelfile.py): one
array changed, every other as the code writes it, and the one line that
names it; the edges a file may have (no classes, no seed, seed 0) load."""

import numpy as np
import pytest

import digitnet
from digitnet import Model, Network
from digitnet.modelfile import CheckpointError, network_arrays


def network():
    net = Network([6, 3, 4], seed=0, device="cpu")
    net.classes = ["a", "b", "c", "d"]
    return net


def model():
    return Model("fc:3,softmax:4", cost="log-likelihood", input_shape=(6,), dropout=0.25,
                 seed=5, device="cpu")


def nan_in(name):
    def change(arrays):
        a = arrays[name].copy()
        a.flat[1] = np.nan
        arrays[name] = a
    return change


def setting(name, value):
    def change(arrays):
        if value is KeyError:
            del arrays[name]
        else:
            arrays[name] = np.array(value)
    return change


CASES = [
    (network, setting("format", KeyError),
     "not a digitnet file of this kind (no 'digitnet-network' or 'digitnet-model' marker)"),
    (network, setting("format", 7), "not a digitnet file of this kind"),
    (network, setting("version", KeyError), "format version None, this digitnet reads 1"),
    (network, setting("version", 2), "format version 2, this digitnet reads 1"),
    (network, setting("version", [1]), "format version [1], this digitnet reads 1"),
    (network, setting("version", 1.0), "format version 1.0, this digitnet reads 1"),
    (network, setting("dtype", "float16"), "dtype 'float16' is not one of float32, float64"),
    (network, setting("dtype", 32), "dtype is not a string"),
    (network, setting("sizes", [6.0, 3.0, 4.0]), "sizes is not a list of whole numbers"),
    (network, setting("sizes", [[6, 3, 4]]), "sizes is not a list of whole numbers"),
    (network, setting("classes", ["a", "b", "c"]), "classes must be 4 names, one per output"),
    (network, setting("classes", [1, 2, 3, 4]), "classes must be 4 names, one per output"),
    (network, setting("classes", [["a", "b", "c", "d"]]),
     "classes must be 4 names, one per output"),
    (network, setting("seed", 1.0), "seed is not a whole number"),
    (network, setting("seed", [0]), "seed is not a whole number"),
    (network, setting("seed", "0"), "seed is not a whole number"),
    (network, nan_in("weights_1"), "weights_1 holds NaN or infinite values"),
    (network, nan_in("biases_0"), "biases_0 holds NaN or infinite values"),
    (network, setting("weights_0", np.zeros((3, 5))),
     "weights_0 has shape (3, 5), but the network's description needs (3, 6)"),
    (network, setting("biases_1", KeyError), "missing array 'biases_1'"),
    (model, setting("dropout", 1), "dropout is not a number"),
    (model, setting("dropout", [0.25]), "dropout is not a number"),
    (model, setting("layers", "fc:3,bogus:4"), "layer"),
    (model, setting("input_shape", [6.0]), "input_shape is not a list of whole numbers"),
    (model, setting("cost", KeyError), "missing array 'cost'"),
    (model, setting("seed", 5.0), "seed is not a whole number"),
]


@pytest.mark.parametrize("make, change, line", CASES,
                         ids=[f"{c[0].__name__}-{c[2][:30]}" for c in CASES])
def test_each_condition_of_a_model_file_alone(tmp_path, make, change, line):
    arrays = network_arrays(make())
    path = tmp_path / "net.npz"
    np.savez(path, **arrays)
    assert digitnet.load(path, device="cpu").seed is not None  # unchanged, it loads
    change(arrays)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError) as exc:
        digitnet.load(path, device="cpu")
    assert len(exc.value.lines) == 1
    assert exc.value.lines[0].startswith(f"{path}: {line}"), exc.value.lines


@pytest.mark.parametrize("make, change, seed, classes", [
    (network, setting("seed", KeyError), None, ["a", "b", "c", "d"]),
    (network, setting("classes", KeyError), 0, None),
    (network, setting("seed", np.uint8(0)), 0, ["a", "b", "c", "d"]),
    (model, setting("seed", np.int32(0)), 0, None),
    (network, setting("version", np.uint8(1)), 0, ["a", "b", "c", "d"]),
])
def test_the_edges_a_model_file_may_have_load(tmp_path, make, change, seed, classes):
    arrays = network_arrays(make())
    change(arrays)
    path = tmp_path / "net.npz"
    np.savez(path, **arrays)
    net = digitnet.load(path, device="cpu")
    assert net.seed == seed and type(net.seed) is type(seed) and net.classes == classes


@pytest.mark.parametrize("make", [network, model])
def test_seed_zero_is_kept_in_the_file(tmp_path, make):
    """The command line's default seed: a file saved with it keeps it."""
    net = make()
    net.seed = 0
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as f:
        assert int(f["seed"]) == 0
    assert digitnet.load(tmp_path / "net.npz", device="cpu").seed == 0
