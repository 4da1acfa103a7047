"""The chapter-1 network on every array namespace: maths, gradients, engines."""

import numpy as np
import pytest

from digitnet import Network, backend
from conftest import blobs
from digitnet.activations import sigmoid
from digitnet.engines import backprop_per_example, one_hot
from digitnet.config import TrainConfig


def random_batch(xp, sizes, m, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.random((sizes[0], m))
    y = np.zeros((sizes[-1], m))
    y[rng.integers(0, sizes[-1], m), np.arange(m)] = 1.0
    dt = backend.dtype_of(xp, dtype)
    return xp.asarray(x, dtype=dt), xp.asarray(y, dtype=dt)


def test_sigmoid_is_stable_and_exact(xp):
    z = np.array([-1000.0, -100.0, -30.0, -1.5, 0.0, 0.5, 30.0, 100.0, 1000.0])
    with np.errstate(over="raise"):
        got = backend.to_numpy(sigmoid(xp, xp.asarray(z)))
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert np.all(np.isfinite(got)) and got[0] == 0.0 and got[-1] == 1.0


def test_sigmoid_float32_has_no_overflow_warning(xp):
    z = xp.asarray(np.array([-200.0, -89.0, 0.0, 89.0], dtype=np.float32))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(xp, z)
    assert s.dtype == xp.float32
    np.testing.assert_allclose(backend.to_numpy(s), [0.0, 0.0, 0.5, 1.0], atol=1e-30)


def test_shapes_follow_the_book(xp):
    net = Network([2, 3, 1], device=xp)
    assert [w.shape for w in net.weights] == [(3, 2), (1, 3)]
    assert [b.shape for b in net.biases] == [(3, 1), (1, 1)]
    out = net.feedforward(xp.asarray(np.ones((2, 5)), dtype=net.dtype))
    assert out.shape == (1, 5) and out.dtype == xp.float32


def test_same_seed_same_network_on_every_namespace(xp):
    """The book's N(0, 1) draws, layer by layer (weights, then biases), from
    the seed's generator in float64, rounded to the network's dtype."""
    a = Network([5, 4, 3], seed=7, device=xp)
    rng = np.random.default_rng(7)
    want = [rng.standard_normal(shape) for shape in [(4, 5), (4, 1), (3, 4), (3, 1)]]
    got = [a.weights[0], a.biases[0], a.weights[1], a.biases[1]]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(backend.to_numpy(g), w.astype(np.float32))
    c = Network([5, 4, 3], seed=8, device=xp)
    assert not np.array_equal(backend.to_numpy(c.weights[0]), backend.to_numpy(a.weights[0]))


def quadratic_cost_sum(net, x, y):
    """Sum over the columns of 1/2 ||y - a||^2, the function backprop differentiates."""
    d = backend.to_numpy(net.feedforward(x) - y)
    return 0.5 * float(np.sum(d * d))


@pytest.mark.parametrize("engine", ["batched", "per-example"])
def test_gradient_matches_finite_differences(xp, engine):
    net = Network([6, 5, 4, 3], seed=3, device=xp, dtype="float64")
    x, y = random_batch(xp, net.sizes, m=7)
    grad = net.backprop if engine == "batched" else (lambda x, y: backprop_per_example(net, x, y))
    nabla_b, nabla_w = grad(x, y)
    h = 1e-6
    for params, nablas in ((net.weights, nabla_w), (net.biases, nabla_b)):
        for layer, (p, nabla) in enumerate(zip(params, nablas)):
            host = backend.to_numpy(p).copy()
            numeric = np.zeros_like(host)
            for idx in np.ndindex(host.shape):
                for sign in (1, -1):
                    bumped = host.copy()
                    bumped[idx] += sign * h
                    params[layer] = net.asarray(bumped)
                    numeric[idx] += sign * quadratic_cost_sum(net, x, y) / (2 * h)
                params[layer] = net.asarray(host)
            np.testing.assert_allclose(backend.to_numpy(nabla), numeric, rtol=1e-6, atol=1e-9)


def test_one_example_and_batch_gradients_agree(xp):
    net = Network([8, 6, 4], seed=2, device=xp, dtype="float64")
    x, y = random_batch(xp, net.sizes, m=9)
    for a, b in zip(sum(net.backprop(x, y), []), sum(backprop_per_example(net, x, y), [])):
        np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), rtol=1e-12, atol=1e-14)


def synthetic_dataset(n=300, features=12, classes=4, seed=0):
    return blobs(n, features, classes, seed, noise=0.1, dtype=np.float32)


