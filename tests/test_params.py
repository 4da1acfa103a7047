"""A network's state in one place (params.py's Store): the book's weights
and biases lists are the store's, copies are independent, and the trainer's
snapshot, best epoch and divergence check go through it."""

import numpy as np
import pytest

from digitnet import Model, Network, training
from digitnet.params import Store
from conftest import blobs


def test_the_books_lists_are_the_stores():
    net = Network([12, 5, 3], seed=1, device="cpu")
    assert net.weights is net.store.weights and net.biases is net.store.biases
    net.weights[0] = np.zeros((5, 12), dtype=np.float32)   # the book's code writes them
    assert net.store.named()["weights_0"] is net.weights[0]


def test_a_copy_is_independent_and_a_view_is_not():
    net = Model("fc:4,softmax:3", input_shape=(6,), device="cpu", dtype="float64", seed=0)
    net.store.buffers["bn.mean"] = np.ones(4)
    copy, view = net.store.copy(), net.store.view()
    for a in net.store.named().values():
        a += 1.0
    for name, a in net.store.named().items():
        assert not np.array_equal(copy.named()[name], a)
        assert view.named()[name] is a
    net.store.assign(copy)
    for name, a in copy.named().items():
        assert net.store.named()[name] is a


@pytest.mark.parametrize("name", ["weights_1", "biases_0", "buffer.bn.var"])
def test_finite_sees_every_array(name):
    store = Store(np, [np.ones((2, 3)), np.ones((1, 2))], [np.ones((2, 1)), np.ones((1, 1))],
                  {"bn.var": np.ones(2)})
    assert store.finite()
    store.named()[name][0] = np.nan
    assert not store.finite()


def test_state_dict_round_trips_by_name_and_checks_shapes():
    store = Store(np, [np.arange(6.0).reshape(2, 3)], [np.ones((2, 1))], {"bn.mean": np.zeros(2)})
    state = store.state_dict(prefix="best_")
    assert sorted(state) == ["best_biases_0", "best_buffer.bn.mean", "best_weights_0"]
    other = Store(np, [np.zeros((2, 3))], [np.zeros((2, 1))], {"bn.mean": np.ones(2)})
    other.load_state_dict(state, np.asarray, prefix="best_")
    for name, a in store.named().items():
        np.testing.assert_array_equal(other.named()[name], a)
    with pytest.raises(ValueError, match=r"best_weights_0 has shape \(3, 2\), expected \(2, 3\)"):
        other.load_state_dict({**state, "best_weights_0": np.zeros((3, 2))}, np.asarray, "best_")
    with pytest.raises(ValueError, match="best_buffer.bn.mean is missing"):
        other.load_state_dict({k: v for k, v in state.items() if "bn" not in k}, np.asarray,
                              "best_")


def test_the_best_epoch_and_the_last_are_stores_of_their_own():
    data = blobs(120, features=6, classes=3)
    net = Model("fc:5,softmax:3", input_shape=(6,), device="cpu", dtype="float64", seed=2)
    run = training.Run(net, mini_batch_size=10, eta=0.5, epochs=4)
    training.fit(run, data[:80], validation_data=data[80:])
    best = run.best.state
    assert all(a is not b for a, b in zip(best.weights, net.weights))   # a copy of its own
    for a, b in zip(net.weights + net.biases, best.weights + best.biases):
        np.testing.assert_array_equal(a, b)   # the network ends with the best epoch's
    if run.last is not None:
        assert run.last.weights is not net.weights   # the last epoch's, kept aside
