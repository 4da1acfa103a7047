"""The fast path (batched.py and its kernels.py calls) for every dense
network against the plain batched engine, and the number of array calls a
step makes, which is the number of kernel launches on a GPU."""

import numpy as np
import pytest

from digitnet import Model, Network, backend, batched, engines, kernels, training
from conftest import blobs

CASES = {
    # name: (layers, Model options, run options)
    "sigmoid quadratic": ("fc:7,fc:5,fc:4", dict(), dict()),
    "relu log-likelihood dropout momentum L2": (
        "fc:7,fc:5,softmax:4", dict(activation="relu", init="scaled", dropout=0.3),
        dict(lmbda=3.0, momentum=0.7)),
    "tanh cross-entropy L2": ("fc:7,fc:4", dict(activation="tanh", cost="cross-entropy"),
                              dict(lmbda=3.0)),
    "sigmoid softmax dropout": ("fc:6,softmax:4", dict(dropout=0.5), dict()),
    "one layer softmax momentum": ("softmax:4", dict(), dict(momentum=0.5)),
    # the levers beyond the book: per-step rates (with L2's factor following
    # them), Nesterov, label smoothing, each alone and all at once
    "relu every lever": ("fc:7,fc:5,softmax:4", dict(activation="relu", init="scaled",
                                                      dropout=0.3),
                         dict(lmbda=3.0, momentum=0.7, nesterov=True, schedule="one-cycle",
                              warmup=0.3, label_smoothing=0.1)),
    "sigmoid quadratic one-cycle smoothing": ("fc:7,fc:4", dict(),
                                              dict(schedule="one-cycle", label_smoothing=0.2)),
    "sigmoid cosine L2": ("fc:7,fc:4", dict(), dict(schedule="cosine", lmbda=3.0)),
    "tanh cross-entropy nesterov": ("fc:7,fc:4", dict(activation="tanh", cost="cross-entropy"),
                                    dict(momentum=0.5, nesterov=True)),
    "softmax nesterov L2 smoothing": ("softmax:4", dict(),
                                      dict(momentum=0.5, nesterov=True, lmbda=3.0,
                                           label_smoothing=0.1)),
    # Adam on its moments: with decoupled decay and a schedule; lerp's other form
    "relu adam L2 one-cycle": ("fc:7,fc:5,softmax:4", dict(activation="relu", init="scaled",
                                                            dropout=0.3),
                               dict(optimizer="adam", lmbda=3.0, schedule="one-cycle",
                                    warmup=0.3)),
    "sigmoid quadratic adam beta1 0.3": ("fc:7,fc:4", dict(),
                                         dict(optimizer="adam", beta1=0.3, beta2=0.9)),
}


def train(layers, options, run_options, m, plain, monkeypatch, device="cpu"):
    with monkeypatch.context() as patch:
        if plain:
            patch.setattr(backend, "has_out", lambda xp: False)
        net = Model(layers, **options, seed=4, device=device, dtype="float64",
                    input_shape=(12,))
        before = [backend.to_numpy(w).copy() for w in net.weights]
        eta = 0.05 if run_options.get("optimizer") == "adam" else 0.8
        run = training.Run(net, mini_batch_size=m, eta=eta, epochs=2, **run_options)
        training.fit(run, blobs(150), 2)
        return net, run, before


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("m", [7, 64])
@pytest.mark.parametrize("case", CASES)
def test_fast_path_matches_the_plain_engine(case, m, device, monkeypatch):
    """Two epochs in float64, 150 examples (short last mini-batches), both
    buffer layouts (m >= batched.ROWS_FROM is stored by rows): the same
    weights, biases and momentum velocities to rounding, and the same dropout
    masks (the generator ends in the same state).  On CuPy this checks the
    fused kernels (kernels.CupyKernels) against the plain engine."""
    if device == "gpu" and backend.cupy_or_reason()[0] is None:
        pytest.skip(f"no GPU here: {backend.cupy_or_reason()[1]}")
    layers, options, run_options = CASES[case]
    used = []
    real = batched.FastBatched.step
    monkeypatch.setattr(batched.FastBatched, "step",
                        lambda self, idx, k: used.append(1) or real(self, idx, k))
    fast, fast_run, before = train(layers, options, run_options, m, False, monkeypatch, device)
    assert used, "the fast path was not taken"
    n_fast = len(used)
    plain, plain_run, _ = train(layers, options, run_options, m, True, monkeypatch, device)
    assert len(used) == n_fast, "the plain run took the fast path"
    host = backend.to_numpy
    assert np.abs(before[0] - host(plain.weights[0])).max() > 1e-3  # it really trained
    for a, b in zip(fast.weights + fast.biases, plain.weights + plain.biases):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-12)
    # the optimizer's buffers (SGD's velocities, Adam's moments) and scalars
    assert len(fast_run.optimizer.buffers()) == len(plain_run.optimizer.buffers())
    for a, b in zip(fast_run.optimizer.buffers(), plain_run.optimizer.buffers()):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-12)
    assert fast_run.optimizer.scalars() == plain_run.optimizer.scalars()
    assert fast.rng.bit_generator.state == plain.rng.bit_generator.state


