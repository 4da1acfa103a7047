"""The one trainer, for Network and Model alike: exact steps against an
independent reference, the schedule and best-epoch selection, interrupts,
divergence and resumed runs."""

import dataclasses

import numpy as np
import pytest

from digitnet import Model, Network, backend, checkpoint, training
from conftest import blobs


def host(arrays):
    return [backend.to_numpy(a).copy() for a in arrays]


def reference_sgd(sizes, seed, data, epochs, m, eta, lmbda=0.0, mu=0.0):
    """The book's SGD written out alone in NumPy, one example at a time:
    N(0, 1) weights then biases layer by layer, a fresh permutation of the
    training set each epoch from the same generator, sigmoid neurons, the
    quadratic cost, L2 over n examples and momentum."""
    rng = np.random.default_rng(seed)
    w, b = [], []
    for x_, y_ in zip(sizes[:-1], sizes[1:]):
        w.append(rng.standard_normal((y_, x_)))
        b.append(rng.standard_normal((y_, 1)))
    vw, vb = [np.zeros_like(a) for a in w], [np.zeros_like(a) for a in b]
    images, labels = np.asarray(data.images, dtype=np.float64), data.labels
    n = len(labels)
    for _ in range(epochs):
        order = rng.permutation(n)
        for k in range(0, n, m):
            batch = order[k:k + m]
            gw, gb = [np.zeros_like(a) for a in w], [np.zeros_like(a) for a in b]
            for i in batch:
                a, acts = images[:, i:i + 1], [images[:, i:i + 1]]
                for wl, bl in zip(w, b):
                    a = 1.0 / (1.0 + np.exp(-(wl @ a + bl)))
                    acts.append(a)
                target = np.zeros((sizes[-1], 1))
                target[labels[i]] = 1.0
                delta = (a - target) * a * (1 - a)
                for l in range(len(w) - 1, -1, -1):
                    gw[l] += delta @ acts[l].T
                    gb[l] += delta
                    if l:
                        delta = (w[l].T @ delta) * acts[l] * (1 - acts[l])
            size = len(batch)
            for l in range(len(w)):
                vw[l] = mu * vw[l] - eta / size * gw[l] - eta * lmbda / n * w[l]
                vb[l] = mu * vb[l] - eta / size * gb[l]
                w[l] = w[l] + vw[l]
                b[l] = b[l] + vb[l]
    return w, b


PATHS = {
    # name: (build, options, force the plain batched step)
    "network fast path": ("network", dict(), False),
    "network plain batched": ("network", dict(), True),
    "network per-example": ("network", dict(engine="per-example"), False),
    "network L2 + momentum": ("network", dict(lmbda=3.0, momentum=0.7), False),
    "model fast path": ("model", dict(), False),
    "model L2 + momentum": ("model", dict(lmbda=3.0, momentum=0.7), False),
    "model per-example L2": ("model", dict(lmbda=3.0, engine="per-example"), False),
}


@pytest.mark.parametrize("path", PATHS)
def test_every_path_takes_the_reference_steps(xp, path, monkeypatch):
    """53 examples in mini-batches of 10 (a short last one), two epochs, float64:
    the same weights as the reference to rounding, so a wrong rate, a missing
    L2 or momentum term, L2 over m instead of n, a skipped shuffle or a sign
    slip in any BP equation fails."""
    kind, options, plain = PATHS[path]
    if plain:
        monkeypatch.setattr(backend, "has_out", lambda xp: False)
    data = blobs(53)
    sizes = [12, 7, 5, 4]
    net = (Network(sizes, seed=9, device=xp, dtype="float64") if kind == "network" else
           Model("fc:7,fc:5,fc:4", seed=9, device=xp, dtype="float64", input_shape=(12,)))
    before = host(net.weights)
    net.sgd(data, 2, 10, 2.5, **options)
    w, b = reference_sgd(sizes, 9, data, 2, 10, 2.5, options.get("lmbda", 0.0),
                         options.get("momentum", 0.0))
    assert np.abs(before[0] - w[0]).max() > 1e-2  # the run really moved
    for got, want in zip(host(net.weights + net.biases), w + b):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_network_and_model_train_to_identical_weights(mnist):
    """The book's Network and the Model of the same layers (sigmoid, quadratic,
    N(0, 1)) and seed: identical at the start and after training, bit for bit,
    on the real MNIST, in float64, with and without L2 and momentum."""
    training_set, _, _ = mnist
    data = training_set[:3000]
    for options in (dict(), dict(lmbda=2.0, momentum=0.5), dict(engine="per-example")):
        net = Network([784, 30, 10], seed=4, device="cpu", dtype="float64")
        model = Model("fc:30,fc:10", seed=4, device="cpu", dtype="float64")
        for a, b in zip(net.weights + net.biases, model.weights + model.biases):
            np.testing.assert_array_equal(a, b)
        small = data[:300] if options.get("engine") else data
        net.sgd(small, 2, 10, 3.0, **options)
        model.sgd(small, 2, 10, 3.0, **options)
        for a, b in zip(net.weights + net.biases, model.weights + model.biases):
            np.testing.assert_array_equal(a, b)


