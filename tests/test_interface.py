"""The one model interface as a user meets it: both networks are
Classifiers, save and load themselves (network2.py's words), keep their
seed and whole description in the file, take one image or many, and share
backprop's signature."""

import dataclasses
import inspect

import numpy as np
import pytest

import digitnet
from digitnet import Classifier, Model, Network
from digitnet.checkpoint import CheckpointError

NETS = {
    "network": lambda: Network([784, 12, 10], seed=7, device="cpu", dtype="float64"),
    "model": lambda: Model("conv:2x5x5,pool:4,fc:12,softmax:10", activation="relu",
                           init="scaled", dropout=0.25, seed=7, device="cpu", dtype="float32"),
}


@pytest.fixture(params=list(NETS))
def trained(request, mnist):
    net = NETS[request.param]()
    net.sgd(mnist[0][:300], 1, 10, 0.1)
    return net


def test_both_networks_are_classifiers_with_one_backprop_signature():
    assert issubclass(Network, Classifier) and issubclass(Model, Classifier)
    assert inspect.signature(Network.backprop) == inspect.signature(Model.backprop)
    with pytest.raises(ValueError, match="no dropout"):
        NETS["network"]().backprop(np.zeros((784, 2)), np.zeros((10, 2)), {0: np.ones((12, 2))})


def test_save_and_load_keep_every_field(trained, mnist, tmp_path):
    trained.classes = [f"class {i}" for i in range(10)]
    path = tmp_path / "net.npz"
    trained.save(path)
    for loaded in (type(trained).load(path, device="cpu"), digitnet.load(path, device="cpu")):
        assert type(loaded) is type(trained)
        assert loaded.config() == trained.config() and loaded.describe() == trained.describe()
        assert loaded.seed == 7 and loaded.classes == trained.classes
        assert loaded.dtype == trained.dtype
        for a, b in zip(loaded.weights + loaded.biases, trained.weights + trained.biases):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.feedforward(mnist[2].images[:, :20]),
                                      trained.feedforward(mnist[2].images[:, :20]))


def test_loading_the_other_kind_by_its_class_is_one_clear_error(tmp_path):
    NETS["network"]().save(tmp_path / "n.npz")
    NETS["model"]().save(tmp_path / "m.npz")
    with pytest.raises(CheckpointError, match="holds a Model; load it with digitnet.load or Model.load"):
        Network.load(tmp_path / "m.npz")
    with pytest.raises(CheckpointError, match="holds a chapter-1 Network; load it with digitnet.load or Network.load"):
        Model.load(tmp_path / "n.npz")


def test_a_file_written_before_seeds_were_kept_loads_with_no_seed(tmp_path):
    net = NETS["network"]()
    net.seed = None  # what such a file says: nothing
    net.save(tmp_path / "old.npz")
    with np.load(tmp_path / "old.npz") as npz:
        assert "seed" not in npz.files
    assert Network.load(tmp_path / "old.npz").seed is None


def test_one_image_gives_one_answer(trained, mnist):
    images = mnist[2].images[:, :5]
    many = trained.feedforward(images)
    for k in range(5):
        one = trained.feedforward(images[:, k])
        assert one.shape == (10,)
        np.testing.assert_allclose(one, many[:, k], rtol=1e-6, atol=1e-12)
    for bad in (np.zeros(783), np.zeros((5, 784)), np.zeros((784, 2, 1))):
        with pytest.raises(ValueError, match=r"feedforward takes \(784,\) for one example or "
                                             r"\(784, m\)"):
            trained.feedforward(bad)


def test_predict_reads_pictures_through_the_package(trained, mnist, tmp_path):
    from PIL import Image
    path = tmp_path / "digit.png"
    Image.fromarray((mnist[2].images[:, 0].reshape(28, 28) * 255).round().astype(np.uint8)).save(path)
    [answer] = digitnet.predict(trained, [path])
    want = int(np.argmax(trained.feedforward(mnist[2].images[:, :1])))
    assert answer["path"] == str(path) and answer["digit"] == want


def test_examples_are_rows_in_memory_and_images_is_the_books_view(mnist):
    """One layout: a dataset read from the IDX files is stored as rows, and
    `images` (784, n) and `rows` (n, 784) are views of the same memory, so
    the trainer's boundary (Dataset.rows) copies nothing."""
    training_set = mnist[0]
    for data in (training_set, training_set[:100], mnist[2]):
        rows = data.rows
        assert rows.flags.c_contiguous and rows.shape == (len(data), 784)
        assert np.shares_memory(rows, training_set.images) or data is mnist[2]
        assert np.shares_memory(rows, data.images)
        np.testing.assert_array_equal(rows[:5], data.images[:, :5].T)


