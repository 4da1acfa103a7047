"""Long runs against faults: a real full disk, copied checkpoints, outputs
that share a file, hostile and hand-damaged files, signals at any moment,
leftovers of a killed write, broken pipes (issue 18; docs/runs.md)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from digitnet import Network, checkpoint, cli, files, training
from digitnet.checkpoint import CheckpointError


def env(data_dir=None):
    extra = {"DIGITNET_DATA": str(data_dir)} if data_dir else {}
    return dict(os.environ, PYTHONUNBUFFERED="1", **extra)


def digitnet(*args, data_dir=None, **kwargs):
    """`python -m digitnet ARGS`, started."""
    return subprocess.Popen([sys.executable, "-m", "digitnet", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(data_dir), **kwargs)


def main(*argv):
    """cli.main's exit status, argparse's SystemExit included."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


# --- a real full disk --------------------------------------------------------

@pytest.fixture
def disk(tmp_path):
    """A 1 MiB tmpfs, mounted for the test (root on Linux; CI is)."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): "
                    "the full-disk tests need root on Linux")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder):
    """Fill the file system of `folder` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_full_disk_error_names_the_file(disk):
    fill(disk)
    with pytest.raises(files.WriteError) as err:
        checkpoint.save(Network([784, 30, 10], device="cpu"), disk / "model.npz")
    assert str(err.value) == f"cannot write {disk / 'model.npz'}: no space left on device"
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no temporary file left


def test_a_disk_that_fills_mid_run_costs_no_training(mnist_dir, disk, tmp_path):
    """The checkpoint and metrics live on a disk that fills after epoch 1:
    each warns once, training goes on, --save (elsewhere) gets the run's
    result, and the exit is 1 with one line naming what was not written."""
    ckpt, metrics, model = disk / "run.ckpt", disk / "run.json", tmp_path / "model.npz"
    p = digitnet("train", "--epochs", 4, "--sizes", 784, 10, "--checkpoint", ckpt,
                 "--metrics", metrics, "--save", model, data_dir=mnist_dir)
    deadline = time.monotonic() + 120
    while not metrics.exists():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.005)
    fill(disk)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    kept = json.loads(metrics.read_text())["epochs"]  # the last good file, still whole
    first = len(kept) + 1  # the first epoch whose writes failed
    assert 2 <= first <= 4, (out, err)
    full = "no space left on device"
    assert err.splitlines() == [
        f"digitnet: warning: cannot write the checkpoint {ckpt} after epoch {first}: {full}; "
        "training goes on",
        f"digitnet: warning: cannot write the metrics {metrics} after epoch {first}: {full}; "
        "training goes on",
        f"digitnet: error: could not write the checkpoint {ckpt} (from epoch {first} on): "
        f"{full}; the metrics {metrics} (from epoch {first} on): {full}"]
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == \
        ["1/4", "2/4", "3/4", "4/4"]
    assert f"saved {model} (the weights of epoch" in out
    assert checkpoint.load_run(ckpt, device="cpu")[0].epoch == len(kept)
    assert checkpoint.load(model, device="cpu").sizes == [784, 10]
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "run.ckpt", "run.json"]


def test_a_disk_full_from_the_start_loses_no_file_and_says_so(mnist_dir, disk, capsys):
    fill(disk)
    model = disk / "model.npz"
    code = main("train", "--epochs", 2, "--sizes", 784, 10, "--checkpoint", disk / "r.ckpt",
                "--metrics", disk / "r.json", "--save", model, "--data-dir", mnist_dir)
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.splitlines()
    assert len(lines) == 3 and all("no space left on device" in line for line in lines)
    assert lines[0].startswith(f"digitnet: warning: cannot write the checkpoint {disk}/r.ckpt")
    assert lines[1].startswith(f"digitnet: warning: cannot write the metrics {disk}/r.json")
    assert lines[2] == (f"digitnet: error: could not write the checkpoint {disk}/r.ckpt (from "
                        "epoch 1 on): no space left on device; the metrics "
                        f"{disk}/r.json (from epoch 1 on): no space left on device; the model "
                        f"{model}: no space left on device")
    assert "epoch 2/2" in captured.out and "saved" not in captured.out
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