def test_each_epoch_is_a_fresh_permutation_from_the_run_generator(monkeypatch):
    """Both classes draw one permutation of all n examples per epoch from their
    own generator (so a seed fixes the order), and train in that order."""
    seen = []
    real = training.engines.stepper

    def spy(*args, **kwargs):
        begin, step, end = real(*args, **kwargs)
        return begin, lambda idx: seen.append(backend.to_numpy(idx).copy()) or step(idx), end
    monkeypatch.setattr(training.engines, "stepper", spy)
    for net in (Network([12, 4], seed=2, device="cpu"),
                Model("conv:2x3x3,fc:4", input_shape=(1, 3, 4), seed=2, device="cpu",
                      dropout=0.0)):
        seen.clear()
        expected = np.random.default_rng(2)
        for shape in [(4, 12), (4, 1)] if isinstance(net, Network) else [(2, 9), (2, 1), (4, 4), (4, 1)]:
            expected.standard_normal(shape)  # the initial weights come first
        net.sgd(blobs(25), 3, 10, 0.1)
        orders = [np.concatenate(seen[i:i + 3]) for i in (0, 3, 6)]
        for order in orders:
            np.testing.assert_array_equal(order, expected.permutation(25))
        assert not np.array_equal(orders[0], orders[1])


def test_best_validation_weights_are_restored_and_saved(tmp_path):
    """A run whose validation accuracy falls after its best epoch ends with
    (and saves) that epoch's weights, not the last ones."""
    train, val = blobs(200, seed=1), blobs(100, seed=2)
    net = Network([12, 8, 4], seed=0, device="cpu", dtype="float64")
    run = training.Run(net, mini_batch_size=10, eta=3.0)
    kept = {}

    def on_epoch(record, run):
        kept[record["epoch"]] = host(net.weights + net.biases)
        if record["epoch"] == 3:  # wreck the network: later epochs are worse
            for w in net.weights:
                w[...] = np.random.default_rng(0).standard_normal(w.shape) * 5
    training.fit(run, train, 5, validation_data=val, on_epoch=on_epoch)
    best = training.best_epoch(run.history)
    assert best["epoch"] <= 3 and run.history[-1]["validation_accuracy"] < best["validation_accuracy"]
    for got, want in zip(host(net.weights + net.biases), kept[best["epoch"]]):
        np.testing.assert_array_equal(got, want)
    checkpoint.save(net, tmp_path / "best.npz")
    assert net.evaluate(val) == best["validation_correct"]
    assert checkpoint.load(tmp_path / "best.npz", device="cpu").evaluate(val) == best["validation_correct"]


def test_the_reported_cost_is_the_mean_cost_plus_the_l2_term():
    train, test = blobs(60, seed=3), blobs(40, seed=4)
    net = Network([12, 5, 4], seed=1, device="cpu", dtype="float64")
    history = net.sgd(train, 1, 10, 0.5, lmbda=7.0, test_data=test)
    x, y = test.images, np.eye(4)[:, test.labels]
    quadratic = 0.5 * np.sum((net.feedforward(x) - y) ** 2) / 40
    l2 = 7.0 / (2 * 60) * sum(np.sum(w * w) for w in net.weights)
    assert history[0]["test_cost"] == pytest.approx(quadratic + l2, rel=1e-12)


