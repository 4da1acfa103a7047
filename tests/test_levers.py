"""The speedrun's training levers (issue 20), each against an independent
reference: the schedules against hand-written tables, Nesterov's momentum
against PyTorch's form of it, label smoothing against finite differences
and a hand-made step, test-at-end against a separate evaluation, and all of
them on the strict Array API namespace against NumPy."""

import math

import numpy as np
import pytest

from digitnet import schedules
from digitnet.config import TrainConfig
from digitnet.costs import COSTS
from digitnet.data import Dataset
from digitnet.model import Model
from digitnet.training import Run, fit, sgd

from test_model import numeric_gradient_error, tiny_data

# eta / peak at each of 8 steps with warmup 0.25 (two rising steps from
# 1/25), written out by hand: one-cycle falls linearly over the other six,
# cosine by half a cosine.
ONE_CYCLE = [0.04, 0.52, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]
COSINE = [0.04, 0.52, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(1, 6)]
NO_WARMUP = [1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]


@pytest.mark.parametrize("schedule, warmup, table", [
    ("one-cycle", 0.25, ONE_CYCLE), ("cosine", 0.25, COSINE), ("one-cycle", 0.0, NO_WARMUP),
    ("constant", 0.0, [1.0] * 8)])
def test_schedules_follow_the_hand_written_tables(schedule, warmup, table):
    got = [schedules.fraction(schedule, warmup, step, 8) for step in range(8)]
    np.testing.assert_allclose(got, table, rtol=1e-12)


def full_batch(seed=5):
    return Model("fc:3,softmax:2", input_shape=(6,), device="cpu", dtype="float64", seed=seed)


def xy(train, smoothing=0.0):
    y = np.eye(2)[:, train.labels]
    return train.images.astype(np.float64), y * (1 - smoothing) + smoothing / 2


