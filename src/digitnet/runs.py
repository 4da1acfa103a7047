"""A long run's safety, for Python and the command line alike (docs/runs.md).

`fit` is training.fit with what a run of hours needs: after every epoch a
checkpoint to `--resume` from and the metrics so far, written atomically;
a write that fails warns once and costs no training; Ctrl-C or SIGTERM
stops after the mini-batch and keeps the finished epochs; at the end the
best epoch's network is saved, and never an untrained one.  `held` keeps a
second run off a running run's files, and `check_new_checkpoint` keeps a
new run from replacing one that is there already.

    run = digitnet.training.Run(net, mini_batch_size=10, eta=3.0, epochs=30)
    files = runs.Files(checkpoint="run.ckpt", metrics="run.json", save="net.npz")
    with runs.held(files.paths()):
        runs.fit(run, training, files, validation_data=validation)

The command line parses its flags into these and prints what they report.
"""

import contextlib
import json
import math
import os
import signal
import sys
from pathlib import Path

from . import checkpoint, files as atomic, signals, training
from .checkpoint import CheckpointError

# The outputs, by their flag's name, as messages name them.
OUTPUTS = {"checkpoint": "the checkpoint", "save": "the model", "metrics": "the metrics"}


class RunError(ValueError):
    """A run refused before it trains; `flag` names the file's option."""

    def __init__(self, flag, message):
        super().__init__(message)
        self.flag = flag


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


class Files:
    """Where a run writes, and the writes' record: a failed write warns
    once (through `warn`), the run goes on, and `summary()` names what is
    not up to date at the end.  `extra` is kept in the checkpoint beside
    the run (the caller's own settings), `about` heads the metrics file."""

    def __init__(self, checkpoint=None, metrics=None, save=None, extra=None, about=None,
                 warn=_stderr, say=print):
        self.checkpoint, self.metrics, self.save = checkpoint, metrics, save
        self.extra, self.about = extra or {}, about or {}
        self.warn, self.say = warn, say
        self.failed = {}    # flag -> (path, why, epoch of the first failure)
        self.warned = set()

    def paths(self):
        """{flag: path} of the outputs given."""
        return {flag: getattr(self, flag) for flag in OUTPUTS if getattr(self, flag)}

    def attempt(self, flag, write, epoch=None):
        """write(); False when it failed, with a warning (once per output)
        after an epoch: the final save's failure is left to summary()."""
        path = getattr(self, flag)
        try:
            write()
        except OSError as exc:
            why = getattr(exc, "why", None) or (exc.strerror or str(exc)).lower()
            first = self.failed.get(flag, (None, None, epoch))[2]
            self.failed[flag] = (path, why, first)
            if epoch and flag not in self.warned:
                self.warned.add(flag)
                self.warn(f"digitnet: warning: cannot write {OUTPUTS[flag]} {path} after epoch "
                          f"{epoch}: {why}; training goes on")
            return False
        self.failed.pop(flag, None)  # written again: up to date
        return True

    def after_epoch(self, run):
        """The checkpoint first (the epoch is safe even if the metrics fail),
        then the metrics, rewritten each epoch so a stopped run keeps its curve."""
        if self.checkpoint:
            self.attempt("checkpoint",
                         lambda: checkpoint.save_run(run, self.checkpoint, self.extra), run.epoch)
        if self.metrics:
            self.attempt("metrics", lambda: write_json(
                self.metrics, {"config": self.about, "epochs": run.history}), run.epoch)

    def save_result(self, run, when=""):
        """Save the network as the run ends: its best validation epoch's
        weights; nothing when no epoch finished, so a good file there is
        never replaced by an untrained one."""
        if not self.save:
            return
        if not run.history:
            self.warn(f"digitnet: no epoch finished; {self.save} left as it was")
            return
        run.use_best()
        if self.attempt("save", lambda: checkpoint.save(run.net, self.save)):
            best = training.best_epoch(run.history)
            self.say(f"saved {self.save} (the weights of epoch {best['epoch']}, the best "
                     f"validation accuracy{', ' + when if when else ''})")

    def finish(self, run, when=""):
        """save_result, then summary(): what is not up to date, or None."""
        self.save_result(run, when)
        return self.summary()

    def summary(self):
        """One line naming every output whose last write failed, or None."""
        if not self.failed:
            return None
        parts = []
        for flag, (path, why, epoch) in self.failed.items():
            since = f" (from epoch {epoch} on)" if epoch else ""
            parts.append(f"{OUTPUTS[flag]} {path}{since}: {why}")
        return "could not write " + "; ".join(parts)


