"""Long runs that survive: real signals sent to a real `digitnet train`,
checkpoints resumed bit for bit, divergence, output paths checked before
training, standard JSON metrics."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from digitnet import checkpoint, cli, runs, training

CONV = ["--layers", "conv:2x5x5,pool:4,fc:10,softmax:10", "--activation", "relu", "--init",
        "scaled", "--momentum", "0.5", "--lmbda", "1", "--dropout", "0.2", "--eta", "0.05",
        "--batch-size", "50"]
# issue 20's levers, every one at once: per-step rates, Nesterov, smoothing,
# and the record recipe's milder augmentation
LEVERS = CONV + ["--schedule", "one-cycle", "--warmup", "0.3", "--nesterov",
                 "--label-smoothing", "0.1", "--test-at-end", "--augment",
                 "--augment-strength", "0.6"]


def start(args, data_dir):
    env = dict(os.environ, DIGITNET_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "digitnet", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def epochs_in(metrics):
    try:
        return len(json.loads(metrics.read_text())["epochs"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.parametrize("signum, code, name", [(signal.SIGTERM, 143, "SIGTERM"),
                                                (signal.SIGINT, 130, "Ctrl-C")])
def test_a_signal_stops_the_run_and_keeps_its_finished_epochs(mnist_dir, tmp_path, signum,
                                                              code, name):
    save, metrics, ckpt = tmp_path / "m.npz", tmp_path / "run.json", tmp_path / "run.ckpt"
    p = start(["--epochs", 100, "--save", save, "--metrics", metrics, "--checkpoint", ckpt],
              mnist_dir)
    wait_for(lambda: epochs_in(metrics) >= 2, p)
    p.send_signal(signum)
    out, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    report = json.loads(metrics.read_text())  # still valid JSON
    done = len(report["epochs"])
    assert 2 <= done < 100
    stopped = [line for line in err.splitlines() if "stopped" in line]
    assert stopped == [f"digitnet: {name}: stopped during epoch {done + 1}; keeping the "
                       f"{done} finished epochs"], err
    best = max(report["epochs"], key=lambda r: r["validation_accuracy"])
    assert f"saved {save} (the weights of epoch {best['epoch']}" in out
    net = checkpoint.load(save, device="cpu")
    _, validation, _ = __import__("digitnet").load_dataset("mnist", mnist_dir, False)
    assert net.evaluate(validation) == best["validation_correct"]
    run, _ = checkpoint.load_run(ckpt, device="cpu")
    assert run.epoch == done and run.history == report["epochs"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.npz", "run.ckpt", "run.json"]


def test_a_signal_before_any_epoch_leaves_the_old_model_alone(mnist_dir, tmp_path):
    save = tmp_path / "good.npz"
    save.write_bytes(b"the user's good model")
    p = start(["--engine", "per-example", "--save", save], mnist_dir)
    assert p.stdout.readline().startswith("training [784, 30, 10]")
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 143, err
    assert save.read_bytes() == b"the user's good model"
    assert f"no epoch finished; {save} left as it was" in err
    assert [f.name for f in tmp_path.iterdir()] == ["good.npz"]


def arrays(path):
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def assert_same_files(got_path, want_path):
    """Two model files hold the same arrays, bit for bit."""
    want, got = arrays(want_path), arrays(got_path)
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize("flags", [[], CONV], ids=["chapter-1", "conv-momentum-l2-dropout"])
def test_a_resumed_run_ends_bit_for_bit_as_an_uninterrupted_one(small_split, tmp_path, flags,
                                                                capsys):
    """On a 1,200-image slice of the real MNIST (conftest.small_split): four
    epochs in one go, and two plus two through a checkpoint."""
    data = small_split
    a, b, ckpt = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "b.ckpt"
    assert cli.main(["train", *flags, "--epochs", "4", "--seed", "3", "--save", str(a), *data]) == 0
    assert cli.main(["train", *flags, "--epochs", "2", "--seed", "3", "--checkpoint", str(ckpt),
                     *data]) == 0
    assert cli.main(["train", "--resume", str(ckpt), "--epochs", "4", "--save", str(b),
                     "--metrics", str(tmp_path / "b.json"), *data]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and ", from epoch 2" in out
    assert_same_files(b, a)
    assert [r["epoch"] for r in json.loads((tmp_path / "b.json").read_text())["epochs"]] == [1, 2, 3, 4]
    assert checkpoint.load_run(ckpt, device="cpu")[0].epoch == 4  # it kept checkpointing


def test_a_run_with_every_lever_resumes_bit_for_bit(small_split, tmp_path, monkeypatch, capsys):
    """The per-step schedule spans the run's --epochs, so the run is cut
    short as Ctrl-C would cut it: four epochs in one go, and the same
    command's checkpoint after epoch 2 resumed to the end."""
    data = small_split
    a, b, ckpt, kept = (tmp_path / name for name in ("a.npz", "b.npz", "b.ckpt", "at2.ckpt"))
    real_save = checkpoint.save_run

    def save_run(run, path, extra):
        real_save(run, path, extra)
        if run.epoch == 2:
            real_save(run, kept, extra)
    assert cli.main(["train", *LEVERS, "--epochs", "4", "--seed", "3", "--save", str(a),
                     *data]) == 0
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "save_run", save_run)
        assert cli.main(["train", *LEVERS, "--epochs", "4", "--seed", "3", "--checkpoint",
                         str(ckpt), *data]) == 0
    assert cli.main(["train", "--resume", str(kept), "--save", str(b), *data]) == 0
    out = capsys.readouterr().out
    assert ", from epoch 2" in out and "epoch 3/4  validation" in out
    assert_same_files(b, a)
    resumed, _ = checkpoint.load_run(kept, device="cpu")
    assert resumed.epoch == 4 and resumed.config.schedule == "one-cycle"
    assert resumed.config.augment and resumed.config.augment_strength == 0.6
    assert resumed.config.test_at_end and "test_accuracy" in training.best_epoch(resumed.history)


