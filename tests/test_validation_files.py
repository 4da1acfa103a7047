"""Every condition a model file is checked by, alone (modelfile.py): one
array or description field changed, every other as the code writes it,
and the one line that names it; the edges a file may have (no classes, no
seed, seed 0) load.  Version 2 files are written by today's code; version
1 files are the corpus's (tests/data/), as the code of their time wrote
them."""

import json
from pathlib import Path

import numpy as np
import pytest

import digitnet
from digitnet import Model, Network
from digitnet.modelfile import CheckpointError, network_arrays

CORPUS = Path(__file__).resolve().parent / "data"


def network():
    net = Network([6, 3, 4], seed=0, device="cpu")
    net.classes = ["a", "b", "c", "d"]
    return net


def model():
    return Model("fc:3,softmax:4", cost="log-likelihood", input_shape=(6,), dropout=0.25,
                 seed=5, device="cpu")


def v2(make):
    def arrays():
        return network_arrays(make())
    arrays.__name__ = make.__name__
    return arrays


def v1(kind):
    """A version-1 file's arrays, as 57d6ca1's code wrote them."""
    def arrays():
        with np.load(CORPUS / f"57d6ca1-{kind}.npz", allow_pickle=False) as f:
            return dict(f)
    arrays.__name__ = f"v1-{kind}"
    return arrays


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


def field(name, value):
    """A change to one field of a version-2 file's description."""
    def change(arrays):
        d = json.loads(str(arrays["model"]))
        if value is KeyError:
            del d[name]
        else:
            d[name] = value
        arrays["model"] = np.array(json.dumps(d))
    return change


