"""The engines: how one step turns a mini-batch into new parameters.

Two engines compute the same gradient for any network with the common
interface (network.py): "batched" backpropagates the whole (n_in, m)
mini-batch at once (GEMMs), and "per-example" is the book's loop over
single columns, kept as the reference and the benchmark baseline.  The
run's optimizer (optimizers.py: SGD with L2 and momentum, or Adam) then
updates the parameters.

Where it applies (the batched engine on NumPy or CuPy, a chain of fully
connected layers, no augmentation; every rate schedule, Nesterov's
momentum, label smoothing and Adam included) a step takes the fast path of
batched.py, whose arithmetic is the same in another order.
"""

import math

from . import augment, backend, optimizers
from .batched import FastBatched



def one_hot(xp, labels, eye):
    """Targets y(x) as a (n_out, m) matrix: column j is the unit vector e_label.

    Taking columns of a prebuilt identity is one gather, and works in every
    array namespace (no scatter into a zero matrix).
    """
    return xp.take(eye, labels, axis=1)


def backprop_per_example(net, x, y, masks=None):
    """The book's gradient: backprop each column alone and sum the results."""
    xp = net.xp
    nabla_b = [xp.zeros(b.shape, dtype=net.dtype) for b in net.biases]
    nabla_w = [xp.zeros(w.shape, dtype=net.dtype) for w in net.weights]
    for i in range(x.shape[1]):
        column = {j: mask[:, i:i + 1] for j, mask in masks.items()} if masks else None
        delta_nabla_b, delta_nabla_w = net.backprop(x[:, i:i + 1], y[:, i:i + 1], column)
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
    return nabla_b, nabla_w


def backprop(net, x, y, masks=None):
    """The network's own gradient on the whole (n_in, m) mini-batch."""
    return net.backprop(x, y, masks)


GRADIENTS = {"batched": backprop, "per-example": backprop_per_example}


def targets(xp, labels, eye, smoothing):
    """y(x) for a mini-batch: one-hot columns, or with label smoothing eps
    (1 - eps) e_label + eps/n_out, so a softmax output is never pushed
    towards certainty (its logits would grow without bound)."""
    y = one_hot(xp, labels, eye)
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / eye.shape[0]
    return y


def stepper(net, rows, labels, config, eta, optimizer=None):
    """(begin, step, end) for one pass over device data (training.to_device)
    by the TrainConfig `config` at learning rate `eta`: a number for the
    whole pass (the constant schedule's, which may have halved config.eta),
    or a function of the mini-batch's index in the pass (schedules.py);
    `optimizer` is the run's (optimizers.py; SGD's with fresh buffers when
    None), which the fast path runs as its fused chains on its buffers.

    step(idx) trains on the examples `idx`, each freshly distorted (augment.py)
    when config.augment; begin() and end() bracket a pass (end() also one cut
    short: the fast path's chapter-1 chain holds the weights negated between).
    """
    xp, n = net.xp, rows.shape[0]
    m, momentum, engine = config.mini_batch_size, config.momentum, config.engine
    spec = net.dense_spec()
    side = math.isqrt(net.n_in)
    if config.augment and side * side != net.n_in:
        raise ValueError(f"augmentation needs square pictures, and the network takes "
                         f"{net.n_in} inputs")
    optimizer = optimizer or optimizers.for_run(net, config)
    if engine == "batched" and backend.has_out(xp) and spec is not None and not config.augment:
        adam = optimizer if optimizer.kind == "adam" else None
        first = eta(0) if callable(eta) else eta
        fast = FastBatched(net, spec, rows, labels, m, optimizer, momentum=momentum,
                           decay=optimizer.decay(first, n), l2=bool(config.lmbda),
                           nesterov=config.nesterov, smoothing=config.label_smoothing)
        if adam is None and not callable(eta):  # SGD at one rate: the pass's k made once
            ks = {size: fast.scalar(eta / size) for size in {m, n % m or m}}

            def step(idx):
                fast.step(idx, ks[idx.shape[0]])
            return fast.begin, step, fast.end
        # a per-step rate, or Adam: the step's constants anew each step
        rate = eta if callable(eta) else (lambda i: eta)
        steps = [0]
        means = {size: fast.scalar(1.0 / size) for size in {m, n % m or m}}  # Adam's k

        def step(idx):
            eta_now = rate(steps[0])
            steps[0] += 1
            if adam is not None:
                fast.set_adam(eta_now, n)  # k = 1/m: the mean gradient
                fast.step(idx, means[idx.shape[0]])
                return
            if config.lmbda:
                fast.set_decay(optimizer.decay(eta_now, n))
            fast.step(idx, fast.scalar(eta_now / idx.shape[0]))
        return fast.begin, step, fast.end
    # The plain path allocates its temporaries afresh every step (conv
    # layers: megabytes); the fast path has its own, and runs slower under
    # this setting (benchmarks/RESULTS.md), so only the plain path asks for it.
    backend.keep_freed_memory(xp)
    gradient = GRADIENTS[engine]
    eye = xp.eye(net.n_out, dtype=net.dtype)
    rate = eta if callable(eta) else (lambda i: eta)
    steps = [0]  # mini-batches taken in this pass

    def step(idx):
        x = backend.bytes_to_float(xp, xp.take(rows, idx, axis=0), net.dtype).T
        if config.augment:
            params = augment.draw(net.rng, x.shape[1], config.augment_strength)
            x = augment.augment(xp, x, params, side)
        y = targets(xp, xp.take(labels, idx), eye, config.label_smoothing)
        masks = net.dropout_masks(x.shape[1]) if net.dropout else None
        nabla_b, nabla_w = gradient(net, x, y, masks)
        eta_now = rate(steps[0])
        steps[0] += 1
        optimizer.step(nabla_w, nabla_b, eta_now, x.shape[1], n)

    def nothing():
        pass
    return nothing, step, nothing