# --- where a resumed run writes ---------------------------------------------

def run_in(folder, monkeypatch, *argv):
    monkeypatch.chdir(folder)
    return main("train", *argv)


def test_a_copied_checkpoint_writes_beside_itself(mnist_dir, tmp_path, monkeypatch, capsys):
    a, b, elsewhere = tmp_path / "a", tmp_path / "b", tmp_path / "elsewhere"
    for folder in (a, b / "ckpts", elsewhere):
        folder.mkdir(parents=True)
    data = ["--data-dir", mnist_dir, "--sizes", 784, 10]
    assert run_in(a, monkeypatch, "--epochs", 1, "--checkpoint", "ckpts/run.ckpt", "--save",
                  "model.npz", "--metrics", "out/run.json", *data) == 2  # no ckpts/ yet
    (a / "ckpts").mkdir(), (a / "out").mkdir(), (b / "out").mkdir()
    assert run_in(a, monkeypatch, "--epochs", 1, "--checkpoint", "ckpts/run.ckpt", "--save",
                  "model.npz", "--metrics", "out/run.json", *data) == 0
    before = {p: p.read_bytes() for p in a.rglob("*") if p.is_file()}
    state = json.loads(str(np.load(a / "ckpts" / "run.ckpt")["state"]))
    assert state["extra"]["save"] == "../model.npz"  # relative to the checkpoint's folder
    assert state["extra"]["metrics"] == "../out/run.json"
    shutil.copy(a / "ckpts" / "run.ckpt", b / "ckpts" / "run.ckpt")
    capsys.readouterr()
    assert run_in(elsewhere, monkeypatch, "--resume", b / "ckpts" / "run.ckpt", "--epochs", 2,
                  "--data-dir", mnist_dir) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (f"writing the checkpoint to {b}/ckpts/run.ckpt, the model to "
                      f"{b}/model.npz, the metrics to {b}/out/run.json")
    assert out[2].startswith("epoch 2/2")  # said before it trained
    assert {p: p.read_bytes() for p in a.rglob("*") if p.is_file()} == before
    assert list(elsewhere.iterdir()) == []
    assert checkpoint.load_run(b / "ckpts" / "run.ckpt", device="cpu")[0].epoch == 2
    assert [r["epoch"] for r in json.loads((b / "out" / "run.json").read_text())["epochs"]] \
        == [1, 2]
    assert checkpoint.load(b / "model.npz", device="cpu").sizes == [784, 10]