def test_a_scheduled_run_takes_each_step_at_its_rate():
    """Four full-batch epochs, one step each, one-cycle with warmup 0.5:
    eta 0.04, 0.52, 1 and 0.5 of the peak, step by step, as a hand loop
    takes them; each epoch records the rate of its last step."""
    train, eta, n = tiny_data(40, 4), 0.3, 40
    a, ref = full_batch(), full_batch()
    history = sgd(a, train, 4, n, eta, schedule="one-cycle", warmup=0.5)
    x, y = xy(train)
    rates = [eta * f for f in (0.04, 0.52, 1.0, 0.5)]
    for rate in rates:
        nabla_b, nabla_w = ref.backprop(x, y)
        for i in range(len(ref.weights)):
            ref.weights[i] = ref.weights[i] - rate / n * nabla_w[i]
            ref.biases[i] = ref.biases[i] - rate / n * nabla_b[i]
    assert [r["eta"] for r in history] == pytest.approx(rates, rel=1e-12)
    for got, want in zip(a.weights + a.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_a_scheduled_run_spans_the_epochs_it_is_given():
    """fit(run, data, epochs) runs the schedule over those epochs: the last
    step of the last epoch is the schedule's last (1/steps of the peak)."""
    train = tiny_data(40, 4)
    run = Run(full_batch(), mini_batch_size=10, eta=0.2, schedule="one-cycle", epochs=99)
    fit(run, train, 3)
    assert run.history[-1]["eta"] == pytest.approx(0.2 / 12)
    assert run.history[0]["eta"] == pytest.approx(0.2 * 9 / 12)


@pytest.mark.parametrize("lmbda", [0.0, 50.0])
def test_nesterov_is_pytorchs_nesterov(lmbda):
    """Three full-batch steps against PyTorch's SGD(nesterov=True) update,
    written out: g = nabla/n + wd w (weights only), buf = mu buf + g,
    p -= eta (g + mu buf), with wd = lmbda/n."""
    train, mu, eta, n = tiny_data(40, 4), 0.9, 0.2, 40
    a, ref = full_batch(), full_batch()
    sgd(a, train, 3, n, eta, momentum=mu, nesterov=True, lmbda=lmbda)
    x, y = xy(train)
    bufs = [np.zeros_like(p) for p in ref.weights + ref.biases]
    for _ in range(3):
        nabla_b, nabla_w = ref.backprop(x, y)
        params = ref.weights + ref.biases
        grads = [nw / n + lmbda / n * w for nw, w in zip(nabla_w, ref.weights)]
        grads += [nb / n for nb in nabla_b]
        for i, (p, g) in enumerate(zip(params, grads)):
            bufs[i] = mu * bufs[i] + g
            params[i] = p - eta * (g + mu * bufs[i])
        k = len(ref.weights)
        ref.weights[:], ref.biases[:] = params[:k], params[k:]
    for got, want in zip(a.weights + a.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_nesterov_differs_from_plain_momentum():
    train = tiny_data(40, 4)
    a, b = full_batch(), full_batch()
    sgd(a, train, 2, 40, 0.2, momentum=0.9, nesterov=True)
    sgd(b, train, 2, 40, 0.2, momentum=0.9)
    assert not np.allclose(a.weights[0], b.weights[0], rtol=1e-6)


@pytest.mark.parametrize("cost, layers", [("log-likelihood", "fc:5,softmax:3"),
                                          ("cross-entropy", "fc:5,fc:3"),
                                          ("quadratic", "fc:5,fc:3")])
def test_smoothed_targets_keep_backprop_the_cost_gradient(xp, cost, layers):
    """Smoothed targets still sum to 1, so softmax's delta a - y is still
    the gradient of -sum y ln a: finite differences on every namespace."""
    from digitnet.engines import targets
    model = Model(layers, cost=cost, activation="tanh", seed=3, device=xp, dtype="float64",
                  init="scaled", input_shape=(12,))
    rng = np.random.default_rng(2)
    x = xp.asarray(rng.random((12, 4)))
    eye = xp.eye(3, dtype=xp.float64)
    y = targets(xp, xp.asarray(np.array([0, 2, 1, 2])), eye, 0.1)
    np.testing.assert_allclose(np.asarray(y), np.eye(3)[:, [0, 2, 1, 2]] * 0.9 + 0.1 / 3,
                               rtol=1e-15)
    assert numeric_gradient_error(model, x, y, None) < 1e-5


def test_label_smoothing_trains_towards_the_smoothed_targets():
    train, eps, eta, n = tiny_data(40, 4), 0.2, 0.3, 40
    a, ref = full_batch(), full_batch()
    sgd(a, train, 2, n, eta, label_smoothing=eps)
    x, y = xy(train, eps)
    for _ in range(2):
        nabla_b, nabla_w = ref.backprop(x, y)
        for i in range(len(ref.weights)):
            ref.weights[i] = ref.weights[i] - eta / n * nabla_w[i]
            ref.biases[i] = ref.biases[i] - eta / n * nabla_b[i]
    for got, want in zip(a.weights + a.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_test_at_end_measures_the_best_epoch_once():
    """Only the best validation epoch's record has test figures, and they
    are the best weights' own; the other epochs measured none."""
    model = Model("fc:4,softmax:2", input_shape=(6,), device="cpu", seed=0)
    train, val, test = tiny_data(200, 1), tiny_data(100, 2), tiny_data(300, 3)
    history = sgd(model, train, 6, 10, 0.5, validation_data=val, test_data=test,
                  test_at_end=True)
    best = max(history, key=lambda r: r["validation_accuracy"])
    assert [r["epoch"] for r in history if "test_accuracy" in r] == [best["epoch"]]
    assert best["test_correct"] == model.evaluate(test) and best["test_total"] == 300
    expected = COSTS["log-likelihood"].fn(np, np.asarray(model.feedforward(test.images)),
                                          np.eye(2)[:, test.labels]) / 300
    assert best["test_cost"] == pytest.approx(expected, rel=1e-5)


def test_test_at_end_without_validation_measures_the_last_epoch():
    model = Model("fc:4,softmax:2", input_shape=(6,), device="cpu", seed=0)
    train, test = tiny_data(200, 1), tiny_data(300, 3)
    history = sgd(model, train, 3, 10, 0.5, test_data=test, test_at_end=True)
    assert [r["epoch"] for r in history if "test_accuracy" in r] == [3]
    assert history[-1]["test_correct"] == model.evaluate(test)


@pytest.mark.parametrize("options, message", [
    (dict(schedule="linear"), "schedule must be one of constant, one-cycle, cosine"),
    (dict(warmup=0.1), "warmup is part of the one-cycle and cosine schedules"),
    (dict(schedule="cosine", warmup=1.0), r"warmup must be a number in \[0, 1\)"),
    (dict(schedule="cosine", warmup=-0.1), r"warmup must be a number in \[0, 1\)"),
    (dict(nesterov=True), "nesterov needs momentum > 0"),
    (dict(nesterov=1, momentum=0.9), "nesterov must be true or false, got 1"),
    (dict(label_smoothing=1.0), r"label_smoothing must be a number in \[0, 1\)"),
    (dict(label_smoothing=float("nan")), r"label_smoothing must be a number in \[0, 1\)"),
    (dict(schedule="one-cycle", patience=2, eta_decay=4), "and one-cycle sets its own"),
    (dict(test_at_end="yes"), "test_at_end must be true or false"),
])
def test_bad_lever_settings_are_one_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(mini_batch_size=10, eta=0.1, **options)


LEVERS = dict(lmbda=0.5, momentum=0.8, nesterov=True, schedule="cosine", warmup=0.3,
              label_smoothing=0.1, test_at_end=True)


@pytest.mark.parametrize("name", ["strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_the_levers_train_the_same_on_every_namespace(name):
    from conftest import load_namespace
    xp = load_namespace(name)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    images = rng.random((64, 60)) * 0.5
    for j, label in enumerate(labels):
        images[label * 16:label * 16 + 16, j] += 0.5
    train, val = Dataset(images[:, :40], labels[:40]), Dataset(images[:, 40:], labels[40:])
    results = []
    for space in (np, xp):
        model = Model("conv:3x3x3,pool:2,fc:6,softmax:3", activation="relu",
                      input_shape=(1, 8, 8), seed=1, device=space, dtype="float64")
        history = sgd(model, train, 4, 5, 0.1, validation_data=val, test_data=val, **LEVERS)
        results.append((history, [np.asarray(w) for w in model.weights]))
    (ha, wa), (hb, wb) = results
    for a, b in zip(ha, hb):
        assert a.keys() == b.keys()
        for key in a:
            if key not in ("seconds", "elapsed"):
                assert a[key] == pytest.approx(b[key], rel=1e-9), key
    for a, b in zip(wa, wb):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_a_diverged_scheduled_run_goes_back_to_its_last_epochs_rate(monkeypatch):
    """Divergence in epoch 2 puts the run back at the end of epoch 1: its
    per-step rate too, so a resumed run takes epoch 2's steps again at
    epoch 2's rates."""
    from digitnet import training
    train = tiny_data(40, 4)
    run = Run(full_batch(), mini_batch_size=10, eta=0.2, schedule="one-cycle", epochs=4)
    checks = iter([True, False])
    monkeypatch.setattr(training, "finite", lambda net: next(checks))
    with pytest.raises(training.Diverged):
        fit(run, train)
    assert run.epoch == 1 and len(run.history) == 1
    assert run.eta == run.history[0]["eta"] == pytest.approx(0.2 * 13 / 16)  # step 3 of 16
