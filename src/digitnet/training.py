"""Mini-batch stochastic gradient descent and evaluation.

Two engines run the same update, w -> w - (eta/m) sum_x nabla_w C_x:
"batched" backpropagates the whole (784, m) mini-batch at once (GEMMs), and
"per-example" is the book's loop over single columns, kept as the reference
and the benchmark baseline.
"""

import time

import numpy as np

from . import backend
from .batched import FastBatched
from .network import one_hot


def update_mini_batch(net, x, y, eta):
    """One SGD step on the mini-batch (x, y), backpropagated as one matrix."""
    apply_gradient(net, *net.backprop(x, y), eta / x.shape[1])


def apply_gradient(net, nabla_b, nabla_w, k):
    """w -> w - k nabla_w, b -> b - k nabla_b, in place.

    k = eta/m stays a Python float, so a float32 network stays float32.
    """
    for b, nb in zip(net.biases, nabla_b):
        b -= k * nb
    for w, nw in zip(net.weights, nabla_w):
        w -= k * nw


def backprop_per_example(net, x, y):
    """The book's gradient: backprop each column alone and sum the results."""
    xp = net.xp
    nabla_b = [xp.zeros(b.shape, dtype=net.dtype) for b in net.biases]
    nabla_w = [xp.zeros(w.shape, dtype=net.dtype) for w in net.weights]
    for i in range(x.shape[1]):
        delta_nabla_b, delta_nabla_w = net.backprop(x[:, i:i + 1], y[:, i:i + 1])
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
    return nabla_b, nabla_w


def update_mini_batch_per_example(net, x, y, eta):
    """The book's step, one example at a time: the reference and baseline."""
    apply_gradient(net, *backprop_per_example(net, x, y), eta / x.shape[1])


ENGINES = {"batched": update_mini_batch, "per-example": update_mini_batch_per_example}


def to_device(net, data):
    """(rows, labels) of a dataset on the network's device, moved once.

    Rows are examples, (n, features), so a mini-batch is a gather of
    contiguous rows; its transpose is the book's (features, m) matrix.
    """
    rows = np.ascontiguousarray(data.images.T)  # a view for our own datasets
    if rows.shape[1] != net.n_in:
        raise ValueError(f"the data has {rows.shape[1]} inputs per example but the "
                         f"network takes {net.n_in}")
    labels = np.asarray(data.labels)
    if labels.size and (labels.min() < 0 or labels.max() >= net.n_out):
        raise ValueError(f"labels must lie in 0..{net.n_out - 1} for a network "
                         f"with {net.n_out} outputs")
    return net.asarray(rows), net.xp.asarray(labels)


def count_correct(net, rows, labels, chunk=10_000):
    """Examples whose largest output is the label; chunked to bound memory."""
    xp = net.xp
    correct = 0
    n = rows.shape[0]
    for k in range(0, n, chunk):
        end = min(k + chunk, n)  # the Array API leaves out-of-range stops undefined
        out = net.feedforward(rows[k:end, :].T)
        correct += int(xp.count_nonzero(xp.argmax(out, axis=0) == labels[k:end]))
    return correct


def evaluate(net, data):
    """Number of examples in `data` the network classifies correctly."""
    return count_correct(net, *to_device(net, data))


def check_hyperparameters(epochs, mini_batch_size, eta, engine):
    """Reject values that would train nothing or train wrongly, saying why."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs}")
    if int(mini_batch_size) != mini_batch_size or mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be a whole number >= 1, got {mini_batch_size}")
    if not eta > 0 or eta == float("inf"):
        raise ValueError(f"eta must be a positive number, got {eta}")


def sgd(net, training_data, epochs, mini_batch_size, eta, test_data=None,
        engine="batched", progress=None, on_epoch=None):
    """Train `net` by mini-batch SGD and return one record per epoch.

    The data moves to the device once.  A record holds the epoch,
    its training seconds, and with `test_data` the correct count and
    accuracy.  `progress(iterable, epoch)` may wrap the mini-batch loop
    (a progress bar); `on_epoch(record)` is called after each epoch.
    """
    check_hyperparameters(epochs, mini_batch_size, eta, engine)
    rows, labels = to_device(net, training_data)
    test = to_device(net, test_data) if test_data is not None else None
    run_epoch = epoch_runner(net, rows, labels, int(mini_batch_size), float(eta), engine)
    history = []
    for j in range(int(epochs)):
        start = time.perf_counter()
        run_epoch((lambda batches: progress(batches, j)) if progress is not None else None)
        record = {"epoch": j + 1, "seconds": time.perf_counter() - start}
        if test is not None:
            correct = count_correct(net, *test)
            total = test[0].shape[0]
            record.update(correct=correct, total=total, accuracy=correct / total)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history


def epoch_runner(net, rows, labels, mini_batch_size, eta, engine="batched"):
    """A function run(progress=None) that does one SGD pass over device data.

    `rows, labels` come from `to_device`.  Each pass draws its order from the
    network's NumPy generator, so a seed fixes the run on every backend, and
    gathers mini-batches by index, never permuting the whole set.  The batched
    engine takes its fast path (batched.py) where the array module has
    ``out=``, and otherwise the plain `update_mini_batch`.  `run` returns once
    the device has finished.
    """
    xp = net.xp
    n = rows.shape[0]
    m = int(mini_batch_size)
    if engine == "batched" and backend.has_out(xp):
        fast = FastBatched(net, rows, labels, m)
        ks = {size: fast.scalar(eta / size) for size in {m, n % m or m}}

        def step(idx):
            fast.step(idx, ks[idx.shape[0]])
        begin, end = fast.load, fast.store
    else:
        update = ENGINES[engine]
        eye = xp.eye(net.sizes[-1], dtype=net.dtype)

        def step(idx):
            x = xp.take(rows, idx, axis=0).T
            update(net, x, one_hot(xp, xp.take(labels, idx), eye), eta)
        begin = end = lambda: None

    def run(progress=None):
        order = xp.asarray(net.rng.permutation(n))
        batches = range(0, n, m)
        if progress is not None:
            batches = progress(batches)
        begin()
        with backend.quiet_overflow(xp):
            for k in batches:
                step(order[k:min(k + m, n)])
        end()
        backend.synchronize(xp)
    return run