def test_absolute_paths_and_older_checkpoints_write_where_they_say(mnist_dir, tmp_path,
                                                                    monkeypatch, capsys):
    """An absolute path stays absolute, as every path did in checkpoints
    written before relative ones were kept relative: those still resume,
    into the folder they name."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert run_in(a, monkeypatch, "--epochs", 1, "--sizes", 784, 10, "--checkpoint", "r.ckpt",
                  "--save", a / "model.npz", "--metrics", "r.json", "--data-dir", mnist_dir) == 0
    stored = dict(np.load(a / "r.ckpt"))
    state = json.loads(str(stored["state"]))
    assert state["extra"]["save"] == str(a / "model.npz") and state["extra"]["metrics"] == "r.json"
    state["extra"]["metrics"] = str(a / "r.json")  # as an older digitnet wrote it
    stored["state"] = np.array(json.dumps(state))
    with open(b / "r.ckpt", "wb") as f:
        np.savez(f, **stored)
    (a / "model.npz").unlink()
    capsys.readouterr()
    assert run_in(b, monkeypatch, "--resume", "r.ckpt", "--epochs", 2, "--data-dir",
                  mnist_dir) == 0
    assert f"the model to {a}/model.npz, the metrics to {a}/r.json" in capsys.readouterr().out
    assert sorted(p.name for p in b.iterdir()) == ["r.ckpt"]
    assert len(json.loads((a / "r.json").read_text())["epochs"]) == 2


@pytest.mark.parametrize("argv, pair", [
    (["--checkpoint", "{d}/x.npz", "--save", "{d}/x.npz"], "--checkpoint and --save"),
    (["--checkpoint", "{d}/x", "--metrics", "{d}/./x"], "--checkpoint and --metrics"),
    (["--save", "x", "--metrics", "{d}/x"], "--save and --metrics"),
    (["--save", "{d}/link", "--metrics", "{d}/x"], "--save and --metrics"),      # a symlink
    (["--checkpoint", "{d}/hard", "--save", "{d}/x"], "--checkpoint and --save"),  # a hard link
    (["--resume", "{d}/r.ckpt", "--save", "{d}/r.ckpt"], "--checkpoint and --save"),
    (["--resume", "{d}/r.ckpt", "--checkpoint", "{d}/kept.json"], "--checkpoint and --metrics"),
])
def test_two_outputs_in_one_file_are_refused(tmp_path, monkeypatch, capsys, argv, pair):
    """One line, exit 2, before any data loads (there is none here), for
    every pair and every spelling; on a resume, after the kept paths resolve."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "x")
    os.link(tmp_path / "x", tmp_path / "hard")
    run = training.Run(Network([784, 10], device="cpu"), mini_batch_size=10, eta=3.0)
    checkpoint.save_run(run, tmp_path / "r.ckpt", {"metrics": "kept.json"})
    argv = [a.format(d=tmp_path) for a in argv]
    assert main("train", *argv, "--epochs", 2, "--data-dir", tmp_path / "none") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"digitnet: error: {pair} are the same file, ") and \
        err.endswith(": give each output its own path\n") and err.count("\n") == 1, err


# --- loading allocates no more than the declared shapes ---------------------

def npy_header(shape, dtype):
    import io
    from numpy.lib import format as npy
    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": npy.dtype_to_descr(np.dtype(dtype)),
                                        "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def write_npz(path, arrays, huge=None):
    """An .npz (compressed) of `arrays`, plus `huge`: name -> (shape, dtype)
    written as a header and zeros streamed through zlib, never held."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a))
        for name, (shape, dtype) in (huge or {}).items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                f.write(npy_header(shape, dtype))
                left, chunk = int(np.prod(shape)) * np.dtype(dtype).itemsize, b"\0" * (1 << 20)
                while left > 0:
                    f.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)


def peak_while(call):
    """(exception raised or None, peak bytes NumPy and Python allocated)."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


def network_arrays(net, fmt="digitnet-network"):
    arrays = checkpoint.network_arrays(net)
    arrays["format"] = np.array(fmt)
    return arrays


MB = 1 << 20


@pytest.mark.parametrize("name, shape, dtype, message", [
    ("weights_0", (30, 784 * 500), "float32", "weights_0 has shape (30, 392000), but the "
                                              "network's description needs (30, 784)"),
    ("biases_1", (10, 625_000), "float64", "biases_1 has shape (10, 625000)"),
    ("weights_1", (10, 30, 40_000), "int32", "weights_1 holds int32 values, not floats"),
    ("model", (), "U12500000", "model holds 50000000 bytes, more than the 1048576"),
])
def test_a_small_file_cannot_make_load_allocate_much(tmp_path, name, shape, dtype, message):
    """Each file is under 200 kB; the array it announces is 50 MB.  It is
    refused from its header: the peak stays near the real network's size,
    where reading first (the old code) allocated the 50 MB."""
    arrays = network_arrays(Network([784, 30, 10], device="cpu"))
    del arrays[name]
    path = tmp_path / "m.npz"
    write_npz(path, arrays, {name: (shape, dtype)})
    assert path.stat().st_size < 200_000
    raised, peak = peak_while(lambda: checkpoint.load(path, device="cpu"))
    assert isinstance(raised, CheckpointError) and message in str(raised), raised
    assert peak < 2 * MB, peak


