"""A run's safety from Python (runs.py), without the command line: the
checkpoint and metrics after every epoch, the final save, a resume bit for
bit, Ctrl-C, divergence and the locks."""

import dataclasses
import json
import os
import signal

import numpy as np
import pytest

from digitnet import Network, checkpoint, runs, training


@pytest.fixture
def sets(mnist):
    training_data, validation, test = mnist
    return training_data[:600], validation[:200], test[:200]


def new_run(epochs, **settings):
    net = Network([784, 12, 10], seed=4, device="cpu", dtype="float64")
    return training.Run(net, mini_batch_size=10, eta=3.0, epochs=epochs, **settings)


def test_every_file_is_written_as_the_run_goes(sets, tmp_path):
    train, validation, test = sets
    files = runs.Files(checkpoint=tmp_path / "run.ckpt", metrics=tmp_path / "run.json",
                       save=tmp_path / "net.npz", extra={"mine": 1}, about={"what": "test"},
                       say=lambda line: None)
    seen = []
    run = new_run(3)
    assert runs.fit(run, train, files, validation_data=validation, test_data=test,
                    on_epoch=lambda record, run: seen.append(
                        checkpoint.load_run(tmp_path / "run.ckpt", "cpu")[0].epoch
                        if (tmp_path / "run.ckpt").exists() else 0)) is None
    assert seen == [0, 1, 2]  # on_epoch comes before the epoch's writes
    back, extra = checkpoint.load_run(tmp_path / "run.ckpt", "cpu")
    assert back.epoch == 3 and extra == {"mine": 1}
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["config"] == {"what": "test"} and report["epochs"] == run.history
    best = training.best_epoch(run.history)
    saved = Network.load(tmp_path / "net.npz", "cpu")
    for a, b in zip(saved.weights + saved.biases, run.best.weights + run.best.biases):
        np.testing.assert_array_equal(a, b)
    assert saved.evaluate(validation) == best["validation_correct"]


def test_a_python_run_resumes_bit_for_bit(sets, tmp_path):
    train, validation, _ = sets
    whole = new_run(4, momentum=0.5, lmbda=1.0)
    runs.fit(whole, train, runs.Files(), validation_data=validation)
    half = new_run(2, momentum=0.5, lmbda=1.0)
    runs.fit(half, train, runs.Files(checkpoint=tmp_path / "r.ckpt"), validation_data=validation)
    again, _ = checkpoint.load_run(tmp_path / "r.ckpt", "cpu")
    again.config = dataclasses.replace(again.config, epochs=4)
    runs.fit(again, train, runs.Files(checkpoint=tmp_path / "r.ckpt"), validation_data=validation)
    untimed = lambda history: [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")}  # noqa: E731
                               for r in history]
    assert untimed(again.history) == untimed(whole.history)
    for a, b in zip(again.net.weights + again.net.biases, whole.net.weights + whole.net.biases):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_stops_after_the_mini_batch_and_keeps_the_finished_epochs(sets, tmp_path):
    train, validation, _ = sets
    lines = []
    files = runs.Files(checkpoint=tmp_path / "r.ckpt", save=tmp_path / "net.npz",
                       say=lines.append)
    run = new_run(10)

    def interrupt(record, run):
        if record["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # caught by fit: it stops in epoch 3
    before = signal.getsignal(signal.SIGINT)
    assert runs.fit(run, train, files, validation_data=validation,
                    on_epoch=interrupt) == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before
    assert run.ended == "interrupted" and run.epoch == 2
    assert checkpoint.load_run(tmp_path / "r.ckpt", "cpu")[0].epoch == 2
    assert lines == [f"saved {tmp_path / 'net.npz'} (the weights of epoch "
                     f"{training.best_epoch(run.history)['epoch']}, the best validation "
                     "accuracy, when stopped)"]


def test_a_diverged_run_saves_its_last_good_epoch_then_raises(sets, tmp_path):
    """A good first epoch, then L2 so strong that the decay itself explodes:
    the file holds epoch 1's network, saved before Diverged is raised."""
    train, validation, _ = sets
    run = new_run(1)
    runs.fit(run, train, runs.Files(), validation_data=validation)
    good = [w.copy() for w in run.net.weights]
    run.config = dataclasses.replace(run.config, lmbda=1e7, epochs=3)
    lines = []
    with pytest.raises(training.Diverged):
        runs.fit(run, train, runs.Files(save=tmp_path / "net.npz", say=lines.append),
                 validation_data=validation)
    assert run.epoch == 1 and lines[0].endswith("accuracy, before it diverged)")
    for a, b in zip(Network.load(tmp_path / "net.npz", "cpu").weights, good):
        np.testing.assert_array_equal(a, b)


def test_a_write_that_fails_warns_once_and_costs_no_training(sets, tmp_path):
    train, validation, _ = sets
    warnings = []
    missing = tmp_path / "gone" / "run.json"
    run = new_run(2)
    with pytest.raises(OSError, match=f"could not write the metrics {missing} "
                                      "\\(from epoch 1 on\\): folder .* does not exist"):
        runs.fit(run, train, runs.Files(metrics=missing, warn=warnings.append),
                 validation_data=validation)
    assert run.epoch == 2 and len(warnings) == 1


def test_held_names_the_file_another_run_holds(tmp_path):
    with runs.held({"save": tmp_path / "a.npz"}):
        with pytest.raises(runs.RunError) as caught:
            with runs.held({"metrics": tmp_path / "m.json", "save": tmp_path / "a.npz"}):
                pass
    assert caught.value.flag == "save" and "being written by another digitnet run" in str(
        caught.value)
    with runs.held({"save": tmp_path / "a.npz"}):  # free again
        pass
