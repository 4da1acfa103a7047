"""The schedule, best-epoch keeping, divergence and resumed state, epoch by
epoch against hand-written tables.

Validation accuracies are scripted (training.measure is replaced for the
validation set), so each table below is what the book's rules say must
happen for that sequence: eta, the patience count and the stop epoch.
The network itself trains for real on a slice of MNIST, so the best and
last weights differ and every comparison of weights means something.
"""

import json

import numpy as np
import pytest

from digitnet import checkpoint, cli, data, engines, training
from digitnet.network import Network

N_VAL = 100  # scripted accuracies are in percent of this


def host(arrays):
    return [np.array(a, copy=True) for a in arrays]


def assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def sets(mnist):
    training_set, validation, _ = mnist
    return training_set[:200], validation[:N_VAL]


class Script:
    """A run's validation accuracies by epoch, and what it saw at each epoch:
    the eta the stepper was given, the run's eta, patience count and ending
    after the schedule, and the network's weights."""

    def __init__(self, monkeypatch, accuracies, costs=None, n_val=N_VAL):
        self.accuracies, self.costs = accuracies, costs or {}
        self.run = None
        self.eta_used, self.after, self.weights = {}, {}, {}
        real_measure, real_stepper, real_schedule, real_fit = (
            training.measure, engines.stepper, training.schedule, training.fit)

        def fit(run, *args, **kw):  # the run that the CLI makes, too
            self.run = run
            return real_fit(run, *args, **kw)

        def measure(net, rows, labels, chunk=None):
            if rows.shape[0] != n_val:
                return real_measure(net, rows, labels, chunk)
            epoch = self.run.epoch
            return (self.costs.get(epoch, 0.25 * n_val),
                    self.accuracies[epoch - 1] * n_val // 100)

        def stepper(net, rows, labels, m, eta, *rest, **kw):
            self.eta_used[self.run.epoch + 1] = eta
            return real_stepper(net, rows, labels, m, eta, *rest, **kw)

        def schedule(run, record):
            real_schedule(run, record)
            self.after[run.epoch] = (run.eta, run.since, run.ended)
            self.weights[run.epoch] = host(run.net.weights + run.net.biases)

        monkeypatch.setattr(training, "fit", fit)
        monkeypatch.setattr(training, "measure", measure)
        monkeypatch.setattr(engines, "stepper", stepper)
        monkeypatch.setattr(training, "schedule", schedule)

    def fit(self, run, train, val, epochs, **kw):
        return training.fit(run, train, epochs, validation_data=val, **kw)


def network(seed=3):
    return Network([784, 10, 10], seed=seed, device="cpu", dtype="float64")


# Validation accuracies (%) and, for each epoch: the eta it trained with, then
# eta, the patience count and the ending after the schedule.  patience 2,
# eta_decay 8, eta 1: a new best resets the count; two epochs without one
# halve eta (and reset the count) until eta / 2 would reach 1/8.
HALVING = [
    (50, 1, 1, 0, None),         # best
    (60, 1, 1, 0, None),         # best
    (60, 1, 1, 1, None),         # equal is not better
    (55, 1, .5, 0, None),        # 2 without a best: halve, count from 0
    (70, .5, .5, 0, None),       # best
    (60, .5, .5, 1, None),
    (60, .5, .25, 0, None),      # halve again
    (60, .25, .25, 1, None),
    (71, .25, .25, 0, None),     # best after a miss: the count starts again
    (60, .25, .25, 1, None),
    (60, .25, .25, 2, "schedule"),  # eta / 2 = 1/8: stop
]
# patience 2 without eta_decay: stop at the second epoch without a best.
PATIENCE = [
    (50, 1, 1, 0, None),
    (49, 1, 1, 1, None),
    (51, 1, 1, 0, None),
    (51, 1, 1, 1, None),
    (40, 1, 1, 2, "patience"),
]


@pytest.mark.parametrize("table, options", [(HALVING, dict(patience=2, eta_decay=8)),
                                            (PATIENCE, dict(patience=2))],
                         ids=["halving", "patience"])
def test_the_schedule_follows_the_table_epoch_by_epoch(sets, monkeypatch, table, options):
    train, val = sets
    script = Script(monkeypatch, [row[0] for row in table])
    run = training.Run(network(), mini_batch_size=10, eta=1.0, **options)
    script.fit(run, train, val, 30)
    assert run.epoch == len(table) and run.ended == table[-1][4]
    for epoch, (_, used, eta, since, ended) in enumerate(table, 1):
        assert script.eta_used[epoch] == used, epoch
        assert script.after[epoch] == (eta, since, ended), epoch
    assert [r["eta"] for r in run.history] == [row[1] for row in table]
    best = max(range(len(table)), key=lambda i: (table[i][0], -i)) + 1
    assert training.best_epoch(run.history)["epoch"] == best
    # it ends with the best epoch's weights and keeps the last epoch's aside
    assert_same(host(run.net.weights + run.net.biases), script.weights[best])
    assert_same(host(run.last.weights + run.last.biases), script.weights[len(table)])


def test_use_best_again_keeps_the_last_epoch_for_going_on(sets, monkeypatch):
    """A run that ended on its best epoch's weights (use_best, which the CLI
    calls again when it saves) goes on from its last epoch, exactly as a run
    that was never stopped."""
    train, val = sets
    accuracies = [60, 70, 65, 64, 80]
    whole = training.Run(network(), mini_batch_size=10, eta=1.0)
    Script(monkeypatch, accuracies).fit(whole, train, val, 5)
    script = Script(monkeypatch, accuracies)
    part = training.Run(network(), mini_batch_size=10, eta=1.0)
    script.fit(part, train, val, 3)
    part.use_best()
    part.use_best()
    assert_same(host(part.net.weights + part.net.biases), script.weights[2])
    assert_same(host(part.last.weights + part.last.biases), script.weights[3])
    script.fit(part, train, val, 5)
    assert_same(host(part.net.weights + part.net.biases),
                host(whole.net.weights + whole.net.biases))


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_cost_that_is_not_finite_is_divergence_even_with_finite_weights(sets, monkeypatch,
                                                                          bad):
    train, val = sets
    script = Script(monkeypatch, [50, 60, 70], costs={3: bad})
    run = training.Run(network(), mini_batch_size=10, eta=1.0)
    with pytest.raises(training.Diverged, match="in epoch 3"):
        script.fit(run, train, val, 5)
    assert training.finite(run.net)  # the weights alone say nothing is wrong
    assert run.ended == "diverged" and run.epoch == 2 and len(run.history) == 2
    assert_same(host(run.net.weights + run.net.biases), script.weights[2])


def velocities(run):
    return host([v for pair in run.velocities for v in pair])


def test_a_checkpoint_restores_every_field_of_the_run(sets, monkeypatch, tmp_path):
    """Saved after epoch 8 of the HALVING table (eta halved twice, patience
    count 1, best epoch 5, momentum, L2): every field comes back, and the
    resumed run ends where the unbroken one does, at epoch 11."""
    train, val = sets
    accuracies = [row[0] for row in HALVING]
    options = dict(lmbda=2.0, momentum=0.5, patience=2, eta_decay=8)
    whole = training.Run(network(), mini_batch_size=10, eta=1.0, **options)
    Script(monkeypatch, accuracies).fit(whole, train, val, 30)

    script = Script(monkeypatch, accuracies)
    part = training.Run(network(), mini_batch_size=10, eta=1.0, **options)
    script.fit(part, train, val, 8)
    path = tmp_path / "run.ckpt"
    checkpoint.save_run(part, path, {"expand": True, "epochs": 30})
    got, extra = checkpoint.load_run(path, device="cpu")
    assert extra == {"expand": True, "epochs": 30}
    assert (got.epoch, got.eta, got.since, got.ended) == (8, 0.25, 1, None)
    assert got.config == part.config and got.net.seed == part.net.seed == 3
    assert json.dumps(got.history) == json.dumps(part.history)
    assert got.best.record == part.history[4] and got.best.record["epoch"] == 5
    assert_same(host(got.best.weights + got.best.biases), script.weights[5])
    assert_same(host(got.net.weights + got.net.biases), script.weights[8])  # the last, not the best
    assert_same(velocities(got), velocities(part))
    assert got.net.rng.bit_generator.state == part.net.rng.bit_generator.state

    script.fit(got, train, val, 30)
    assert got.epoch == 11 and got.ended == "schedule"
    timeless = lambda history: [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")}
                                for r in history]
    assert timeless(got.history) == timeless(whole.history)
    assert_same(host(got.net.weights + got.net.biases), host(whole.net.weights + whole.net.biases))
    assert_same(host(got.last.weights + got.last.biases), host(whole.last.weights + whole.last.biases))
    assert_same(velocities(got), velocities(whole))


def test_a_run_that_stopped_early_stays_stopped_after_loading(sets, monkeypatch, tmp_path):
    train, val = sets
    script = Script(monkeypatch, [row[0] for row in PATIENCE])
    run = training.Run(network(), mini_batch_size=10, eta=1.0, patience=2)
    script.fit(run, train, val, 30)
    checkpoint.save_run(run, tmp_path / "run.ckpt")
    got, _ = checkpoint.load_run(tmp_path / "run.ckpt", device="cpu")
    assert got.ended == "patience" and got.epoch == 5
    before = host(got.net.weights)
    script.fit(got, train, val, 30)
    assert got.epoch == 5 and len(got.history) == 5
    assert_same(host(got.last.weights) if got.last else host(got.net.weights), before)


# Whole `digitnet train` runs on a 1,200-image slice of the real MNIST.

def test_a_resumed_expand_run_trains_on_the_expanded_set(small_split, tmp_path, capsys):
    ckpt, metrics = tmp_path / "e.ckpt", tmp_path / "e.json"
    assert cli.main(["train", "--expand", "--epochs", "1", "--sizes", "784", "10", "10",
                     "--checkpoint", str(ckpt), *small_split]) == 0
    assert cli.main(["train", "--resume", str(ckpt), "--epochs", "2", "--metrics", str(metrics),
                     *small_split]) == 0
    out = capsys.readouterr().out
    assert out.count(f"({5 * data.N_TRAIN} examples)") == 2, out
    config = json.loads(metrics.read_text())["config"]
    assert config["expand"] is True and config["n_train"] == 5 * data.N_TRAIN


def test_a_diverged_run_saves_its_best_epoch_and_says_so(small_split, tmp_path, monkeypatch,
                                                         capsys):
    """Best validation at epoch 2, worse at 3, a NaN cost in epoch 4: --save
    writes epoch 2's weights, and the message names epoch 2."""
    from conftest import SMALL_VALIDATION
    script = Script(monkeypatch, [60, 70, 65, 90], costs={4: np.nan}, n_val=SMALL_VALIDATION)
    save = tmp_path / "model.npz"
    code = cli.main(["train", "--sizes", "784", "10", "10", "--epochs", "6", "--save", str(save),
                     *small_split])
    out, err = capsys.readouterr()
    assert code == 1 and "diverged in epoch 4" in err, err
    assert "the weights of epoch 2, the best validation accuracy" in out, out
    saved = checkpoint.load(save, device="cpu")
    assert_same(host(saved.weights + saved.biases), script.weights[2])