def test_evaluate_refuses_a_network_of_other_inputs_before_reading_it(tmp_path, capsys):
    """Declared and stored alike, but [78400, 100, 10] does not read 28x28
    digits: refused from the description, its 31 MB never read."""
    path = tmp_path / "m.npz"
    arrays = {"format": np.array("digitnet-network"), "version": np.array(1),
              "dtype": np.array("float32"), "sizes": np.array([78400, 100, 10])}
    write_npz(path, arrays, {"weights_0": ((100, 78400), "float32"), "biases_0": ((100, 1), "f4"),
                             "weights_1": ((10, 100), "float32"), "biases_1": ((10, 1), "f4")})
    raised, peak = peak_while(lambda: cli.main(["evaluate", str(path)]))
    assert raised is None and peak < 2 * MB, peak
    assert capsys.readouterr().err == (f"digitnet: error: {path}: a network of 78400 inputs "
                                       "and 10 outputs does not fit 28x28 images in 10 classes\n")


def test_an_array_shorter_than_its_header_is_refused_before_it_is_read(tmp_path):
    arrays = network_arrays(Network([784, 30, 10], device="cpu"))
    path = tmp_path / "m.npz"
    write_npz(path, {k: v for k, v in arrays.items() if k != "weights_0"})
    with zipfile.ZipFile(path, "a") as zf:  # the right header, a tenth of the data
        zf.writestr("weights_0.npy", npy_header((30, 784), "float32") + b"\0" * 9408)
    with pytest.raises(CheckpointError, match=r"weights_0 holds 9408 bytes of data, but its "
                                              r"header announces 94080"):
        checkpoint.load(path, device="cpu")


# --- every field of a run's state -------------------------------------------

@pytest.fixture(scope="module")
def run_file(tmp_path_factory, mnist):
    """A real run's checkpoint: two epochs of momentum SGD with validation."""
    training_set, validation, test = mnist
    run = training.Run(Network([784, 10], seed=1, device="cpu"), mini_batch_size=10, eta=3.0,
                       momentum=0.5, patience=3)
    training.fit(run, training_set[:500], 2, validation_data=validation[:200],
                 test_data=test[:200])
    path = tmp_path_factory.mktemp("run") / "good.ckpt"
    checkpoint.save_run(run, path, {"epochs": 5, "dataset": "mnist", "expand": False,
                                    "monitor_training": False, "save": "m.npz",
                                    "metrics": None})
    return path


def damaged(run_file, tmp_path, change=None, arrays=None):
    stored = dict(np.load(run_file))
    state = json.loads(str(stored["state"]))
    if change:
        change(state)
    stored["state"] = np.array(json.dumps(state))
    if arrays:
        arrays(stored)
    path = tmp_path / "bad.ckpt"
    with open(path, "wb") as f:
        np.savez(f, **stored)
    return path


def inside(state, path):
    """(the dict or list that holds state's dotted `path`, its last key)."""
    *outer, key = [int(k) if k.isdigit() else k for k in path.split(".")]
    for part in outer:
        state = state[part]
    return state, key


def put(path, value):
    """A change that sets the state's dotted `path` to value."""
    def change(state):
        holder, key = inside(state, path)
        holder[key] = value
    return change


def drop(path):
    def change(state):
        holder, key = inside(state, path)
        del holder[key]
    return change


