"""The fast path's plan: which kernels.py chain each network and option set
gets, and that the chain it gets trains exactly as the plain engine does,
for every option combination the command line accepts, the chapter-1
`Network` included.  Also the NumPy kernels' numerics at the edges."""

import numpy as np
import pytest

from digitnet import Model, Network, backend, batched, engines, kernels, training

# What `digitnet train` builds for chapter 1 with each option set: the book's
# Network, and a sigmoid Model once --dropout (an architecture flag) is given.
CHAPTER_1 = {
    # name: (dropout, run options, negated chain expected)
    "plain": (0.0, dict(), True),
    "momentum": (0.0, dict(momentum=0.6), False),
    "L2": (0.0, dict(lmbda=40.0), False),
    "momentum L2": (0.0, dict(momentum=0.6, lmbda=40.0), False),
    "dropout": (0.25, dict(), False),
    "dropout momentum L2": (0.25, dict(momentum=0.6, lmbda=40.0), False),
}


def chapter_1(dropout, seed=5):
    if dropout:
        return Model("fc:12,fc:10", dropout=dropout, seed=seed, device="cpu", dtype="float64")
    return Network([784, 12, 10], seed=seed, device="cpu", dtype="float64")


def fast_path(net, data, m, options):
    """The FastBatched object the batched engine builds for this run."""
    rows, labels = training.to_device(net, data)
    run = training.Run(net, mini_batch_size=m, eta=0.5, **options)
    _, step, _ = engines.stepper(net, rows, labels, run.config, 0.5, run.optimizer)
    return next(c.cell_contents for c in step.__closure__
                if isinstance(c.cell_contents, batched.FastBatched))


def chain(fast, m):
    """The names of the kernels a step at m calls, in order."""
    _, _, _, _, forward, _, backward = fast._plan(m)
    names = [step[3].__name__ for step in forward] + ["output_delta"]
    for below, *_, update, _ in backward:
        if below is not None:
            names.append(below[3].__name__)
        names.append(update.__name__)
    return names


def expected_chain(layers, negated):
    """Two layers: forward, the output delta, BP2 into the hidden layer
    (with the top layer's weights before their update), then the updates."""
    if negated:
        return (["sigmoid_of_negated"] * layers + ["output_delta", "sigmoid_delta_negated",
                "sgd_negated", "sgd_negated"])
    return ["activate"] * layers + ["output_delta", "hidden_delta", "update", "update"]


@pytest.mark.parametrize("case", CHAPTER_1)
def test_chapter_1_gets_the_chain_its_options_need(mnist, case):
    """The negated narrow chain (plain SGD's) only without momentum, L2 and
    dropout: given momentum or L2, it would silently drop them."""
    dropout, options, negated = CHAPTER_1[case]
    fast = fast_path(chapter_1(dropout), mnist[0][:100], 10, options)
    assert fast.negated is negated
    assert chain(fast, 10) == expected_chain(2, negated)
    assert (fast.vel is not None) == bool(options.get("momentum"))
    assert (fast.decay is not None) == bool(options.get("lmbda"))
    assert fast.dropout == dropout


DENSE = {
    # name: (layers, Model options, the kernels its step calls)
    "relu softmax": ("fc:12,softmax:10", dict(activation="relu", init="scaled"),
                     ["activate", "softmax", "output_delta", "hidden_delta", "update", "update"]),
    "tanh cross-entropy": ("fc:12,fc:10", dict(activation="tanh", cost="cross-entropy"),
                           expected_chain(2, False)),
    "sigmoid log-likelihood": ("fc:12,softmax:10", dict(),
                               ["activate", "softmax", "output_delta", "hidden_delta",
                                "update", "update"]),
}


@pytest.mark.parametrize("case", DENSE)
def test_other_dense_chains_get_the_general_kernels(mnist, case):
    layers, options, names = DENSE[case]
    net = Model(layers, **options, seed=1, device="cpu", dtype="float64")
    fast = fast_path(net, mnist[0][:100], 10, {})
    assert not fast.negated and chain(fast, 10) == names


def train(net, data, m, options, plain, monkeypatch):
    used = []
    with monkeypatch.context() as patch:
        real = batched.FastBatched.step
        patch.setattr(batched.FastBatched, "step",
                      lambda self, idx, k: used.append(1) or real(self, idx, k))
        if plain:
            patch.setattr(backend, "has_out", lambda xp: False)
        run = training.Run(net, mini_batch_size=m, eta=0.5, **options)
        training.fit(run, data, 2)
    assert bool(used) is not plain, "the wrong engine trained"
    return run


@pytest.mark.parametrize("m", [10, 64])
@pytest.mark.parametrize("case", CHAPTER_1)
def test_every_chapter_1_option_set_trains_as_the_plain_engine(mnist, case, m, monkeypatch):
    """Two epochs on 230 real images (a short last mini-batch at both m, and
    both buffer layouts): the same weights, biases, velocities and
    generator state as the plain batched engine."""
    dropout, options, _ = CHAPTER_1[case]
    data = mnist[0][:230]
    fast = train(chapter_1(dropout), data, m, options, False, monkeypatch)
    plain = train(chapter_1(dropout), data, m, options, True, monkeypatch)
    start = chapter_1(dropout)
    assert np.abs(start.weights[0] - plain.net.weights[0]).max() > 1e-3  # it trained
    for a, b in zip(fast.net.weights + fast.net.biases, plain.net.weights + plain.net.biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for pa, pb in zip(fast.velocities or (), plain.velocities or ()):
        for a, b in zip(pa, pb):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert (fast.velocities is None) == (not options.get("momentum"))
    assert fast.net.rng.bit_generator.state == plain.net.rng.bit_generator.state


@pytest.mark.parametrize("by_rows", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_numpy_softmax_kernel_survives_huge_logits(by_rows, dtype):
    """Logits of +-1000 (exp overflows at 89 in float32, 710 in float64):
    the kernel equals 1 / sum_j exp(z_j - z_i), worked out apart in float64
    from the logits' differences, with no overflow, NaN or inf."""
    z = np.array([[1000.0, -1000.0, 3.0], [999.0, -1002.0, 3.0], [0.0, -1001.0, 3.0]],
                 dtype=dtype)
    with np.errstate(over="ignore"):  # 1 / (1 + inf) is the 0 wanted
        want = np.array([[1 / sum(np.exp(float(z[j, c]) - float(z[i, c])) for j in range(3))
                          for c in range(3)] for i in range(3)])
    if by_rows:  # the buffers' other layout: transposed views
        z = np.ascontiguousarray(z.T).T
    a, column = np.empty_like(z), np.empty((1, 3), dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        kernels.NumpyKernels.softmax(np, z.copy(), column, a)
    np.testing.assert_allclose(a, want, rtol=1e-6 if dtype == "float32" else 1e-14, atol=1e-30)
