"""The chapter's network on the real MNIST: what the book promises after one epoch."""

import pytest

from digitnet import Network


@pytest.mark.parametrize("engine, dtype", [("batched", "float32"), ("batched", "float64"),
                                           ("per-example", "float32")])
def test_one_epoch_reaches_90_percent(mnist, engine, dtype):
    training, _, test = mnist
    net = Network([784, 30, 10], seed=1, device="cpu", dtype=dtype)
    history = net.sgd(training, 1, 10, 3.0, test_data=test, engine=engine)
    assert history[0]["accuracy"] >= 0.90, history


def test_untrained_network_is_near_chance(mnist):
    _, _, test = mnist
    assert Network([784, 30, 10], seed=1, device="cpu").evaluate(test) < 2_000
