"""The long-run rules of `digitnet train` (docs/runs.md): where a resumed
run writes, outputs that may not share a file, writes that fail without
costing the training, and Ctrl-C or SIGTERM in the middle of an epoch.
"""

import contextlib
import os
import signal
import sys
from pathlib import Path

from . import checkpoint, files, training
from .checkpoint import CheckpointError
from .cliargs import check_output_path
from .data import DATASETS
from .config import show
from .runstate import whole

# The outputs, by their flag's name, as messages name them.
OUTPUTS = {"checkpoint": "the checkpoint", "save": "the model", "metrics": "the metrics"}
# The command's settings a checkpoint keeps (its `extra`), and their checks.
EXTRA = {
    "epochs": (lambda v: whole(v, 1), "a whole number >= 1"),
    "dataset": (lambda v: v in DATASETS, "one of " + ", ".join(DATASETS)),
    "expand": (lambda v: isinstance(v, bool), "true or false"),
    "monitor_training": (lambda v: isinstance(v, bool), "true or false"),
    "save": (lambda v: v is None or a_path(v), "null or a path"),
    "metrics": (lambda v: v is None or a_path(v), "null or a path"),
}


def a_path(value):
    return isinstance(value, str) and value != "" and "\0" not in value


def check_extra(path, extra):
    """A CheckpointError, one line per bad field, when the command's own
    settings in a checkpoint are not what `train` wrote."""
    bad = [f"{path}: state: extra.{key} must be {what}, got {show(extra[key])}"
           for key, (ok, what) in EXTRA.items() if key in extra and not ok(extra[key])]
    if bad:
        raise CheckpointError(*bad)


def check_outputs(args, parser):
    """Each output writable, and no two of them one file (a checkpoint saved
    over by the model could not be resumed; metrics saved over are lost)."""
    outputs = {f"--{key}": getattr(args, key) for key in OUTPUTS}
    for flag, path in outputs.items():
        check_output_path(parser, flag, path)
    shared = shared_output(outputs)
    if shared:
        parser.error(f"{shared[0]} and {shared[1]} are the same file, {shared[2]}: "
                     "give each output its own path")


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


class Held:
    """The run's files, each locked (files.held) from before it is read or
    written until the command ends, so a second run given one of them is
    refused at once rather than replacing this run's files."""

    def __init__(self, stack):
        self.stack, self.paths = stack, []

    def hold(self, parser, flags):
        """Lock each of {flag: path} not already held; a parser error naming
        the flag when another run holds it."""
        for flag, path in flags.items():
            if path is None or any(same_file(path, p) for p in self.paths):
                continue
            try:
                self.stack.enter_context(files.held(path))
            except files.Busy as exc:
                parser.error(f"--{flag}: {exc}")
            self.paths.append(path)


@contextlib.contextmanager
def held():
    with contextlib.ExitStack() as stack:
        yield Held(stack)


def check_new_checkpoint(args, parser):
    """A run's --checkpoint may not replace a file that is there already
    (save for the one it resumes): a forgotten --resume would otherwise
    overwrite a long run with its first epoch."""
    path = args.checkpoint
    if path is None or not os.path.lexists(path) or (args.resume and same_file(path, args.resume)):
        return
    if holds_run(path):
        parser.error(f"--checkpoint: {path} already holds a run; go on with it with "
                     f"--resume {path}, or remove the file to start a new one")
    parser.error(f"--checkpoint: {path} already exists and is not a run checkpoint; "
                 "give a new path (the checkpoint is rewritten after every epoch)")


def holds_run(path):
    try:
        with checkpoint.open_archive(path) as arrays:
            return checkpoint.marker(arrays) == checkpoint.RUN_FORMAT
    except (CheckpointError, OSError, ValueError):
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


class Writes:
    """The run's per-epoch writes (checkpoint, metrics) and the final --save:
    a write that fails warns once, naming the file and the cause, and the
    run goes on; `summary()` names what is not up to date at the end."""

    def __init__(self):
        self.failed = {}    # flag -> (path, why, epoch of the first failure)
        self.warned = set()

    def attempt(self, flag, path, write, epoch=None):
        """write(); False when it failed, with a warning (once per output)
        after an epoch: the final --save's failure is left to summary()."""
        try:
            write()
        except OSError as exc:
            why = getattr(exc, "why", None) or (exc.strerror or str(exc)).lower()
            first = self.failed.get(flag, (None, None, epoch))[2]
            self.failed[flag] = (path, why, first)
            if epoch and flag not in self.warned:
                self.warned.add(flag)
                print(f"digitnet: warning: cannot write {OUTPUTS[flag]} {path} after epoch "
                      f"{epoch}: {why}; training goes on", file=sys.stderr, flush=True)
            return False
        self.failed.pop(flag, None)  # written again: up to date
        return True

    def summary(self):
        """One line naming every output whose last write failed, or None."""
        if not self.failed:
            return None
        parts = []
        for flag, (path, why, epoch) in self.failed.items():
            since = f" (from epoch {epoch} on)" if epoch else ""
            parts.append(f"{OUTPUTS[flag]} {path}{since}: {why}")
        return "could not write " + "; ".join(parts)


def finish(args, run, writes, code, when=""):
    """--save, then the exit status: 1, with one line naming each output
    not up to date, when a write failed and was not made good later."""
    save_result(args, run, writes, when)
    failed = writes.summary()
    if failed:
        print(f"digitnet: error: {failed}", file=sys.stderr, flush=True)
        return 1
    return code


def save_result(args, run, writes, when=""):
    """--save the network as the run ends: its best validation epoch's weights
    (the network holds them now); nothing when no epoch finished, so a good
    file there is never replaced by an untrained one."""
    if not args.save:
        return
    if not run.history:
        print(f"digitnet: no epoch finished; {args.save} left as it was", file=sys.stderr)
        return
    run.use_best()
    if writes.attempt("save", args.save, lambda: checkpoint.save(run.net, args.save)):
        best = training.best_epoch(run.history)
        print(f"saved {args.save} (the weights of epoch {best['epoch']}, the best validation "
              f"accuracy{', ' + when if when else ''})", flush=True)


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