def test_engines_end_with_the_same_weights(xp):
    data = synthetic_dataset()
    nets = {}
    for engine in ("batched", "per-example"):
        net = Network([12, 7, 4], seed=5, device=xp, dtype="float64")
        net.sgd(data, 3, 8, 2.0, engine=engine)
        nets[engine] = net
    a, b = nets["batched"], nets["per-example"]
    moved = np.abs(backend.to_numpy(a.weights[0]) - Network([12, 7, 4], seed=5, device="cpu",
                                                            dtype="float64").weights[0]).max()
    assert moved > 1e-3  # training really changed the weights
    for pa, pb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(backend.to_numpy(pa), backend.to_numpy(pb), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_learns_and_keeps_its_dtype(xp, dtype):
    data = synthetic_dataset(600, seed=1)
    train, test = data[:400], data[400:]
    net = Network([12, 10, 4], seed=0, device=xp, dtype=dtype)
    before = net.evaluate(test)
    history = net.sgd(train, 5, 10, 3.0, test_data=test)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert history[-1]["test_correct"] == net.evaluate(test)
    assert history[-1]["test_accuracy"] > 0.9 > before / len(test)
    for p in net.weights + net.biases:
        assert p.dtype == backend.dtype_of(xp, dtype)


def test_sgd_prints_the_books_progress_lines(capsys):
    """network.py's words, epochs counted from 0, the count each epoch's
    record holds; a line per epoch without test data; none when asked."""
    data = synthetic_dataset(300, seed=2)
    train, test = data[:200], data[200:]
    history = Network([12, 6, 4], seed=0).sgd(train, 3, 10, 3.0, test_data=test)
    assert capsys.readouterr().out.splitlines() == [
        f"Epoch {j}: {r['test_correct']} / 100" for j, r in enumerate(history)]
    Network([12, 6, 4], seed=0).sgd(train, 2, 10, 3.0)
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 1 complete\n"
    from digitnet import Model
    Model("fc:6,fc:4", input_shape=(12,), seed=0).sgd(train, 2, 10, 3.0, test_data=test,
                                                 verbose=False)
    Network([12, 6, 4], seed=0).sgd(train, 2, 10, 3.0, verbose=False)
    assert capsys.readouterr().out == ""


def test_same_seed_same_training_run(xp):
    data = synthetic_dataset()
    runs = []
    for _ in range(2):
        net = Network([12, 5, 4], seed=11, device=xp)
        net.sgd(data, 2, 10, 3.0)
        runs.append(backend.to_numpy(net.weights[1]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_one_hot_builds_targets(xp):
    eye = xp.eye(10, dtype=xp.float64)
    y = backend.to_numpy(one_hot(xp, xp.asarray(np.array([3, 0, 9])), eye))
    assert y.shape == (10, 3) and y.sum() == 3 and y[3, 0] == y[0, 1] == y[9, 2] == 1


def test_cost_is_the_quadratic_cost():
    net = Network([3, 2], seed=0, device="cpu", dtype="float64")
    x, y = random_batch(np, net.sizes, m=4)
    a = net.feedforward(x)
    assert net.cost(x, y) == pytest.approx(np.sum((y - a) ** 2) / 8)


@pytest.mark.parametrize("sizes", [[784], [], [784, 0, 10], ["a", 10], None])
def test_bad_sizes_are_rejected(sizes):
    with pytest.raises(ValueError, match="sizes|neuron|layer"):
        Network(sizes, device="cpu")


@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=-1.0), "eta"), (dict(eta=0.0), "eta"), (dict(eta=float("nan")), "eta"),
    (dict(mini_batch_size=0), "mini_batch_size"), (dict(mini_batch_size=2.5), "mini_batch_size"),
    (dict(epochs=-1), "epochs"), (dict(epochs=float("inf")), "epochs"),
    (dict(engine="fast"), "engine"), (dict(mini_batch_size=301), "larger than the 300"),
])
def test_bad_hyperparameters_are_rejected(kwargs, match):
    args = dict(epochs=1, mini_batch_size=10, eta=3.0, engine="batched") | kwargs
    with pytest.raises(ValueError, match=match):
        Network([12, 3, 4], device="cpu").sgd(synthetic_dataset(), **args)
    if "epochs" not in kwargs and "larger" not in match:
        args.pop("epochs")
        with pytest.raises(ValueError, match=match):
            TrainConfig(**args)


def test_data_that_does_not_fit_the_network_is_rejected():
    net = Network([5, 3, 2], device="cpu")
    with pytest.raises(ValueError, match="inputs per example"):
        net.sgd(synthetic_dataset(features=12, classes=2), 1, 10, 3.0)
    with pytest.raises(ValueError, match="labels must lie"):
        Network([12, 3, 2], device="cpu").sgd(synthetic_dataset(classes=4), 1, 10, 3.0)


@pytest.mark.parametrize("sizes", [[12, 7, 4], [12, 4], [12, 9, 6, 4]])
@pytest.mark.parametrize("m", [1, 7, 64, 300])
def test_fast_batched_path_matches_the_plain_step(sizes, m, monkeypatch):
    """The NumPy fast path (batched.py) against the plain update_mini_batch,
    including short last mini-batches (300 = 42 * 7 + 6 = 4 * 64 + 44), both
    buffer layouts (m >= batched.ROWS_FROM is stored by rows) and any depth."""
    from digitnet.batched import FastBatched
    data = synthetic_dataset()
    steps = []
    real_step = FastBatched.step
    monkeypatch.setattr(FastBatched, "step", lambda self, idx, k: steps.append(1) or real_step(self, idx, k))
    nets = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(backend, "has_out", lambda xp: False)
        net = Network(sizes, seed=5, device="cpu", dtype="float64")
        net.sgd(data, 2, m, 2.0)
        nets.append(net)
    for pa, pb in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=1e-12)
    assert len(steps) == 2 * -(-300 // m)  # every step of the first run took the fast path


def test_fast_path_sees_weights_changed_between_epochs():
    data = synthetic_dataset()
    a, b = (Network([12, 6, 4], seed=2, device="cpu", dtype="float64") for _ in range(2))
    a.sgd(data, 1, 10, 1.0)
    b.sgd(data, 1, 10, 1.0)
    a.weights[0][...] = 0.0   # a user edit between epochs must not be lost
    b.weights[0][...] = 0.0
    a.sgd(data, 1, 10, 1.0)
    b.sgd(data, 1, 10, 1.0, engine="per-example")
    np.testing.assert_allclose(a.weights[0], b.weights[0], rtol=1e-10, atol=1e-12)
