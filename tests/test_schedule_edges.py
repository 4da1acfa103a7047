"""Per-step schedules at their edges: a short last mini-batch (n not a
multiple of m, as in the record recipe's 250,000 at m = 64), the passes and
the run's last step against hand-written tables; a finished run resumed to
more epochs (schedules.py: it goes on from the rate it reached, along the
rest of its fall); --test-at-end resumed from each epoch's checkpoint."""

import math
import shutil

import numpy as np
import pytest

import digitnet
from digitnet import backend, batched, checkpoint, cli, optimizers, schedules
from digitnet.config import TrainConfig
from digitnet.training import Run, fit

from test_model import tiny_data

# n = 10, m = 4: three steps a pass (4, 4 and 2 examples); two passes, six
# steps, warmup 0.5: three rising steps from 1/25, then the fall.  Fractions
# of the peak, by hand.
RISE = [1 / 25, 9 / 25, 17 / 25]
TABLES = {"one-cycle": RISE + [1, 2 / 3, 1 / 3],
          "cosine": RISE + [1, 0.75, 0.25],
          "constant": [1.0] * 6}
# three passes, warmup 0.2 (1.8 of 9 steps): 1/25 + 24/25 * 5/9 = 43/75 at step 1
THREE = {"one-cycle": [1 / 25, 43 / 75] + [1 - (s - 1.8) / 7.2 for s in range(2, 9)],
         "cosine": [1 / 25, 43 / 75] + [0.5 * (1 + math.cos(math.pi * (s - 1.8) / 7.2))
                                       for s in range(2, 9)]}


def config(schedule, warmup, epochs, eta=2.0):
    return TrainConfig(mini_batch_size=4, eta=eta, schedule=schedule,
                       warmup=warmup if schedule != "constant" else 0.0, epochs=epochs)


@pytest.mark.parametrize("schedule", ["one-cycle", "cosine"])
@pytest.mark.parametrize("epochs, warmup, tables", [(2, 0.5, TABLES), (3, 0.2, THREE)])
def test_for_pass_over_a_short_last_batch_follows_the_table(schedule, epochs, warmup, tables):
    c = config(schedule, warmup, epochs)
    got = [schedules.for_pass(c, e, epochs, 10)(i) for e in range(epochs) for i in range(3)]
    np.testing.assert_allclose(got, [2.0 * f for f in tables[schedule]], rtol=1e-12)


def test_the_constant_schedule_has_no_per_step_rate():
    assert schedules.for_pass(config("constant", 0.0, 2), 0, 2, 10) is None


@pytest.mark.parametrize("path", ["plain", "fused"])
@pytest.mark.parametrize("schedule", ["one-cycle", "cosine", "constant"])
def test_a_run_takes_every_step_of_every_pass_at_its_rate(schedule, path, monkeypatch):
    """Each step's rate and size, as the optimizer (the plain engine) or the
    fused path is handed them, over two passes of 4, 4 and 2 examples; each
    epoch records its last step's rate, and the run ends there."""
    taken, sizes = [], []
    if path == "plain":
        monkeypatch.setattr(backend, "has_out", lambda xp: False)
        real = optimizers.SGD.step

        def step(self, nabla_w, nabla_b, eta, m, n):
            taken.append(eta)
            sizes.append(m)
            return real(self, nabla_w, nabla_b, eta, m, n)
        monkeypatch.setattr(optimizers.SGD, "step", step)
    else:
        real = batched.FastBatched.step

        def step(self, idx, k):
            taken.append(float(k) * idx.shape[0])  # k = eta / the mini-batch's size
            sizes.append(idx.shape[0])
            return real(self, idx, k)
        monkeypatch.setattr(batched.FastBatched, "step", step)
    net = digitnet.Model("fc:3,softmax:2", input_shape=(6,), device="cpu", dtype="float64",
                         seed=2)
    run = Run(net, config(schedule, 0.5, 2))
    fit(run, tiny_data(10, 5))
    rates = [2.0 * f for f in TABLES[schedule]]
    assert sizes == [4, 4, 2, 4, 4, 2]
    np.testing.assert_allclose(taken, rates, rtol=1e-12)
    assert [r["eta"] for r in run.history] == pytest.approx([rates[2], rates[5]], rel=1e-12)
    assert run.eta == pytest.approx(rates[5], rel=1e-12)