class Counting:
    """An array module that counts the calls made through it."""

    def __init__(self, xp):
        self.xp, self.calls = xp, []

    def __getattr__(self, name):
        attr = getattr(self.xp, name)
        if not callable(attr) or isinstance(attr, type):  # dtypes are not calls
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)
        return call


class CountingKernels:
    """kernels.py's NumPy chains, each counted as the kernel launches of its
    CuPy twin (kernels.LAUNCHES, else one), the calls inside them not counted."""

    def __init__(self, counting):
        self.counting = counting

    def __getattr__(self, name):
        chain = getattr(kernels.NumpyKernels, name)

        def call(xp, *args):
            self.counting.calls.extend([name] * kernels.LAUNCHES.get(name, 1))
            return chain(np, *args)
        return call


def calls_per_step(net, m, **options):
    data = blobs(200, features=net.n_in, classes=net.n_out)
    rows, labels = training.to_device(net, data)
    run = training.Run(net, mini_batch_size=m, eta=0.5, **options)
    begin, step, end = engines.stepper(net, rows, labels, run.config, 0.5, run.optimizer)
    fast = next(c.cell_contents for c in step.__closure__
                if isinstance(c.cell_contents, batched.FastBatched))
    counting = Counting(np)
    fast.xp, fast.k = counting, CountingKernels(counting)
    begin()
    step(np.arange(m))  # builds (and binds) the buffers for m
    del counting.calls[:]
    step(np.arange(m, 2 * m))
    calls = list(counting.calls)
    end()
    return calls


def test_a_chapter_1_step_is_at_most_12_calls():
    """[784, 30, 10] at m = 10 (the issue's budget: 12, from 26)."""
    calls = calls_per_step(Network([784, 30, 10], seed=0, device="cpu"), 10)
    assert len(calls) <= 12, calls


def test_a_dense_recipe_step_is_at_most_16_calls():
    """fc:300 ReLU, softmax, dropout, momentum and L2 at m = 20 (budget 16, from 38)."""
    net = Model("fc:300,softmax:10", activation="relu", init="scaled", dropout=0.3,
                device="cpu")
    calls = calls_per_step(net, 20, lmbda=5.0, momentum=0.9)
    assert len(calls) <= 16, calls


def test_a_resumed_fast_path_run_ends_exactly_as_an_unbroken_one(tmp_path):
    """The fast path keeps its own copies of the weights and velocities for
    an epoch: a run checkpointed after epoch 2 and resumed ends, bit for bit,
    where three unbroken epochs end (dropout, momentum, L2, float32)."""
    from digitnet import checkpoint

    def model():
        return Model("fc:9,softmax:4", activation="relu", init="scaled", dropout=0.3, seed=2,
                     device="cpu", input_shape=(12,))
    data, options = blobs(90), dict(lmbda=1.0, momentum=0.8)
    whole = training.Run(model(), mini_batch_size=10, eta=0.3, **options)
    training.fit(whole, data, 3)
    part = training.Run(model(), mini_batch_size=10, eta=0.3, **options)
    training.fit(part, data, 2)
    checkpoint.save_run(part, tmp_path / "run.ckpt", {})
    resumed, _ = checkpoint.load_run(tmp_path / "run.ckpt", device="cpu")
    training.fit(resumed, data, 3)
    pairs = zip(whole.net.weights + whole.net.biases + [v for p in whole.velocities for v in p],
                resumed.net.weights + resumed.net.biases
                + [v for p in resumed.velocities for v in p])
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
