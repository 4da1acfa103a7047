"""The chapter's network on the real MNIST: what the book promises after one epoch."""

import pytest

from digitnet import Network

# Whole epochs on the real MNIST: the accuracy the book promises is only
# shown by training on all of it.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("engine, dtype", [("batched", "float32"), ("batched", "float64"),
                                           ("per-example", "float32")])
def test_one_epoch_reaches_90_percent(mnist, engine, dtype):
    training, _, test = mnist
    net = Network([784, 30, 10], seed=1, device="cpu", dtype=dtype)
    history = net.sgd(training, 1, 10, 3.0, test_data=test, engine=engine)
    assert history[0]["test_accuracy"] >= 0.90, history


def test_untrained_network_is_near_chance(mnist):
    _, _, test = mnist
    assert Network([784, 30, 10], seed=1, device="cpu").evaluate(test) < 2_000


# The later chapters: one short run per network family, with a floor well
# below what the run reaches (seeded) and far above chance.
FAMILIES = [
    # (layers, model options, training options, examples, floor)
    ("fc:30,fc:10", dict(cost="cross-entropy"), dict(eta=0.5, lmbda=5.0), 50_000, 0.93),
    ("fc:100,softmax:10", dict(activation="relu", dropout=0.2),
     dict(eta=0.05, momentum=0.9, mini_batch_size=20), 50_000, 0.93),
    ("fc:30,fc:10", dict(activation="tanh", cost="cross-entropy"), dict(eta=0.1), 50_000, 0.92),
    ("conv:8x5x5,pool:2,fc:30,softmax:10", dict(activation="relu"), dict(eta=0.05),
     10_000, 0.92),
]


@pytest.mark.parametrize("layers, model_options, options, n, floor", FAMILIES,
                         ids=[f[0] + "-" + f[1].get("activation", "sigmoid") for f in FAMILIES])
def test_later_chapter_families_learn_mnist_in_one_epoch(mnist, layers, model_options,
                                                         options, n, floor):
    from digitnet.model import Model
    training, validation, test = mnist
    model = Model(layers, seed=1, device="cpu", init="scaled", **model_options)
    options = dict(mini_batch_size=10) | options
    history = model.sgd(training[:n], 1, options.pop("mini_batch_size"), options.pop("eta"),
                        test_data=test, validation_data=validation[:2000], **options)
    assert history[0]["test_accuracy"] >= floor, history[0]['test_accuracy']