STATE_CASES = [  # the three first, then the rest of the family
    (put("history", [1, 2]), "state: history[0] is 1, not an epoch's record"),
    (put("extra.save", 5), "state: extra.save must be null or a path, got 5"),
    (put("best", {"epoch": 1}), "state: best must be one of the history's validated epochs"),
    (put("eta", -1), "state: eta must be a positive number, got -1"),
    (put("eta", "3"), "state: eta must be a positive number, got '3'"),
    (put("eta", float("inf")), "state: eta must be a positive number, got inf"),
    (put("eta", 100.0), "state: eta 100.0 is above the run's starting eta 3.0"),
    (put("epoch", -1), "state: epoch must be a whole number >= 0, got -1"),
    (put("epoch", 1.5), "state: epoch must be a whole number >= 0, got 1.5"),
    (put("epoch", True), "state: epoch must be a whole number >= 0, got True"),
    (put("epoch", 3), "state: history holds 2 epochs, but epoch is 3"),
    (put("since", -1), "state: since must be a whole number >= 0, got -1"),
    (put("since", 7), "state: since must be at most epoch (2), got 7"),
    (put("ended", "exploded"), "state: ended must be null or one of patience, schedule"),
    (put("rng", {}), "state: rng must be a PCG64 generator state, got {}"),
    (put("rng", 5), "state: rng must be a PCG64 generator state, got 5"),
    (put("rng.state.state", "x"), "state: rng must be a PCG64 generator state"),
    (put("seed", -1), "state: seed must be null or a whole number >= 0, got -1"),
    (put("seed", "x"), "state: seed must be null or a whole number >= 0, got 'x'"),
    (put("history", "x"), "state: history must be a list of epoch records, got 'x'"),
    (put("history.0.epoch", 2), "state: history[0] has epoch 2, expected 1"),
    (put("history.1.test_cost", float("nan")), "state: history[1] has test_cost = nan, not a "
                                               "finite number"),
    (put("history.1.test_accuracy", 2), "state: history[1] has test_accuracy = 2, not in [0, 1]"),
    (put("history.1.test_correct", 201), "state: history[1] has test_correct = 201, more than"),
    (put("history.0.elapsed", "1s"), "state: history[0] has elapsed = '1s', not a finite"),
    (drop("history.0.eta"), "state: history[0] has no eta"),
    (put("best", []), "state: best must be null or an epoch's record, got []"),
    (put("best", None), "state: best is null, but the history has validation accuracies"),
    (put("settings", []), "state: settings must be a JSON object, got []"),
    (put("settings.mini_batch_size", 0), "state: settings.mini_batch_size must be a whole "
                                         "number >= 1, got 0"),
    (put("settings.mini_batch_size", True), "settings.mini_batch_size must be a whole number"),
    (put("settings.eta", 0), "state: settings.eta must be a positive number, got 0"),
    (put("settings.lmbda", -1), "state: settings.lmbda must be a number >= 0, got -1"),
    (put("settings.momentum", 1), "state: settings.momentum must be a number in [0, 1), got 1"),
    (put("settings.patience", 0), "state: settings.patience must be null or a whole number >= 1"),
    (put("settings.eta_decay", 1), "state: settings.eta_decay must be null or a number > 1"),
    (put("settings.engine", "warp"), "state: settings.engine must be one of"),
    (put("settings.augment", "no"), "state: settings.augment must be true or false, got 'no'"),
    (drop("settings.lmbda"), "state: settings.lmbda is missing"),
    (put("settings.lr", 0.1), "state: settings.lr is not a setting of a run"),
    (put("extra", []), "state: extra must be a JSON object, got []"),
    (put("extra.metrics", ""), "state: extra.metrics must be null or a path, got ''"),
    (put("extra.save", "m\0.npz"), "state: extra.save must be null or a path, got 'm\\x00.npz'"),
    (put("extra.epochs", "5"), "state: extra.epochs must be a whole number >= 1, got '5'"),
    (put("extra.dataset", "cifar"), "state: extra.dataset must be one of mnist, fashion-mnist"),
    (put("extra.expand", "yes"), "state: extra.expand must be true or false, got 'yes'"),
    (put("extra.monitor_training", 1), "state: extra.monitor_training must be true or false"),
] + [(drop(key), f"state: {key} is missing") for key in (
    "epoch", "eta", "since", "ended", "rng", "history", "best", "settings", "seed", "extra")]