def test_resume_mistakes_are_one_line(mnist_dir, tmp_path, capsys):
    data = ["--data-dir", str(mnist_dir)]
    ckpt, model = tmp_path / "r.ckpt", tmp_path / "m.npz"
    assert cli.main(["train", "--epochs", "1", "--checkpoint", str(ckpt), "--save", str(model),
                     *data]) == 0
    capsys.readouterr()
    for argv, code, message in [
            (["--resume", str(model)], 1, "not a digitnet run checkpoint"),
            (["--resume", str(ckpt), "--eta", "0.5"], 2, "--eta: a resumed run keeps its own"),
            (["--resume", str(ckpt), "--layers", "fc:10"], 2, "--layers: a resumed run keeps"),
            (["--resume", str(ckpt), "--epochs", "1"], 2, "has already trained 1 epochs"),
            (["--resume", str(tmp_path / "nope.ckpt")], 1, "file not found")]:
        try:
            got = cli.main(["train", *argv, *data])
        except SystemExit as exit_:
            got = exit_.code
        err = capsys.readouterr().err
        assert got == code and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    stored = arrays(ckpt)
    stored["weights_0"] = stored["weights_0"][:, :100]  # another architecture's weights
    with open(tmp_path / "bad.ckpt", "wb") as f:  # np.savez would add .npz to a name
        np.savez(f, **stored)
    assert cli.main(["train", "--resume", str(tmp_path / "bad.ckpt"), "--epochs", "2", *data]) == 1
    assert "description needs (30, 784)" in capsys.readouterr().err
    stored = arrays(ckpt) | {"state": np.array("{not json")}
    with open(tmp_path / "bad2.ckpt", "wb") as f:
        np.savez(f, **stored)
    assert cli.main(["train", "--resume", str(tmp_path / "bad2.ckpt"), "--epochs", "2", *data]) == 1
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error: ") and len(err.strip().splitlines()) == 1


