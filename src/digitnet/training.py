"""Training any network (network.py's interface) by mini-batch SGD, with the
later chapters' options: L2, momentum, monitoring like the book's network2,
early stopping and the halving learning-rate schedule.

A `Run` holds everything a run needs to go on: the settings, the epoch,
the current eta, the optimizer (which owns its momentum or moment
buffers, optimizers.py), the best-validation weights so far, the patience
count and the history.  Checkpoints save a Run and resume it;
`fit` stops cleanly at the end of a mini-batch when asked (Ctrl-C), and
refuses to go on with NaN or infinite weights.
"""

import math
import time
from typing import NamedTuple

import numpy as np

from . import backend, engines, optimizers, schedules
from .config import TrainConfig, whole
from .costs import COSTS
from .engines import one_hot
from .params import Store


class Diverged(ArithmeticError):
    """The weights or the cost became NaN or infinite: eta is too large."""


def to_device(net, data, name="the data"):
    """(rows, labels) of a non-empty dataset on the network's device, moved once
    (`name` says which set, in the error when it is empty).

    Rows are examples, (n, features), so a mini-batch is a gather of
    contiguous rows; its transpose is the book's (features, m) matrix.
    uint8 pixels stay bytes (a quarter of the memory) and each mini-batch or
    chunk becomes floats as it is used (backend.bytes_to_float).
    """
    rows = data.rows  # the stored layout: a view for our own datasets
    if rows.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no examples")
    if rows.shape[1] != net.n_in:
        raise ValueError(f"the data has {rows.shape[1]} inputs per example but the "
                         f"network takes {net.n_in}")
    labels = np.asarray(data.labels)
    if labels.min() < 0 or labels.max() >= net.n_out:
        raise ValueError(f"labels must lie in 0..{net.n_out - 1} for a network "
                         f"with {net.n_out} outputs")
    rows = net.xp.asarray(rows) if rows.dtype == np.uint8 else net.asarray(rows)
    return rows, net.xp.asarray(labels)


def measure(net, rows, labels, chunk=None):
    """(summed cost without L2, number correct) over device data, chunked."""
    xp = net.xp
    eye = xp.eye(net.n_out, dtype=net.dtype)
    fn = COSTS[net.cost_name].fn
    cost, correct = 0.0, 0
    for k, end in net.chunks(rows.shape[0], chunk):
        out = net.feedforward(backend.bytes_to_float(xp, rows[k:end, :], net.dtype).T)
        cost += fn(xp, out, one_hot(xp, labels[k:end], eye))
        correct += int(xp.count_nonzero(xp.argmax(out, axis=0) == labels[k:end]))
    return cost, correct


def evaluate(net, data):
    """Number of examples in `data` the network classifies correctly."""
    return measure(net, *to_device(net, data))[1]


def l2_term(net, lmbda, n):
    """lmbda/2n sum w^2, the regularization part of the cost."""
    xp = net.xp
    return 0.5 * lmbda / n * sum(float(xp.sum(w * w)) for w in net.weights)


def finite(net):
    """True when every weight, bias and buffer is a finite number."""
    return net.store.finite()


def copies(xp, arrays):
    return [backend.copy(xp, a) for a in arrays]


class Best(NamedTuple):
    """The best validation epoch so far: its record and its state (a copy
    of the network's store)."""
    record: dict
    state: Store

    @property
    def weights(self):
        return self.state.weights

    @property
    def biases(self):
        return self.state.biases