@pytest.mark.parametrize("change, message", STATE_CASES)
def test_every_field_of_a_hand_damaged_state_is_one_line(run_file, tmp_path, change, message,
                                                         capsys):
    path = damaged(run_file, tmp_path, change)
    assert main("train", "--resume", path, "--epochs", 9, "--data-dir", tmp_path / "none") == 1
    err = capsys.readouterr().err
    assert err == f"digitnet: error: {path}: {err.split(': ', 3)[-1]}"  # one line, no traceback
    assert err.count("\n") == 1 and message in err, err


def test_several_bad_fields_are_a_line_each(run_file, tmp_path, capsys):
    def change(state):
        state["eta"], state["history"], state["settings"]["engine"] = -1, [1, 2], "warp"
    path = damaged(run_file, tmp_path, change)
    assert main("train", "--resume", path, "--epochs", 9) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": state: ")[1] for line in err] == ["eta must be a positive number, got -1",
                                                     "history[0] is 1, not an epoch's record",
                                                     "settings.engine must be one of batched, "
                                                     "per-example, got 'warp'"]
    assert all(line.startswith(f"digitnet: error: {path}: state: ") for line in err)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("velocity_w_0"), "missing array 'velocity_w_0'"),
    (lambda a: a.update(velocity_b_0=np.zeros((3, 1), np.float32)), "velocity_b_0 has shape (3, 1)"),
    (lambda a: a.pop("best_biases_0"), "missing array 'best_biases_0'"),
    (lambda a: a.update(best_weights_0=np.full((10, 784), np.nan, np.float32)),
     "best_weights_0 holds NaN or infinite values"),
    (lambda a: a.update(state=np.array(["{}"])), "the run's state is not a string"),
    (lambda a: a.update(state=np.array("[1, ")), "the run's state is not valid JSON"),
    (lambda a: a.update(state=np.array("[1]")), "the run's state is [1], not a JSON object"),
    (lambda a: a.pop("state"), "missing array 'state'"),
])
def test_the_arrays_a_run_restores_are_checked_too(run_file, tmp_path, change, message):
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_run(damaged(run_file, tmp_path, arrays=change), device="cpu")
    assert len(err.value.lines) == 1 and message in str(err.value), err.value


def test_the_good_checkpoint_and_older_ones_still_load(run_file, tmp_path):
    run, extra = checkpoint.load_run(run_file, device="cpu")
    assert run.epoch == 2 and extra["save"] == "m.npz" and run.config.momentum == 0.5
    old = damaged(run_file, tmp_path, drop("settings.augment"))  # from before --augment
    assert checkpoint.load_run(old, device="cpu")[0].config.augment is False


# --- Ctrl-C at any moment ---------------------------------------------------