def test_a_diverging_run_stops_and_keeps_the_last_good_model(mnist_dir, tmp_path, capsys):
    """ReLU, a large eta and L2: eta lmbda / n = 5 makes every step multiply the
    weights by -4 until they overflow, in the first epoch."""
    save = tmp_path / "good.npz"
    save.write_bytes(b"the user's good model")
    code = cli.main(["train", "--layers", "fc:30,softmax:10", "--activation", "relu", "--eta",
                     "50", "--lmbda", "5000", "--epochs", "3", "--save", str(save),
                     "--metrics", str(tmp_path / "m.json"), "--data-dir", str(mnist_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert ("digitnet: error: training diverged in epoch 1: the weights or the cost became NaN "
            "or infinite with eta = 50") in err and "try a smaller --eta" in err
    assert save.read_bytes() == b"the user's good model"


def test_output_paths_are_checked_before_anything_loads(tmp_path):
    """A folder for a file, or a folder nobody may write: exit 2 naming the
    user's path, before the (here missing) data is even looked at."""
    locked = tmp_path / "locked"
    locked.mkdir()
    immutable = subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0
    if not immutable:
        if os.geteuid() == 0:
            pytest.skip("root without chattr: no folder is read-only here")
        locked.chmod(0o555)
    try:
        for flag, path, why in [("--save", tmp_path, "is a folder, not a file"),
                                ("--metrics", locked / "r.json", "is not writable"),
                                ("--checkpoint", locked / "r.ckpt", "is not writable")]:
            done = subprocess.run([sys.executable, "-m", "digitnet", "train", flag, str(path),
                                   "--data-dir", str(tmp_path / "no-data")],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 2, done.stderr
            assert done.stderr.startswith(f"digitnet: error: {flag}: cannot write {path}: ")
            assert why in done.stderr and len(done.stderr.splitlines()) == 1
        assert list(locked.iterdir()) == []
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(locked)])


def test_metrics_files_are_standard_json(tmp_path):
    runs.write_json(tmp_path / "m.json", {"epochs": [{"cost": float("nan"), "x": [float("inf"), 1.5]}]})
    text = (tmp_path / "m.json").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    assert report == {"epochs": [{"cost": None, "x": [None, 1.5]}]}


def test_a_rate_far_too_large_warns_that_the_network_is_not_learning(small_split, capsys):
    """The book's eta = 100, on the 1,200-image slice of the real MNIST."""
    assert cli.main(["train", "--eta", "100", "--epochs", "2", *small_split]) == 0
    err = capsys.readouterr().err
    assert ("digitnet: warning: epoch 2 ended near chance accuracy and the cost is not "
            "falling: the network is not learning; eta 100 may be too large") in err
    for eta in ("3.0", "0.001"):  # learning, or learning slowly: no warning
        assert cli.main(["train", "--eta", eta, "--epochs", "2", *small_split]) == 0
        assert "not learning" not in capsys.readouterr().err


def test_train_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for default in ("neurons per layer, input first (default: 784 30 10)", "(default: 30)",
                    "mini_batch_size m (default: 10)", "learning rate (default: 3.0)",
                    "(default: batched)", "(default: float32)", "(default: 0)",
                    "(default: mnist)", "(default: sigmoid)", "(default: large)",
                    "L2 regularization (default: 0.0)", "(default: quadratic"):
        assert default in out, default


def test_a_mini_batch_larger_than_the_training_set_is_refused(mnist_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--batch-size", "50001", "--data-dir", str(mnist_dir)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == ("digitnet: error: --batch-size: 50001 is larger than the 50000 training "
                   "examples\n")


def test_a_resume_from_elsewhere_writes_where_the_run_did(mnist_dir, tmp_path, monkeypatch,
                                                           capsys):
    """Relative --save/--metrics paths are kept absolute; `elapsed` goes on."""
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir(), other.mkdir()
    monkeypatch.chdir(first)
    data = ["--data-dir", str(mnist_dir)]
    assert cli.main(["train", "--epochs", "1", "--checkpoint", "r.ckpt", "--save", "m.npz",
                     "--metrics", "m.json", *data]) == 0
    monkeypatch.chdir(other)
    (other / "m.npz").write_bytes(b"someone else's file")
    assert cli.main(["train", "--resume", str(first / "r.ckpt"), "--epochs", "2", *data]) == 0
    assert (other / "m.npz").read_bytes() == b"someone else's file"
    epochs = json.loads((first / "m.json").read_text())["epochs"]
    assert [r["epoch"] for r in epochs] == [1, 2] and epochs[1]["elapsed"] > epochs[0]["elapsed"]
    assert checkpoint.load(first / "m.npz", device="cpu").n_out == 10
    # the resumed run kept the paths as given, relative: a copy of its
    # checkpoint resumed elsewhere writes beside the copy
    third = tmp_path / "third"
    third.mkdir()
    (third / "r.ckpt").write_bytes((first / "r.ckpt").read_bytes())
    assert cli.main(["train", "--resume", str(third / "r.ckpt"), "--epochs", "3", *data]) == 0
    assert (third / "m.npz").is_file() and (third / "m.json").is_file()
    capsys.readouterr()


def test_a_resume_checks_the_kept_paths_first(mnist_dir, tmp_path, capsys):
    data = ["--data-dir", str(mnist_dir)]
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["train", "--epochs", "1", "--checkpoint", str(tmp_path / "r.ckpt"),
                     "--metrics", str(out / "m.json"), *data]) == 0
    out.joinpath("m.json").unlink()
    out.rmdir()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--resume", str(tmp_path / "r.ckpt"), "--epochs", "2", *data])
    assert exit_.value.code == 2
    assert f"--metrics: cannot write {out / 'm.json'}: folder {out} does not exist" in \
        capsys.readouterr().err


def test_a_run_saved_from_python_resumes_with_the_defaults(mnist_dir, tmp_path, capsys):
    from digitnet import Network
    training_set, _, _ = __import__("digitnet").load_dataset("mnist", mnist_dir, False)
    run = training.Run(Network([784, 30, 10], seed=2, device="cpu"), mini_batch_size=10, eta=3.0)
    training.fit(run, training_set[:1000], 1)
    checkpoint.save_run(run, tmp_path / "api.ckpt")
    assert cli.main(["train", "--resume", str(tmp_path / "api.ckpt"), "--epochs", "2",
                     "--data-dir", str(mnist_dir)]) == 0
    assert "epoch 2/2" in capsys.readouterr().out


def test_evaluate_reads_the_dataset_from_the_model(fashion_dir, tmp_path, capsys):
    model = tmp_path / "fashion.npz"
    data = ["--data-dir", str(fashion_dir)]
    assert cli.main(["train", "--dataset", "fashion-mnist", "--epochs", "1", "--save",
                     str(model), *data]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(model), *data]) == 0
    assert "on fashion-mnist" in capsys.readouterr().out
    assert cli.main(["evaluate", str(model), "--dataset", "mnist", *data]) == 1
    assert ("the model's classes are fashion-mnist's, not mnist's"
            in capsys.readouterr().err)
