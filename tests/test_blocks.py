"""The fast path trains the network's own arrays (params.blocks): each
layer's weights and bias, and the optimizer's buffers, are views of one
[w | b] matrix, made once per run, never copied in and out; anything
assigned into the lists since (a restore, a file) is what the next pass
trains; and a pass cut short leaves every array with its own sign."""

import numpy as np
import pytest

from digitnet import Model, Network, params, training

OPTIONS = {  # name: (network, run options), each on the fast path
    "chapter 1 (negated chain)": (lambda: Network([784, 16, 10], seed=3, device="cpu",
                                                  dtype="float64"), dict(mini_batch_size=10)),
    "momentum, rows layout": (lambda: Model("fc:120,softmax:10", activation="relu", seed=3,
                                            device="cpu", dtype="float64"),
                              dict(mini_batch_size=64, momentum=0.9, lmbda=5.0)),
    "adam": (lambda: Model("fc:20,softmax:10", activation="relu", seed=3, device="cpu",
                           dtype="float64"),
             dict(mini_batch_size=20, optimizer="adam", lmbda=5.0)),
}


def buffer_lists(run):
    """Every (w, b) pair of lists the optimizer keeps, as pairs."""
    names = [n for n in run.optimizer.BUFFERS if run.optimizer.lists[n] is not None]
    return [(run.optimizer.lists[w], run.optimizer.lists[b]) for w, b in zip(names[::2],
                                                                            names[1::2])]


def epoch(run, data, stop=None):
    rows, labels = training.to_device(run.net, data)
    return training.run_epoch(run, rows, labels, stop=stop)


@pytest.mark.parametrize("case", OPTIONS)
def test_a_pass_trains_the_networks_and_optimizers_own_arrays(mnist, case):
    make, options = OPTIONS[case]
    net = make()
    run = training.Run(net, eta=0.1, **options)
    data = mnist[0][:400]
    epoch(run, data)
    pairs = [(net.weights, net.biases)] + buffer_lists(run)
    held = [(list(ws), list(bs)) for ws, bs in pairs]
    for ws, bs in pairs:
        for w, b in zip(ws, bs):  # both parts of one matrix
            assert w.base is not None and w.base is b.base
            assert w.base.size == w.shape[0] * (w.shape[1] + 1)
    before = net.store.copy()
    epoch(run, data)
    for (ws, bs), (ws0, bs0) in zip(pairs, held):  # the same arrays, trained in place
        assert all(w is w0 for w, w0 in zip(ws + bs, ws0 + bs0))
    assert not all(np.array_equal(w, w0) for w, w0 in zip(net.weights, before.weights))


@pytest.mark.parametrize("case", OPTIONS)
def test_what_was_assigned_since_is_what_the_next_pass_trains(mnist, case):
    """A restored state (another network's here) is copied into the blocks:
    the pass then ends where a network that started from it ends."""
    make, options = OPTIONS[case]
    data = mnist[0][:300]
    trained, other = training.Run(make(), eta=0.1, **options), make()
    epoch(trained, data)
    other.store.assign(params.Store(other.xp, [w * 0.5 for w in other.weights],
                                    [b + 0.25 for b in other.biases]))
    start = other.store.copy()
    trained.net.store.assign(start.copy())
    trained.net.rng = np.random.default_rng(11)
    fresh = make()
    fresh.store.assign(start.copy())
    fresh.rng = np.random.default_rng(11)
    reference = training.Run(fresh, eta=0.1, **options)
    reference.optimizer.set_buffers([a.copy() for a in trained.optimizer.buffers()],
                                    trained.optimizer.scalars())
    epoch(trained, data)
    epoch(reference, data)
    for a, b in zip(trained.net.weights + trained.net.biases, fresh.weights + fresh.biases):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("how", ["stop", "exception"])
def test_a_pass_cut_short_leaves_the_negated_chains_weights_their_sign(mnist, how):
    net = Network([784, 16, 10], seed=3, device="cpu", dtype="float64")
    run = training.Run(net, eta=0.1, mini_batch_size=10)
    before = net.store.copy()
    steps = []

    def stop():
        steps.append(1)
        if how == "exception" and len(steps) == 3:
            raise KeyboardInterrupt
        return len(steps) == 3
    if how == "stop":
        assert epoch(run, mnist[0][:400], stop) is False
    else:
        with pytest.raises(KeyboardInterrupt):
            epoch(run, mnist[0][:400], stop)
    for w, w0 in zip(net.weights + net.biases, before.weights + before.biases):
        assert np.max(np.abs(w - w0)) < 0.05  # three small steps, not -w


def test_a_run_at_another_layout_gets_blocks_in_its_layout(mnist):
    """m = 10 keeps [w | b] neurons x inputs, m = 64 inputs x neurons
    (batched.ROWS_FROM): the second run's blocks are made anew, in its own
    layout (the first's would cost CuPy a copy before each GEMM)."""
    net = Network([784, 16, 10], seed=3, device="cpu", dtype="float64")
    epoch(training.Run(net, eta=0.1, mini_batch_size=10), mnist[0][:300])
    assert net.weights[0].base.flags.c_contiguous and not net.weights[0].T.flags.c_contiguous
    epoch(training.Run(net, eta=0.1, mini_batch_size=64), mnist[0][:300])
    assert net.weights[0].T.flags.c_contiguous
