"""No run lost by mistake (docs/runs.md): a new run never replaces a
checkpoint that is there already, a second run on a running run's files is
refused at once, and legal long names work while too-long ones are one
line naming the flag."""

import os
import subprocess
import sys

import pytest

from digitnet import checkpoint, cli, files

DATA_FREE = ["--data-dir", "/nonexistent-digitnet-data"]  # refusals come before the data


def refused(capsys, *args):
    """(exit status, the one stderr line) of `digitnet train ARGS`."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", *map(str, args)])
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return exit_.value.code, err.strip()


@pytest.fixture(scope="module")
def a_run(small_mnist_dir, tmp_path_factory):
    """A finished two-epoch run's checkpoint, made once."""
    from digitnet import data
    folder = tmp_path_factory.mktemp("a-run")
    ckpt = folder / "run.ckpt"
    old, data.N_TRAIN = data.N_TRAIN, 1000
    try:
        assert cli.main(["train", "--epochs", "2", "--sizes", "784", "10", "--checkpoint",
                         str(ckpt), "--data-dir", str(small_mnist_dir)]) == 0
    finally:
        data.N_TRAIN = old
    return ckpt


def test_a_new_run_refuses_a_checkpoint_holding_a_run(a_run, tmp_path, capsys):
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(a_run.read_bytes())
    code, line = refused(capsys, "--checkpoint", ckpt, *DATA_FREE)
    assert code == 2
    assert line == (f"digitnet: error: --checkpoint: {ckpt} already holds a run; go on with it "
                    f"with --resume {ckpt}, or remove the file to start a new one")
    assert ckpt.read_bytes() == a_run.read_bytes()


def test_a_new_run_refuses_any_file_already_there(tmp_path, capsys):
    for name, content in (("notes.txt", b"mine"), ("model.npz", None)):
        path = tmp_path / name
        if content is None:
            from digitnet import Network
            Network([784, 3, 10], seed=0).save(path)
        else:
            path.write_bytes(content)
        before = path.read_bytes()
        code, line = refused(capsys, "--checkpoint", path, *DATA_FREE)
        assert code == 2 and "already exists and is not a run checkpoint" in line
        assert path.read_bytes() == before


def test_a_resumed_run_may_not_checkpoint_over_another_run(a_run, tmp_path, capsys):
    other = tmp_path / "other.ckpt"
    other.write_bytes(a_run.read_bytes())
    code, line = refused(capsys, "--resume", a_run, "--epochs", 3, "--checkpoint", other,
                         *DATA_FREE)
    assert code == 2 and f"--checkpoint: {other} already holds a run" in line


def test_a_resumed_run_writes_its_own_checkpoint(a_run, small_split, tmp_path, capsys):
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(a_run.read_bytes())
    assert cli.main(["train", "--resume", str(ckpt), "--epochs", "3", *small_split]) == 0
    assert checkpoint.load_run(ckpt, device="cpu")[0].epoch == 3


@pytest.mark.parametrize("flag", ["--checkpoint", "--save", "--metrics"])
def test_a_second_run_on_a_running_runs_outputs_is_refused(flag, tmp_path, capsys):
    """The lock another run holds (here this process's, which flock tells
    apart from the command's as it would another process's)."""
    path = tmp_path / "out"
    with files.held(path):
        code, line = refused(capsys, flag, path, *DATA_FREE)
    assert code == 2
    assert line == (f"digitnet: error: {flag}: {path} is being written by another digitnet "
                    f"run (process {os.getpid()}); wait for it to end, or give another path")
    assert not path.exists()


def test_a_run_being_resumed_is_locked_too(a_run, capsys):
    with files.held(a_run):
        code, line = refused(capsys, "--resume", a_run, "--epochs", 3, *DATA_FREE)
    assert code == 2 and line.startswith(f"digitnet: error: --resume: {a_run} is being written")


def test_the_lock_goes_with_the_process_however_it_ends(tmp_path, capsys):
    """A real second process holds the lock; kill -9 frees it."""
    path = tmp_path / "model.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from digitnet import files\n"
         f"with files.held({str(path)!r}):\n print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        code, line = refused(capsys, "--save", path, *DATA_FREE)
        assert f"(process {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()
    lock = tmp_path / ".model.npz.digitnet.lock"
    assert lock.exists()  # left by kill -9, and no obstacle:
    with files.held(path):
        pass
    assert not lock.exists()


def test_links_to_one_file_share_its_lock(tmp_path):
    target = tmp_path / "real.npz"
    (tmp_path / "link.npz").symlink_to(target)
    with files.held(target):
        with pytest.raises(files.Busy):
            with files.held(tmp_path / "link.npz"):
                pass


@pytest.mark.parametrize("flag", ["--save", "--checkpoint", "--metrics"])
def test_a_legal_long_name_is_written(flag, small_split, tmp_path, capsys):
    """250 characters: legal, though the temporary file beside it would
    not be if it carried the name whole."""
    path = tmp_path / ("x" * 246 + ".npz")
    assert cli.main(["train", "--epochs", "1", "--sizes", "784", "10", flag, str(path),
                     *small_split]) == 0
    assert path.is_file() and sorted(os.listdir(tmp_path)) == [path.name]


@pytest.mark.parametrize("flag", ["--save", "--checkpoint", "--metrics"])
def test_a_name_too_long_is_one_line_naming_the_flag(flag, tmp_path, capsys):
    path = tmp_path / ("y" * 300)
    code, line = refused(capsys, flag, path, *DATA_FREE)
    assert code == 2
    assert line == (f"digitnet: error: {flag}: cannot write {path}: the file name is 300 bytes "
                    "long; the most here is 255")


def test_a_lock_file_removed_while_locking_is_not_trusted(tmp_path, monkeypatch):
    """The holder before us removes the lock file between our open and our
    flock: the lock we then get is on a file nobody else will open, so
    held() must lock the path's file anew or a third run gets in too."""
    import fcntl
    real_flock, calls = fcntl.flock, []

    def flock(fd, operation):
        if not calls:
            os.unlink(tmp_path / ".out.digitnet.lock")  # the holder ends, just now
        calls.append(fd)
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with files.held(tmp_path / "out"):
        monkeypatch.setattr(fcntl, "flock", real_flock)
        with pytest.raises(files.Busy):
            with files.held(tmp_path / "out"):
                pass
    assert len(calls) == 2


@pytest.mark.parametrize("args", [["train", "--resume", "{long}"], ["evaluate", "{long}"],
                                  ["train", "--data-dir", "{long}"],
                                  ["predict", "{model}", "{long}"]])
def test_an_input_name_too_long_is_one_line(args, trained_model, tmp_path, capsys):
    """The system's reason in words after the name, not '[Errno 36] ...'."""
    long = str(tmp_path / ("z" * 300))
    argv = [a.format(long=long, model=trained_model) for a in args]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"digitnet: error: {long}") and err.count("\n") == 1
    assert err.endswith(": file name too long\n") and "Errno" not in err
