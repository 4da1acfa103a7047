"""The command line: argument errors, and train/evaluate on the real data."""

import json
import subprocess
import sys

import pytest

from digitnet import cli


@pytest.mark.parametrize("argv, message", [
    (["train", "--eta", "-1"], "--eta: must be a positive number"),
    (["train", "--eta", "abc"], "--eta: 'abc' is not a number"),
    (["train", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["train", "--epochs", "-2"], "--epochs: must be at least 1"),
    (["train", "--epochs", "0"], "--epochs: must be at least 1"),
    (["train", "--seed", "-1"], "--seed: must be at least 0"),
    (["train", "--layers", ""], "--layers: empty"),
    (["train", "--layers", "conv:20x5,fc:10"], "--layers: layer 'conv:20x5': expected conv:FILTERSxKxK"),
    (["train", "--sizes", "100", "30", "10"], "the first layer must be 784"),
    (["train", "--sizes", "784", "30", "9"], "the last layer must be 10"),
    (["train", "--sizes", "784"], "at least an input and an output"),
    (["train", "--sizes", "784", "0", "10"], "--sizes: must be at least 1"),
    (["train", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["train", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["train", "--engine", "fast"], "invalid choice: 'fast'"),
    (["train", "--save", "/no/such/folder/m.npz"], "--save: cannot write /no/such/folder/m.npz: folder /no/such/folder does not exist"),
    (["train", "--metrics", "/"], "--metrics: cannot write /: / is a folder"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--layers", "fc:10", "--sizes", "784", "10"], "give --sizes or --layers, not both"),
    (["train", "--eta-decay", "128"], "--eta-decay needs --patience"),
    (["train", "--layers", "conv:20x5x5,pool:2"], "--layers: layers 'conv:20x5x5,pool:2': the last"),
    (["train", "--layers", "fc:30,softmax:9"], "--layers: the output layer must have 10 neurons"),
    (["train", "--layers", "fc:30,fc:10", "--cost", "log-likelihood"], "needs a softmax output"),
    (["train", "--cost", "log-likelihood"], "log-likelihood cost needs a softmax output"),
    (["train", "--dropout", "1"], "--dropout: must be in [0, 1)"),
    (["train", "--momentum", "x"], "--momentum: 'x' is not a number"),
    (["train", "--lmbda", "-5"], "--lmbda: must be a number >= 0"),
    (["train", "--sizes", "784", "10", "--dropout", "0.5"], "dropout thins the inputs of"),
    (["train", "--layers", "fc:10000000000,fc:10"], "too large to fit in memory"),
    (["train", "--activation", "gelu"], "invalid choice: 'gelu'"),
    (["train", "--schedule", "linear"], "invalid choice: 'linear'"),
    (["train", "--warmup", "0.2"], "--warmup is part of the one-cycle and cosine schedules"),
    (["train", "--schedule", "cosine", "--warmup", "1"], "--warmup: must be in [0, 1)"),
    (["train", "--nesterov"], "--nesterov needs --momentum > 0"),
    (["train", "--label-smoothing", "1.5"], "--label-smoothing: must be in [0, 1)"),
    (["train", "--augment-strength", "0.6"],
     "--augment-strength scales the distortions of --augment: give --augment too"),
    (["train", "--augment", "--augment-strength", "3"],
     "--augment-strength: must be in (0, 2]"),
    (["train", "--augment", "--augment-strength", "0"], "--augment-strength: must be in (0, 2]"),
    (["train", "--schedule", "one-cycle", "--patience", "2", "--eta-decay", "4"],
     "--eta-decay halves a constant learning rate, and one-cycle sets its own"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_no_traceback_from_the_real_entry_point(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_text("not a model")
    run = subprocess.run([sys.executable, "-m", "digitnet", "evaluate", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip() == f"digitnet: error: {bad}: not a .npz file, not a digitnet file"


def test_train_save_metrics_evaluate(mnist_dir, tmp_path, capsys):
    model, metrics = tmp_path / "m.npz", tmp_path / "metrics.json"
    code = cli.main(["train", "--epochs", "2", "--sizes", "784", "20", "10", "--seed", "1",
                     "--data-dir", str(mnist_dir), "--save", str(model), "--metrics", str(metrics)])
    out = capsys.readouterr().out
    assert code == 0
    lines = [l for l in out.splitlines() if l.startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  test ")
    report = json.loads(metrics.read_text())
    assert report["config"]["network"]["sizes"] == [784, 20, 10] and report["config"]["eta"] == 3.0
    last = report["epochs"][-1]
    assert last["epoch"] == 2 and last["test_total"] == 10_000 and last["test_accuracy"] > 0.85
    assert f"test {last['test_correct']}/10000" in lines[1]
    best = max(report["epochs"], key=lambda r: r["validation_accuracy"])
    assert f"saved {model} (the weights of epoch {best['epoch']}" in out
    assert cli.main(["evaluate", str(model), "--data-dir", str(mnist_dir)]) == 0
    assert f"test {best['test_correct']}/10000" in capsys.readouterr().out


def test_later_chapter_flags_train_a_model(small_split, tmp_path, capsys):
    """Every later-chapter flag at once, on a 1,200-image slice of the real
    MNIST (conftest.small_split; the accuracy of whole runs is
    test_mnist.py's)."""
    from digitnet import data
    model, metrics = tmp_path / "m.npz", tmp_path / "metrics.json"
    code = cli.main(["train", "--epochs", "2", "--sizes", "784", "30", "10", "--cost",
                     "cross-entropy", "--init", "scaled", "--lmbda", "5", "--eta", "0.5",
                     "--expand", "--monitor-training", "--patience", "1", "--eta-decay", "2",
                     *small_split, "--save", str(model), "--metrics", str(metrics)])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(metrics.read_text())
    config, epochs = report["config"], report["epochs"]
    assert config["n_train"] == 5 * data.N_TRAIN and config["network"]["layers"] == "fc:30,fc:10"
    assert config["network"]["cost"] == "cross-entropy" and config["lmbda"] == 5.0
    assert config["patience"] == 1 and config["eta_decay"] == 2 and config["expand"] is True
    for key in ("test_accuracy", "test_cost", "validation_accuracy", "validation_cost",
                "training_accuracy", "training_cost", "eta", "elapsed"):
        assert key in epochs[0], key
    assert epochs[0]["test_accuracy"] > 0.8 and epochs[0]["training_total"] == 5 * data.N_TRAIN
    best = max(epochs, key=lambda r: r["validation_accuracy"])
    assert f"test accuracy {100 * best['test_accuracy']:.2f}%" in out
    assert cli.main(["evaluate", str(model), *small_split]) == 0
    assert f"test {best['test_correct']}/{best['test_total']}" in capsys.readouterr().out


@pytest.mark.parametrize("flags, trains", [
    (["--lmbda", "0.00"], "training [784, 30, 10] "),
    (["--patience", "3"], "training [784, 30, 10] "),
    (["--init", "large", "--activation", "sigmoid"], "training [784, 30, 10] "),
    (["--cost", "cross-entropy"], "training fc:30,fc:10 (sigmoid, cross-entropy, large init)"),
])
def test_only_architecture_flags_build_a_model(mnist_dir, capsys, flags, trains, monkeypatch):
    """Training options (L2, patience) train the chapter-1 Network too; only
    an architecture different from the book's builds a Model."""
    from digitnet import training
    nets = []

    def fit(run, *args, **kwargs):  # the network and its run, not the training
        nets.append(run.net)
        raise KeyboardInterrupt
    monkeypatch.setattr(training, "fit", fit)
    assert cli.main(["train", *flags, "--data-dir", str(mnist_dir)]) == 130
    assert trains in capsys.readouterr().out
    assert type(nets[0]).__name__ == ("Network" if trains.startswith("training [") else "Model")


def test_evaluate_rejects_a_model_of_the_wrong_shape(mnist_dir, tmp_path, capsys):
    from digitnet import Network, save
    save(Network([5, 3, 2], device="cpu"), tmp_path / "small.npz")
    assert cli.main(["evaluate", str(tmp_path / "small.npz"), "--data-dir", str(mnist_dir)]) == 1
    assert "does not fit 28x28 images" in capsys.readouterr().err


def test_gpu_requested_without_one_is_one_line(tmp_path, capsys):
    from digitnet import backend
    if backend.cupy_or_reason()[0] is not None:
        pytest.skip("a GPU is present here")
    assert cli.main(["train", "--device", "gpu", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitnet: error: --device gpu is not available") and "\n" not in err