def test_one_config_holds_the_run_and_is_checked_once(mnist, tmp_path):
    """TrainConfig carries every setting of a run, epochs and monitoring
    included; fit trains to its epochs; a checkpoint keeps it whole; a bad
    value is one ValueError naming the field, the same words everywhere."""
    from digitnet import checkpoint, training
    from digitnet.config import TrainConfig
    config = TrainConfig(mini_batch_size=10, eta=3.0, momentum=0.5, epochs=2,
                         monitor_training=True)
    run = training.Run(Network([784, 10, 10], seed=2, device="cpu"), config)
    training.fit(run, mnist[0][:200], validation_data=mnist[1][:100])
    assert run.epoch == 2 and all("training_accuracy" in r for r in run.history)
    checkpoint.save_run(run, tmp_path / "run.ckpt")
    assert checkpoint.load_run(tmp_path / "run.ckpt", device="cpu")[0].config == config
    for bad, words in [(dict(epochs=-1), "epochs must be a whole number >= 0, got -1"),
                       (dict(monitor_training="yes"), "monitor_training must be true or false"),
                       (dict(eta=float("nan")), "eta must be a positive number, got nan"),
                       (dict(lr=0.1), "unexpected keyword argument 'lr'")]:
        with pytest.raises((ValueError, TypeError), match=words):
            TrainConfig(**(dict(mini_batch_size=10, eta=3.0) | bad))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.eta = 1.0


def three_trained(mnist):
    nets = []
    for seed in range(3):
        net = Model("fc:20,softmax:10", activation="relu", init="scaled", seed=seed,
                    device="cpu", dtype="float64")
        net.sgd(mnist[0][:500], 1, 10, 0.1, verbose=False)
        nets.append(net)
    return nets


def test_an_ensemble_averages_its_networks_outputs(mnist):
    nets = three_trained(mnist)
    ensemble = digitnet.Ensemble(nets)
    images, labels = mnist[2].images[:, :600], mnist[2].labels[:600]
    mean = sum(n.feedforward(images) for n in nets) / 3   # the reference, apart
    np.testing.assert_allclose(ensemble.feedforward(images), mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ensemble.feedforward(images[:, 7]), mean[:, 7], rtol=1e-12)
    assert ensemble.evaluate(mnist[2][:600]) == int(np.sum(np.argmax(mean, axis=0) == labels))
    with pytest.raises(ValueError, match="same outputs"):
        digitnet.Ensemble([nets[0], Model("fc:20,softmax:5", device="cpu")])
    with pytest.raises(ValueError, match="not trained"):
        ensemble.sgd(mnist[0][:100], 1, 10, 0.1)


def test_evaluate_several_models_reports_each_and_their_ensemble(mnist, small_split, tmp_path,
                                                                 capsys):
    from digitnet import cli
    nets = three_trained(mnist)
    paths = [tmp_path / f"m{k}.npz" for k in range(3)]
    for net, path in zip(nets, paths):
        net.save(path)
    assert cli.main(["evaluate", *map(str, paths), *small_split]) == 0
    lines = capsys.readouterr().out.splitlines()
    test = digitnet.load_mnist(small_split[1])[2]   # the small folder's 500 test images
    mean = sum(n.feedforward(test.images) for n in nets) / 3
    want = int(np.sum(np.argmax(mean, axis=0) == test.labels))
    assert len(lines) == 4 and lines[3].startswith(f"ensemble of 3: test {want}/500 ")
    for net, path, line in zip(nets, paths, lines):
        assert line.startswith(f"{path}: test {net.evaluate(test)}/500 ")


def test_predict_with_an_ensemble_averages_the_models(mnist, tmp_path, capsys):
    import json
    from PIL import Image
    from digitnet import cli
    nets = three_trained(mnist)[:2]
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for net, path in zip(nets, paths):
        net.save(path)
    picture = tmp_path / "digit.png"
    pixels = (mnist[2].images[:, 0].reshape(28, 28) * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(picture)
    assert cli.main(["predict", str(paths[0]), "--ensemble", str(paths[1]), str(picture),
                     "--json"]) == 0
    [got] = json.loads(capsys.readouterr().out)
    alone = [digitnet.predict(net, [picture])[0]["outputs"] for net in nets]
    # each answer is rounded to 6 places: the mean of two rounded values is within 1e-6
    np.testing.assert_allclose(got["outputs"], (np.array(alone[0]) + alone[1]) / 2, rtol=0,
                               atol=1.01e-6)
    bad = tmp_path / "sigmoid.npz"
    Model("fc:20,fc:10", device="cpu").save(bad)  # sigmoid outputs: not averaged with softmax
    assert cli.main(["predict", str(paths[0]), "--ensemble", str(bad), str(picture)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error: ") and err.count("\n") == 1, err
    assert "the same output layer" in err