def test_evaluation_counts_every_example_of_every_chunk(trained_net, mnist):
    """Against a plain NumPy argmax, on 2,345 test images (chunks of 1,000)."""
    _, _, test = mnist
    data = test[:2345]
    want = int(np.sum(np.argmax(trained_net.feedforward(data.images), axis=0) == data.labels))
    assert trained_net.evaluate(data) == want
    assert training.measure(trained_net, *training.to_device(trained_net, data), chunk=7)[1] == want


@pytest.mark.parametrize("label, ok", [(3, True), (4, False), (-1, False)])
def test_labels_at_the_boundary(label, ok):
    data = blobs(20)
    data.labels[5] = label
    net = Network([12, 4], device="cpu")
    if ok:
        net.sgd(data, 1, 10, 0.1)
    else:
        with pytest.raises(ValueError, match="labels must lie in 0..3"):
            net.sgd(data, 1, 10, 0.1)


def test_empty_sets_are_refused_alike():
    empty = blobs(20)[:0]
    for net in (Network([12, 4], device="cpu"), Model("fc:4", input_shape=(12,), device="cpu")):
        with pytest.raises(ValueError, match="is empty"):
            net.sgd(blobs(20), 1, 10, 0.1, test_data=empty)


def small_conv(seed=3):
    return Model("conv:2x3x3,pool:2,fc:6,softmax:4", activation="relu", init="scaled",
                 dropout=0.3, input_shape=(1, 4, 6), seed=seed, device="cpu", dtype="float64")


def conv_data(n, seed):
    d = blobs(n, features=24, seed=seed)
    return d


def test_a_stopped_run_goes_back_to_its_last_epoch_and_resumes_exactly(tmp_path):
    """stop() after a few mini-batches of epoch 3: the network and the run are
    those of epoch 2; saved and resumed, they end exactly as an uninterrupted
    run (conv, dropout, momentum, L2, schedule)."""
    train, val = conv_data(120, 1), conv_data(40, 2)
    options = dict(lmbda=0.5, momentum=0.8, patience=2, eta_decay=8)
    whole = small_conv(13)  # a seed whose best validation epoch is not the last
    whole_run = training.Run(whole, mini_batch_size=10, eta=0.05, **options)
    training.fit(whole_run, train, 4, validation_data=val, test_data=val)

    cut = small_conv(13)
    run = training.Run(cut, mini_batch_size=10, eta=0.05, **options)
    steps = []
    training.fit(run, train, 2, validation_data=val, test_data=val)
    training.fit(run, train, 4, validation_data=val, test_data=val,
                 stop=lambda: steps.append(1) or len(steps) >= 3)
    assert run.ended == "interrupted" and run.epoch == 2 and len(run.history) == 2
    checkpoint.save_run(run, tmp_path / "run.ckpt", {"note": "x"})
    resumed, extra = checkpoint.load_run(tmp_path / "run.ckpt", device="cpu")
    assert extra == {"note": "x"}
    resumed.ended = None
    training.fit(resumed, train, 4, validation_data=val, test_data=val)
    timeless = lambda history: [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")}
                                for r in history]
    assert timeless(resumed.history) == timeless(whole_run.history)
    assert resumed.best.record["epoch"] < 4  # so the last epoch's weights are compared too
    for got, want in ((resumed.net.weights + resumed.net.biases, whole.weights + whole.biases),
                      (resumed.last.weights + resumed.last.biases, whole_run.last.weights + whole_run.last.biases)):
        for a, b in zip(host(got), host(want)):
            np.testing.assert_array_equal(a, b)


