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
    (["train", "--epochs", "-2"], "--epochs: must be at least 0"),
    (["train", "--sizes", "100", "30", "10"], "the first layer must be 784"),
    (["train", "--sizes", "784", "30", "9"], "the last layer must be 10"),
    (["train", "--sizes", "784"], "at least an input and an output"),
    (["train", "--sizes", "784", "0", "10"], "--sizes: must be at least 1"),
    (["train", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["train", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["train", "--engine", "fast"], "invalid choice: 'fast'"),
    (["train", "--save", "/no/such/folder/m.npz"], "--save: folder /no/such/folder does not exist"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
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
    assert run.stderr.strip() == f"digitnet: error: {bad}: not a .npz file, not a digitnet model"


def test_train_save_metrics_evaluate(mnist_dir, tmp_path, capsys):
    model, metrics = tmp_path / "m.npz", tmp_path / "metrics.json"
    code = cli.main(["train", "--epochs", "2", "--sizes", "784", "20", "10", "--seed", "1",
                     "--data-dir", str(mnist_dir), "--save", str(model), "--metrics", str(metrics)])
    out = capsys.readouterr().out
    assert code == 0
    lines = [l for l in out.splitlines() if l.startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  test ")
    report = json.loads(metrics.read_text())
    assert report["config"]["sizes"] == [784, 20, 10] and report["config"]["eta"] == 3.0
    last = report["epochs"][-1]
    assert last["epoch"] == 2 and last["total"] == 10_000 and last["accuracy"] > 0.85
    assert f"test {last['correct']}/10000" in lines[1]
    assert cli.main(["evaluate", str(model), "--data-dir", str(mnist_dir)]) == 0
    assert f"test {last['correct']}/10000" in capsys.readouterr().out


def test_evaluate_rejects_a_model_of_the_wrong_shape(mnist_dir, tmp_path, capsys):
    from digitnet import Network
    Network([5, 3, 2], device="cpu").save(tmp_path / "small.npz")
    assert cli.main(["evaluate", str(tmp_path / "small.npz"), "--data-dir", str(mnist_dir)]) == 1
    assert "do not fit 28x28 images" in capsys.readouterr().err


def test_gpu_requested_without_one_is_one_line(tmp_path, capsys):
    from digitnet import backend
    if backend._cupy_or_reason()[0] is not None:
        pytest.skip("a GPU is present here")
    assert cli.main(["train", "--device", "gpu", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitnet: error: --device gpu is not available") and "\n" not in err