class Stop:
    """Ctrl-C and SIGTERM during training (signals.caught(stop.catch)): ask
    the trainer to stop after its mini-batch.  A second signal stops at once
    (the exception leaves the block, which gives the old handlers back)."""

    def __init__(self):
        self.signal = None

    def catch(self, signum, frame):
        if self.signal is not None:
            if signum == signal.SIGTERM:
                raise SystemExit(143)
            raise KeyboardInterrupt
        self.signal = signum

    def __call__(self):
        return self.signal is not None


def fit(run, training_data, files, *, validation_data=None, test_data=None, epochs=None,
        progress=None, on_epoch=None, finish=True):
    """training.fit with `files` (a Files) written after every epoch and
    Ctrl-C and SIGTERM stopping it after the mini-batch; returns the signal
    that stopped it, or None.  With `finish` the network is saved as the
    run ends, even a diverged one's last good epoch (the Diverged error is
    raised after), and an OSError names any output not up to date; the
    command line finishes itself, to say why first."""
    def after(record, run):
        if on_epoch is not None:
            on_epoch(record, run)
        files.after_epoch(run)

    stop = Stop()
    try:
        with signals.caught(stop.catch):
            training.fit(run, training_data, epochs, validation_data=validation_data,
                         test_data=test_data, progress=progress, on_epoch=after, stop=stop)
    except training.Diverged:
        if finish:
            files.finish(run, "before it diverged")
        raise
    if run.config.test_at_end and run.ended != "interrupted":
        files.after_epoch(run)  # the best epoch's record has its test figures only now
    if finish:
        failed = files.finish(run, "when stopped" if stop.signal else "")
        if failed:
            raise OSError(failed)
    return stop.signal


def finite_json(obj):
    """`obj` with NaN and infinities as None, so the file is standard JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def write_json(path, obj):
    text = json.dumps(finite_json(obj), indent=1, allow_nan=False) + "\n"
    atomic.write_atomic(path, lambda f: f.write(text.encode()))


# Paths: which files are one, where a checkpoint's outputs are kept.

def shared_output(paths):
    """(flag, flag, path) of two outputs that are one file, else None.
    `paths` maps flags to paths; symlinks and hard links count as one."""
    seen = []
    for flag, path in paths.items():
        if path is None:
            continue
        for other, other_path in seen:
            if same_file(path, other_path):
                return other, flag, path
        seen.append((flag, path))
    return None


def same_file(a, b):
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return False


def stored(path, checkpoint, relative):
    """How a checkpoint keeps an output's path: relative to the checkpoint's
    own folder when the user gave it relative (a copied checkpoint then
    writes beside itself), else absolute."""
    path = os.path.abspath(path)
    if not relative or checkpoint is None:
        return path
    return os.path.relpath(path, os.path.dirname(os.path.abspath(checkpoint)))


def restored(value, checkpoint):
    """The path an output kept as `value` in `checkpoint` stands for now."""
    return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(checkpoint)), value))


# One run at a time on a file; no run replaced by a new one.

class Held:
    """A run's files, each locked (files.held) from before it is read or
    written until the block ends, so a second run given one of them is
    refused at once rather than replacing this run's files."""

    def __init__(self, stack):
        self.stack, self.paths = stack, []

    def hold(self, flags):
        """Lock each of {flag: path} not already held; a RunError naming the
        flag when another run holds it."""
        for flag, path in flags.items():
            if path is None or any(same_file(path, p) for p in self.paths):
                continue
            try:
                self.stack.enter_context(atomic.held(path))
            except atomic.Busy as exc:
                raise RunError(flag, str(exc)) from None
            self.paths.append(path)


@contextlib.contextmanager
def held(flags=None):
    """A Held for the block, holding {flag: path} from the start."""
    with contextlib.ExitStack() as stack:
        files = Held(stack)
        files.hold(flags or {})
        yield files


def check_new_checkpoint(path, resume=None):
    """A RunError when a run's checkpoint would replace a file that is there
    already (save for the one it resumes): a forgotten --resume would
    otherwise overwrite a long run with its first epoch."""
    if path is None or not os.path.lexists(path) or (resume and same_file(path, resume)):
        return
    if holds_run(path):
        raise RunError("checkpoint", f"{path} already holds a run; go on with it with "
                                     f"--resume {path}, or remove the file to start a new one")
    raise RunError("checkpoint", f"{path} already exists and is not a run checkpoint; give a "
                                 "new path (the checkpoint is rewritten after every epoch)")


def holds_run(path):
    try:
        with checkpoint.open_archive(path) as arrays:
            return checkpoint.marker(arrays) == checkpoint.RUN_FORMAT
    except (CheckpointError, OSError, ValueError):
        return False