DIGITS = [str(d) for d in range(10)]
CASES = [
    # what every version checks
    (v2(network), setting("format", KeyError),
     "not a digitnet file of this kind (no 'digitnet-network' or 'digitnet-model' marker)"),
    (v2(network), setting("format", 7), "not a digitnet file of this kind"),
    (v2(network), setting("version", KeyError), "format version None, this digitnet reads 1 and 2"),
    (v2(network), setting("version", 3), "format version 3, this digitnet reads 1 and 2"),
    (v2(network), setting("version", [2]), "format version [2], this digitnet reads 1 and 2"),
    (v2(network), setting("version", 2.0), "format version 2.0, this digitnet reads 1 and 2"),
    (v2(network), nan_in("weights_1"), "weights_1 holds NaN or infinite values"),
    (v2(network), nan_in("biases_0"), "biases_0 holds NaN or infinite values"),
    (v2(network), setting("weights_0", np.zeros((3, 5))),
     "weights_0 has shape (3, 5), but the network's description needs (3, 6)"),
    (v2(network), setting("biases_1", KeyError), "missing array 'biases_1'"),
    (v2(model), setting("weights_1", np.zeros((4, 3), np.int64)),
     "weights_1 holds int64 values, not floats"),
    # version 2's description, field by field
    (v2(network), setting("model", KeyError), "missing array 'model'"),
    (v2(network), setting("model", "{"), "model is not valid JSON"),
    (v2(network), setting("model", "[" * 100_000), "model is not valid JSON"),
    (v2(network), setting("model", 7), "model is not a string"),
    (v2(network), setting("model", "[]"), "model is not a JSON object"),
    (v2(network), field("kind", KeyError), "model: kind must be one of network, model, got null"),
    (v2(network), field("kind", "conv"), 'model: kind must be one of network, model, got "conv"'),
    (v2(network), field("width", 3), "model: width is not a field of a network's description"),
    (v2(model), field("sizes", [6, 3, 4]), "model: sizes is not a field of a model's description"),
    (v2(network), field("sizes", KeyError), "model: sizes is missing"),
    (v2(network), field("dtype", KeyError), "model: dtype is missing"),
    (v2(network), field("classes", KeyError), "model: classes is missing"),
    (v2(network), field("seed", KeyError), "model: seed is missing"),
    (v2(network), field("sizes", [6.0, 3, 4]), "model: sizes must be a list of whole numbers"),
    (v2(network), field("sizes", "6,3,4"), "model: sizes must be a list of whole numbers"),
    (v2(network), field("sizes", [6, True, 4]), "model: sizes must be a list of whole numbers"),
    (v2(network), field("sizes", [6]), "sizes [6] are not a network's"),
    (v2(network), field("dtype", "float16"), "model: dtype must be one of float32, float64"),
    (v2(network), field("dtype", 32), "model: dtype must be one of float32, float64"),
    (v2(network), field("classes", [1, 2, 3, 4]), "model: classes must be null or a list of names"),
    (v2(network), field("classes", "abcd"), "model: classes must be null or a list of names"),
    (v2(network), field("classes", ["a", "b", "c"]), "classes must be 4 names, one per output"),
    (v2(network), field("seed", 1.0), "model: seed must be null or a whole number >= 0"),
    (v2(network), field("seed", -1), "model: seed must be null or a whole number >= 0"),
    (v2(network), field("seed", "0"), "model: seed must be null or a whole number >= 0"),
    (v2(model), field("layers", KeyError), "model: layers is missing"),
    (v2(model), field("layers", 7), "model: layers must be a string"),
    (v2(model), field("layers", "fc:3,bogus:4"), "layer 'bogus:4'"),
    (v2(model), field("cost", None), "model: cost must be a string"),
    (v2(model), field("cost", "hinge"), "unknown cost 'hinge'"),
    (v2(model), field("activation", []), "model: activation must be a string"),
    (v2(model), field("init", 1), "model: init must be a string"),
    (v2(model), field("dropout", "0.25"), "model: dropout must be a number"),
    (v2(model), field("dropout", True), "model: dropout must be a number"),
    (v2(model), field("dropout", float("nan")), "model: dropout must be a number"),
    (v2(model), field("dropout", 1), "dropout must be in [0, 1)"),
    (v2(model), field("input_shape", [6.5]), "model: input_shape must be a list of whole numbers"),
    (v2(model), field("input_shape", KeyError), "model: input_shape is missing"),
    # the kind is the description's: another kind's arrays do not fit it
    (v2(model), lambda a: [field("kind", "network")(a), field("sizes", [6, 3, 4])(a)],
     "model: activation is not a field of a network's description"),
    (v2(network), setting("velocity_w_0", np.zeros((3, 6))),
     "holds arrays its description does not declare: velocity_w_0"),
    (v2(network), setting("sizes", [6, 3, 4]), "holds arrays its description does not declare: "
                                               "sizes"),
    # version 1's arrays
    (v1("network"), setting("version", 3), "format version 3, this digitnet reads 1 and 2"),
    (v1("network"), setting("dtype", "float16"), "dtype 'float16' is not one of float32, float64"),
    (v1("network"), setting("dtype", 32), "dtype is not a string"),
    (v1("network"), setting("sizes", [784.0, 3.0, 10.0]), "sizes is not a list of whole numbers"),
    (v1("network"), setting("sizes", [[784, 3, 10]]), "sizes is not a list of whole numbers"),
    (v1("network"), setting("classes", DIGITS[:9]), "classes must be 10 names, one per output"),
    (v1("network"), setting("classes", list(range(10))),
     "classes must be 10 names, one per output"),
    (v1("network"), setting("classes", [DIGITS]), "classes must be 10 names, one per output"),
    (v1("network"), setting("seed", 1.0), "seed is not a whole number"),
    (v1("network"), setting("seed", [0]), "seed is not a whole number"),
    (v1("network"), setting("seed", "0"), "seed is not a whole number"),
    (v1("network"), nan_in("weights_1"), "weights_1 holds NaN or infinite values"),
    (v1("network"), setting("biases_1", KeyError), "missing array 'biases_1'"),
    (v1("dense"), setting("dropout", 1), "dropout is not a number"),
    (v1("dense"), setting("dropout", [0.25]), "dropout is not a number"),
    (v1("dense"), setting("layers", "fc:3,bogus:4"), "layer"),
    (v1("dense"), setting("input_shape", [784.0]), "input_shape is not a list of whole numbers"),
    (v1("dense"), setting("cost", KeyError), "missing array 'cost'"),
    (v1("dense"), setting("seed", 5.0), "seed is not a whole number"),
]


@pytest.mark.parametrize("make, change, line", CASES,
                         ids=[f"{c[0].__name__}-{c[2][:30]}" for c in CASES])
def test_each_condition_of_a_model_file_alone(tmp_path, make, change, line):
    arrays = make()
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
    (v2(network), field("seed", None), None, ["a", "b", "c", "d"]),
    (v2(network), field("classes", None), 0, None),
    (v2(network), setting("version", np.uint8(2)), 0, ["a", "b", "c", "d"]),
    (v1("network"), setting("seed", KeyError), None, None),
    (v1("network"), setting("classes", DIGITS), 0, DIGITS),
    (v1("network"), setting("seed", np.uint8(0)), 0, None),
    (v1("dense"), setting("seed", np.int32(5)), 5, None),
    (v1("network"), setting("version", np.uint8(1)), 0, None),
])
def test_the_edges_a_model_file_may_have_load(tmp_path, make, change, seed, classes):
    arrays = make()
    change(arrays)
    path = tmp_path / "net.npz"
    np.savez(path, **arrays)
    net = digitnet.load(path, device="cpu")
    assert net.seed == seed and type(net.seed) is type(seed) and net.classes == classes