class Run:
    """One training run of `net`: its settings and where it has got to."""

    def __init__(self, net, config=None, **settings):
        """`config` a TrainConfig, or its fields by name (Run(net, mini_batch_size=10,
        eta=3.0)); never both."""
        if config is None:
            config = TrainConfig(**settings)
        elif settings or not isinstance(config, TrainConfig):
            raise TypeError("Run(net, config) takes one TrainConfig, or its fields by name")
        self.net = net
        self.config = config
        self.epoch = 0          # epochs finished
        self.eta = config.eta   # the schedule halves it
        self.since = 0          # epochs since the best validation accuracy
        self.best = None        # Best: the best validation epoch's record and parameters
        self.history = []
        self.ended = None       # "patience", "schedule", "interrupted" or "diverged"
        self.last = None        # the last epoch's state (a Store) while the best one is in use
        self.optimizer = optimizers.for_run(net, config)

    @property
    def config(self):
        return self._config

    @config.setter
    def config(self, config):
        """A new config (a resume's epochs, a test's L2) is the optimizer's too."""
        self._config = config
        if hasattr(self, "optimizer"):
            self.optimizer.config = config

    @property
    def velocities(self):
        """SGD's momentum buffers as (v_w, v_b) pairs, or None."""
        return getattr(self.optimizer, "velocities", None)

    def snapshot(self):
        """What an epoch changes, to go back to if it is cut short."""
        return (self.net.store.copy(), copies(self.net.xp, self.optimizer.buffers()),
                self.optimizer.scalars(), self.net.rng.bit_generator.state, self.eta)

    def restore(self, snapshot):
        state, buffers, scalars, rng_state, self.eta = snapshot
        self.net.store.assign(state)
        self.optimizer.set_buffers(buffers, scalars)
        self.net.rng.bit_generator.state = rng_state

    def use_best(self):
        """Put the best validation epoch's state into the network, if any
        (again and again: the last epoch's is kept aside only once)."""
        if self.best is not None:
            if self.last is None:
                self.last = self.net.store.view()
            self.net.store.assign(self.best.state.copy())

    def finished(self, epochs):
        return self.ended is not None or self.epoch >= epochs

    def state_dict(self):
        """Everything needed to go on with this run (PyTorch's and nanoGPT's
        convention): JSON-ready values (the position in the schedule, the
        generator, the history, the best epoch's record, the settings, the
        optimizer's scalars) and `arrays`, {name: host array}: the last
        epoch's state (weights_0, ..., buffer.NAME), the optimizer's buffers
        (velocity_w_0, ... for SGD's momentum, adam_m_w_0, ... for Adam's
        moments) and the best epoch's state (best_weights_0, ...).
        checkpoint.py writes it knowing arrays and JSON, not a Run."""
        arrays = (self.last or self.net.store).state_dict()
        arrays.update(self.optimizer.state_dict())
        if self.best is not None:
            arrays.update(self.best.state.state_dict(prefix="best_"))
        return {"epoch": self.epoch, "eta": self.eta, "since": self.since,
                "ended": self.ended, "rng": self.net.rng.bit_generator.state,
                "history": self.history, "best": self.best.record if self.best else None,
                "settings": self.config.to_json(), "seed": self.net.seed,
                **self.optimizer.scalars(), "arrays": arrays}

    def load_state_dict(self, state):
        """Go on from a state_dict() (checked first: runstate.problems, and
        each array's shape by the caller); the settings are the config this
        Run was made with."""
        net = self.net
        self.epoch, self.eta, self.since = state["epoch"], float(state["eta"]), state["since"]
        self.ended, self.history = state["ended"], list(state["history"])
        net.seed = state["seed"]
        net.rng.bit_generator.state = state["rng"]
        arrays = state["arrays"]
        net.store.load_state_dict(arrays, net.asarray)
        self.last = None
        self.optimizer.load_state_dict(arrays, state)
        self.best = None
        if state["best"] is not None:
            best = Store(net.xp, net.weights, net.biases, net.store.buffers)  # own lists
            best.load_state_dict(arrays, net.asarray, prefix="best_")
            self.best = Best(state["best"], best)