@pytest.mark.parametrize("schedule", ["one-cycle", "cosine"])
def test_a_finished_run_given_more_epochs_goes_on_from_its_rate(schedule):
    """Two passes planned, then a third: its three steps go on from the last
    rate (1/3 of the peak for one-cycle, 1/4 for cosine) along the rest of
    the fall, stretched so the step after the last would reach 0: positions
    p0 + (k + 1)(1 - p0)/4 in the fall, by hand."""
    c = config(schedule, 0.5, 2)
    reached = 2.0 * TABLES[schedule][-1]
    got = [schedules.for_pass(c, 2, 3, 10, reached)(i) for i in range(3)]
    if schedule == "one-cycle":  # p0 = 2/3: 1/3 (1 - (k + 1)/4) of the peak
        want = [1 / 3 * 3 / 4, 1 / 3 * 2 / 4, 1 / 3 * 1 / 4]
    else:  # p0 = 2/3 of the half cosine; steps of 1/12
        want = [0.5 * (1 + math.cos(math.pi * (2 / 3 + (k + 1) / 12))) for k in range(3)]
    np.testing.assert_allclose(got, [2.0 * w for w in want], rtol=1e-12)
    # the planned rate, never a jump: below the rate reached, falling to 0
    assert reached > got[0] > got[1] > got[2] > 0
    # the same total is the plan, step for step (a resumed run's own steps)
    plan = schedules.for_pass(c, 1, 2, 10)
    assert schedules.for_pass(c, 1, 2, 10, 2.0 * TABLES[schedule][2])(0) == plan(0)


def test_a_run_resumed_in_its_warm_up_follows_the_new_plan():
    """Planned over 2 passes (6 steps, 3 rising), stopped after the first
    at 17/25 of the peak, resumed to 4 (12 steps, 6 rising): its 4th step
    is the new plan's, still rising."""
    c = config("one-cycle", 0.5, 4)
    got = schedules.for_pass(c, 1, 4, 10, 2.0 * 17 / 25)
    assert [got(i) for i in range(3)] == pytest.approx(
        [2.0 * (1 / 25 + 24 / 25 * s / 6) for s in (3, 4, 5)], rel=1e-12)


LEVERS = ["--sizes", "784", "3", "10", "--batch-size", "64", "--eta", "1", "--schedule",
          "one-cycle", "--warmup", "0.3", "--momentum", "0.9", "--nesterov", "--test-at-end"]


@pytest.fixture(scope="module")
def epochs_checkpoints(small_mnist_dir, tmp_path_factory):
    """Each epoch's checkpoint of a 3-epoch one-cycle --test-at-end run on
    1,000 examples at m = 64 (15 full mini-batches and one of 40), and
    the run's own final history."""
    from digitnet import data
    folder = tmp_path_factory.mktemp("each-epoch")
    real = checkpoint.save_run

    def keep_each(run, path, extra=None):
        real(run, path, extra)
        shutil.copy(path, folder / f"e{run.epoch}.npz")
    saved = data.N_TRAIN
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(data, "N_TRAIN", 1000)
        mp.setattr(checkpoint, "save_run", keep_each)
        assert cli.main(["train", *LEVERS, "--epochs", "3", "--data-dir", str(small_mnist_dir),
                         "--checkpoint", str(folder / "run.npz")]) == 0
    finally:
        mp.undo()
    assert data.N_TRAIN == saved
    return folder, checkpoint.load_run(folder / "run.npz", device="cpu")[0]


@pytest.mark.parametrize("start", [1, 2, 3])
def test_test_at_end_resumed_from_each_epochs_checkpoint(start, epochs_checkpoints, small_split,
                                                         tmp_path, capsys):
    """From each epoch's checkpoint, to 3 epochs (the 3rd's, finished, to
    4): the last checkpoint loads, its best record holds the test figures,
    the same as its history's record of that epoch, and they are what the
    saved model (the best epoch's weights) scores on the test set; the
    rates of the first three epochs are the uninterrupted run's."""
    folder, whole = epochs_checkpoints
    total = max(3, start + 1)
    ckpt, save = tmp_path / "run.npz", tmp_path / "model.npz"
    assert cli.main(["train", "--resume", str(folder / f"e{start}.npz"), "--epochs", str(total),
                     "--checkpoint", str(ckpt), "--save", str(save), *small_split]) == 0
    capsys.readouterr()
    run, _ = checkpoint.load_run(ckpt, device="cpu")
    assert run.epoch == total
    best = run.best.record
    test = {k: v for k, v in best.items() if k.startswith("test_")}
    assert set(test) == {"test_cost", "test_correct", "test_total", "test_accuracy"}
    assert run.history[best["epoch"] - 1] == best
    assert sum("test_accuracy" in r for r in run.history) == 1
    _, _, test_set = digitnet.load_mnist(small_split[1])
    assert digitnet.load(save, device="cpu").evaluate(test_set) == test["test_correct"]
    assert [r["eta"] for r in run.history[:3]] == [r["eta"] for r in whole.history]
    if total == 4:  # the finished run's 4th epoch: the rest of the fall, 16 steps of 17
        last = whole.history[-1]["eta"]
        assert run.history[-1]["eta"] == pytest.approx(last * (1 - 16 / 17), rel=1e-12)