def entry(*args, data_dir=None):
    """The console script's own code, with -X importtime: each finished
    import is a stderr line, so the test knows how far the start has got."""
    script = "import sys; from digitnet.__main__ import run; sys.exit(run())"
    return subprocess.Popen([sys.executable, "-X", "importtime", "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(data_dir))


def signal_after(p, module, signum):
    """Send `signum` once the import of `module` (NumPy 1's name too) has
    finished; the stderr lines that are not import times, and the exit status."""
    names = {module, module.replace("numpy._core", "numpy.core")}
    for line in p.stderr:
        if line.startswith("import time:") and line.rstrip().split("|")[-1].strip() in names:
            p.send_signal(signum)
            break
    else:
        pytest.fail(f"{module} was never imported")
    out, err = p.communicate(timeout=60)
    return [l for l in err.splitlines() if not l.startswith("import time:")], p.returncode, out


@pytest.mark.parametrize("module, signum, code, line", [
    ("numpy._core.multiarray", signal.SIGINT, 130, "digitnet: interrupted"),  # inside numpy
    ("digitnet.checkpoint", signal.SIGINT, 130, "digitnet: interrupted"),
    ("digitnet.cli", signal.SIGINT, 130, "digitnet: interrupted"),  # parsing, loading data
    ("numpy._core.multiarray", signal.SIGTERM, 143, "digitnet: SIGTERM: stopped"),
])
def test_a_signal_while_starting_is_one_line(mnist_dir, tmp_path, module, signum, code, line):
    p = entry("train", "--save", tmp_path / "m.npz", data_dir=mnist_dir)
    err, returncode, out = signal_after(p, module, signum)
    assert (returncode, err) == (code, [line]), out
    assert list(tmp_path.iterdir()) == []


# --- leftovers of a killed write --------------------------------------------

def test_leftovers_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "run.ckpt"
    writer = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from digitnet import files
def write(f):
    f.write(b"half a checkpoint"); f.flush(); print("writing", flush=True); time.sleep(60)
files.write_atomic({str(target)!r}, write)
"""], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.kill()  # kill -9 mid-write
    writer.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".run.ckpt.digitnet-{writer.pid}-")
    theirs = [".run.ckpt.backup.tmp", ".run.ckpt.abcd1234.tmp", ".run.ckpt.digitnet-1-abcd1234.tmp",
              f".run.ckpt.digitnet-{os.getpid()}-abcd1234.tmp", f".run.ckpt.x.digitnet-{writer.pid}-abcd1234.tmp",
              f".other.digitnet-{writer.pid}-abcd1234.tmp", "run.ckpt.digitnet.tmp"]
    for name in theirs:  # a user's, a running process's (pid 1, ours), another target's
        (tmp_path / name).write_text("keep me")
    files.write_atomic(target, lambda f: f.write(b"whole"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs + ["run.ckpt"])
    assert target.read_bytes() == b"whole"


# --- the small ones ---------------------------------------------------------

def test_a_bare_digitnet_lists_its_commands():
    p = digitnet()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and err == ""
    for command in ("train", "evaluate", "download", "predict", "plot", "perceptron", "info",
                    "serve"):
        assert f"\n    {command} " in out, command


@pytest.mark.parametrize("argv", [["train", "--eta", "-1"], ["evaluate"], ["plot", "curves", "r.json"],
                                  ["predict", "m.npz"], ["info", "--bogus"], ["serve"],
                                  ["download", "--dataset", "cifar"], ["frobnicate"],
                                  ["train", "--save", "/no/such/folder/m.npz"],
                                  ["evaluate", "missing.npz"]])
def test_every_error_has_the_one_prefix(argv, capsys):
    assert main(*argv) in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, code", [(["info", "--json"], 141), (["perceptron"], 141),
                                        (["--help"], 0)])  # argparse's help ignores it
def test_a_reader_that_stops_early_is_no_error(argv, code):
    """`digitnet info --json | head`: the reader is gone before the first
    line; no message, and 141 as for any command killed by SIGPIPE."""
    p = digitnet(*argv)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == code and err == ""


def test_an_empty_split_names_the_file_and_why(mnist_dir, tmp_path, capsys):
    import gzip
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / "mnist" / name, folder / name)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(np.array([2051, 0, 28, 28], ">i4").tobytes())  # no images
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(np.array([2049, 0], ">i4").tobytes())
    assert main("train", "--data-dir", tmp_path) == 1
    assert capsys.readouterr().err == (
        f"digitnet: error: {folder}/train-images-idx3-ubyte.gz: holds 0 images; the book's "
        "split needs more than 50,000 (the first 50,000 train, the rest validate)\n")


def test_a_reader_gone_mid_run_costs_no_training(mnist_dir, tmp_path):
    """`digitnet train ... | head -1`: the epochs go on, quietly, to the end."""
    ckpt = tmp_path / "r.ckpt"
    p = digitnet("train", "--epochs", 3, "--sizes", 784, 10, "--checkpoint", ckpt,
                 data_dir=mnist_dir)
    assert p.stdout.readline().startswith("training [784, 10]")
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0 and err == ""
    assert checkpoint.load_run(ckpt, device="cpu")[0].epoch == 3