def run_epoch(run, rows, labels, progress=None, stop=None, epochs=None):
    """One SGD pass over device data in a fresh order from the network's
    generator; False if `stop()` said to stop before the pass was done.
    A per-step schedule runs over `epochs` (default: the config's), and
    leaves run.eta at the pass's last rate."""
    net = run.net
    xp, n, m = net.xp, rows.shape[0], run.config.mini_batch_size
    scheduled = schedules.for_pass(run.config, run.epoch, epochs or run.config.epochs, n,
                                   run.eta)
    begin, step, end = engines.stepper(net, rows, labels, run.config, scheduled or run.eta,
                                       run.optimizer)
    order = xp.asarray(net.rng.permutation(n))
    batches = range(0, n, m)
    if progress is not None:
        batches = progress(batches)
    begin()
    try:
        with backend.quiet_overflow(xp):
            for k in batches:
                step(order[k:min(k + m, n)])
                if stop is not None and stop():
                    return False
    finally:
        end()
    backend.synchronize(xp)
    if scheduled:
        run.eta = scheduled(-(-n // m) - 1)
    return True


def measured(run, name, rows, labels, penalty):
    """Cost (L2 included) and accuracy on one set, as name_* fields."""
    cost, correct = measure(run.net, rows, labels)
    total = rows.shape[0]
    return {f"{name}_cost": cost / total + penalty, f"{name}_correct": correct,
            f"{name}_total": total, f"{name}_accuracy": correct / total}


def record_epoch(run, sets, n, seconds, started):
    """The epoch's record: eta, seconds, and cost (L2 included) and accuracy
    on each monitored set, as training_*, validation_* and test_*."""
    record = {"epoch": run.epoch, "eta": run.eta, "seconds": seconds}
    penalty = l2_term(run.net, run.config.lmbda, n)
    for name, (rows, labels) in sets.items():
        record.update(measured(run, name, rows, labels, penalty))
    record["elapsed"] = time.perf_counter() - started
    return record


def test_at_end(run, test, n, started):
    """With test_at_end: measure the test set once, with the weights the
    run ends with (its best validation epoch's), into that epoch's record;
    `elapsed` of the last record then includes this measurement too."""
    if not run.history:
        return
    fields = measured(run, "test", *test, l2_term(run.net, run.config.lmbda, n))
    best = best_epoch(run.history)
    for record in run.history:
        if record["epoch"] == best["epoch"]:
            record.update(fields)
    if run.best is not None:
        run.best.record.update(fields)
    run.history[-1]["elapsed"] = time.perf_counter() - started


def schedule(run, record):
    """Early stopping and the eta schedule, on validation accuracy."""
    if "validation_accuracy" not in record:
        return
    best = run.best
    if best is None or record["validation_accuracy"] > best.record["validation_accuracy"]:
        run.best = Best(record, run.net.store.copy())
        run.since = 0
        return
    run.since += 1
    c = run.config
    if c.patience is not None and run.since >= c.patience:
        if c.eta_decay is None:
            run.ended = "patience"
        elif run.eta / 2 <= c.eta / c.eta_decay:
            run.ended = "schedule"
        else:
            run.eta, run.since = run.eta / 2, 0


def fit(run, training_data, epochs=None, *, validation_data=None, test_data=None,
        progress=None, on_epoch=None, stop=None):
    """Train `run` on until it has `epochs` epochs (default: its config's),
    early stopping ends it, or `stop()` says to (checked after every
    mini-batch); returns the run.  With the config's monitor_training, the
    training data is measured after each epoch too.

    After each finished epoch `on_epoch(record, run)` is called (the place to
    write a checkpoint).  A run cut short by `stop` goes back to the end of
    its last finished epoch (run.ended = "interrupted"); one whose weights
    or cost turn NaN or infinite goes back likewise and raises Diverged.
    With validation data, the network ends with its best validation
    epoch's weights (the run keeps the last epoch's for going on).
    """
    epochs = run.config.epochs if epochs is None else epochs
    if not whole(epochs, 0):
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs}")
    if run.config.patience is not None and validation_data is None:
        raise ValueError("early stopping watches validation accuracy: give validation data")
    # `elapsed` goes on from where a resumed run stopped
    net = run.net
    started = time.perf_counter() - (run.history[-1]["elapsed"] if run.history else 0.0)
    if run.last is not None:  # go on from the last epoch, not the best one
        net.store.assign(run.last)
        run.last = None
    rows, labels = to_device(net, training_data, "the training data")
    sets = {"training": (rows, labels)} if run.config.monitor_training else {}
    sets.update((name, to_device(net, d, f"the {name} data")) for name, d in
                (("validation", validation_data), ("test", test_data)) if d is not None)
    test = sets.pop("test") if run.config.test_at_end and "test" in sets else None
    n = rows.shape[0]
    if run.config.mini_batch_size > n:
        raise ValueError(f"mini_batch_size {run.config.mini_batch_size} is larger "
                         f"than the {n} training examples")
    net.check_training(run.config, n)
    while not run.finished(epochs):
        before = run.snapshot()
        began = time.perf_counter()
        wrap = (lambda batches: progress(batches, run.epoch)) if progress else None
        if not run_epoch(run, rows, labels, wrap, stop, epochs):
            run.restore(before)
            run.ended = "interrupted"
            break
        seconds = time.perf_counter() - began
        run.epoch += 1
        with backend.quiet_overflow(net.xp):
            record = record_epoch(run, sets, n, seconds, started)
        costs = [v for k, v in record.items() if k.endswith("_cost")]
        if not finite(net) or not all(map(math.isfinite, costs)):
            run.restore(before)
            run.epoch -= 1
            run.ended = "diverged"
            raise Diverged(f"training diverged in epoch {run.epoch + 1}: the weights or the "
                           f"cost became NaN or infinite with eta = {run.eta:g}, a learning "
                           "rate too large for this network")
        run.history.append(record)
        schedule(run, record)
        if on_epoch is not None:
            on_epoch(record, run)
    run.use_best()
    if test is not None:
        test_at_end(run, test, n, started)
    return run


def sgd(net, training_data, epochs, mini_batch_size, eta, *, validation_data=None,
        test_data=None, progress=None, on_epoch=None, verbose=True, **settings):
    """Train `net` by mini-batch SGD and return one record per epoch.

    Each record has the epoch, eta, its training seconds, the wall seconds
    since the start (`elapsed`, evaluation included), and cost and accuracy
    on each dataset given: `test_*`, `validation_*`, and `training_*` with
    `monitor_training` (`*_cost`, `*_correct`, `*_total`, `*_accuracy`;
    costs include the L2 term).  With `patience`, training stops after that
    many epochs without a better validation accuracy; with `eta_decay` too,
    eta is halved each time instead, and training stops once it has fallen
    by that factor.  With validation data, the network ends with the
    weights of its best validation epoch.  `progress(batches, epoch)` may
    wrap the mini-batch loop (a progress bar); `on_epoch(record)` is called
    after each epoch.  As the book's network.py does, each epoch prints
    `Epoch 0: 9129 / 10000` with test data, else `Epoch 0 complete`:
    `verbose=False` keeps quiet.  `settings` are the rest of a TrainConfig
    by name: lmbda, momentum, patience, eta_decay, engine, monitor_training,
    and `augment`, which distorts every mini-batch afresh (augment.py).
    """
    run = Run(net, TrainConfig(mini_batch_size=mini_batch_size, eta=eta, epochs=epochs,
                               **settings))

    def after(record, run):
        if verbose:
            print(book_line(record), flush=True)
        if on_epoch:
            on_epoch(record)
    fit(run, training_data, validation_data=validation_data, test_data=test_data,
        progress=progress, on_epoch=after)
    return run.history


def book_line(record):
    """The book's words for an epoch, counted from 0 as network.py counts."""
    if "test_correct" in record:
        return f"Epoch {record['epoch'] - 1}: {record['test_correct']} / {record['test_total']}"
    return f"Epoch {record['epoch'] - 1} complete"


def best_epoch(history):
    """The record whose weights a run ends with: the best validation epoch
    when validation was measured, else the last."""
    if not history:
        return None
    if "validation_accuracy" in history[0]:
        return max(history, key=lambda r: r["validation_accuracy"])
    return history[-1]


def not_learning(history, n_out):
    """True when the last epoch ended near chance accuracy with its cost no
    lower than the epoch before's: the book's eta = 100 run, where eta is far
    too large.  (Too small an eta starts near chance too, but its cost falls.)"""
    if len(history) < 2:
        return False
    last, before = history[-1], history[-2]
    name = "validation" if "validation_accuracy" in last else "test"
    if f"{name}_accuracy" not in last or last[f"{name}_accuracy"] > 1.5 / n_out:
        return False
    return last[f"{name}_cost"] >= 0.99 * before[f"{name}_cost"]