def test_divergence_stops_with_the_last_good_weights():
    """eta lmbda / n far above 2: the weight decay itself oscillates and
    explodes to NaN within an epoch; the network keeps epoch 1's weights."""
    train = blobs(100)
    net = Model("fc:8,softmax:4", activation="relu", input_shape=(12,), device="cpu")
    run = training.Run(net, mini_batch_size=10, eta=1.0)
    training.fit(run, train, 1)
    good = host(net.weights)
    run.config = dataclasses.replace(run.config, lmbda=1e7)
    with pytest.raises(training.Diverged, match="in epoch 2: the weights or the cost became NaN"):
        training.fit(run, train, 3)
    assert run.ended == "diverged" and run.epoch == 1
    for a, b in zip(host(net.weights), good):
        np.testing.assert_array_equal(a, b)


def test_chance_accuracy_with_a_flat_cost_is_not_learning():
    rec = lambda acc, cost: {"validation_accuracy": acc, "validation_cost": cost}
    assert not training.not_learning([rec(0.1, 2.0)], 10)  # one epoch says nothing yet
    assert training.not_learning([rec(0.5, 1.0), rec(0.1, 2.0)], 10)
    assert training.not_learning([rec(0.1, 0.5), rec(0.1, 0.5)], 10)
    assert not training.not_learning([rec(0.1, 2.0), rec(0.12, 1.5)], 10)  # eta too small
    assert not training.not_learning([rec(0.9, 2.0)], 10)
    assert not training.not_learning([], 10)


def test_the_per_example_engine_trains_a_model_with_dropout():
    """Each column gets its own slice of the mini-batch's dropout masks."""
    train = conv_data(30, 5)
    nets = []
    for engine in ("batched", "per-example"):
        net = small_conv()
        net.sgd(train, 2, 10, 0.05, momentum=0.5, engine=engine)
        nets.append(host(net.weights + net.biases))
    for a, b in zip(*nets):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_an_augmented_run_resumes_exactly(tmp_path):
    """The checkpoint keeps `augment` and the generator, so the distortions
    after a resume are the ones an uninterrupted run would have drawn."""
    train = blobs(60, features=784, classes=4, seed=7)
    nets = [Model("fc:12,softmax:4", activation="relu", init="scaled", input_shape=(784,),
                  seed=5, device="cpu", dtype="float64") for _ in range(2)]
    whole = training.Run(nets[0], mini_batch_size=10, eta=0.1, momentum=0.5, augment=True)
    training.fit(whole, train, 3)
    part = training.Run(nets[1], mini_batch_size=10, eta=0.1, momentum=0.5, augment=True)
    training.fit(part, train, 1)
    checkpoint.save_run(part, tmp_path / "a.ckpt")
    resumed, _ = checkpoint.load_run(tmp_path / "a.ckpt", device="cpu")
    assert resumed.config.augment is True
    training.fit(resumed, train, 3)
    for a, b in zip(host(resumed.net.weights), host(nets[0].weights)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", ["network fast path", "network per-example",
                                  "model L2 + momentum"])
def test_byte_pixels_train_exactly_as_their_floats(mnist, xp, path):
    """`expand` keeps MNIST's pixels as uint8 (a quarter of the memory); every
    path turns them into the very floats the IDX reader makes, so a run on
    bytes ends with the weights of a run on floats, bit for bit."""
    from digitnet.data import Dataset, expand
    training_set, _, test = mnist
    kind, options, _ = PATHS[path]
    bytes_set = expand(training_set[:60])
    assert bytes_set.images.dtype == np.uint8 and len(bytes_set) == 300
    floats = Dataset(bytes_set.images.astype(np.float32) / np.float32(255.0), bytes_set.labels)
    nets = []
    for data in (bytes_set, floats):
        net = (Network([784, 20, 10], seed=3, device=xp, dtype="float64") if kind == "network"
               else Model("fc:20,fc:10", seed=3, device=xp, dtype="float64"))
        net.sgd(data, 1, 10, 2.0, **options)
        nets.append(net)
        assert net.evaluate(data) == nets[0].evaluate(bytes_set)
    for a, b in zip(host(nets[0].weights + nets[0].biases), host(nets[1].weights + nets[1].biases)):
        np.testing.assert_array_equal(a, b)