@pytest.mark.parametrize("make", [network, model])
def test_a_file_is_its_description_and_named_arrays(tmp_path, make):
    """Version 2 as documented: the kind written, seed 0 (the command line's
    default) kept, the book's names and shapes, nothing else."""
    net = make()
    net.seed = 0
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as f:
        d = json.loads(str(f["model"]))
        assert (str(f["format"]), int(f["version"])) == ("digitnet-model", 2)
        assert d == {**net.config(), "classes": net.classes, "seed": 0}
        assert d["kind"] == type(net).__name__.lower()
        assert sorted(f.files) == sorted(["format", "version", "model", "weights_0", "biases_0",
                                          "weights_1", "biases_1"])
        for i, (w, b) in enumerate(zip(net.weights, net.biases)):
            np.testing.assert_array_equal(f[f"weights_{i}"], w)
            np.testing.assert_array_equal(f[f"biases_{i}"], b)
    assert digitnet.load(tmp_path / "net.npz", device="cpu").seed == 0


# --- run checkpoints: every array the state declares, and nothing else -----

def run_arrays(tmp_path, optimizer="sgd", momentum=0.5, validation=True):
    """A real run's checkpoint arrays (version 2): two epochs of a [12, 3, 4]
    network, with the optimizer's buffers and, validated, a best epoch."""
    from digitnet import checkpoint
    from digitnet.training import Run, fit
    from conftest import blobs
    net = Network([12, 3, 4], seed=1, device="cpu", dtype="float64")
    run = Run(net, mini_batch_size=5, eta=1.0, momentum=momentum, epochs=2, optimizer=optimizer)
    fit(run, blobs(40), validation_data=blobs(20, seed=1) if validation else None)
    checkpoint.save_run(run, tmp_path / "run.npz")
    with np.load(tmp_path / "run.npz", allow_pickle=False) as f:
        return dict(f)


RUN_CASES = [
    (dict(), setting("velocity_w_1", KeyError), "missing array 'velocity_w_1'"),
    (dict(), setting("velocity_b_0", np.zeros((3, 2))),
     "velocity_b_0 has shape (3, 2), but the network's description needs (3, 1)"),
    (dict(), nan_in("velocity_w_0"), "velocity_w_0 holds NaN or infinite values"),
    (dict(), setting("best_biases_1", KeyError), "missing array 'best_biases_1'"),
    (dict(), nan_in("best_weights_0"), "best_weights_0 holds NaN or infinite values"),
    (dict(optimizer="adam", momentum=0.0), setting("adam_v_b_1", KeyError),
     "missing array 'adam_v_b_1'"),
    # another run's arrays: refused rather than dropped without a word
    (dict(momentum=0.0), setting("velocity_w_0", np.zeros((3, 12))),
     "holds arrays its description does not declare: velocity_w_0"),
    (dict(), setting("adam_m_w_0", np.zeros((3, 12))),
     "holds arrays its description does not declare: adam_m_w_0"),
    (dict(validation=False), setting("best_weights_0", np.zeros((3, 12))),
     "holds arrays its description does not declare: best_weights_0"),
    (dict(), setting("buffer.bn0.mean", np.zeros((3, 1))),
     "holds arrays its description does not declare: buffer.bn0.mean"),
    (dict(), field("kind", "model"), "model: sizes is not a field of a model's description"),
]


@pytest.mark.parametrize("options, change, line", RUN_CASES,
                         ids=[c[2][:40] for c in RUN_CASES])
def test_each_array_of_a_run_checkpoint_alone(tmp_path, options, change, line):
    from digitnet import checkpoint
    arrays = run_arrays(tmp_path, **options)
    path = tmp_path / "edited.npz"
    np.savez(path, **arrays)
    checkpoint.load_run(path, device="cpu")  # unchanged, it loads
    change(arrays)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError) as exc:
        checkpoint.load_run(path, device="cpu")
    assert exc.value.lines == [f"{path}: {line}"]


def test_a_version_1_run_with_both_kinds_descriptions_is_refused(tmp_path):
    """Version 1 inferred a run's kind from its arrays: a conv run with a
    `sizes` array added is neither kind, not a chapter-1 Network."""
    from digitnet import checkpoint
    with np.load(CORPUS / "57d6ca1-conv-run.npz", allow_pickle=False) as f:
        arrays = dict(f)
    path = tmp_path / "both.npz"
    np.savez(path, **arrays)
    assert type(checkpoint.load_run(path, device="cpu")[0].net) is Model
    np.savez(path, **arrays, sizes=np.array([784, 10]))
    with pytest.raises(CheckpointError) as exc:
        checkpoint.load_run(path, device="cpu")
    assert exc.value.lines == [f"{path}: holds both a Network's sizes and a Model's layers"]
