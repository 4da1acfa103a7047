"""Files written so that nothing the user had is ever half-overwritten.

Every file digitnet writes (models, checkpoints, metrics, pictures) goes to
a temporary file in the target's folder and is renamed over the target
only when complete: a crash, a full disk or Ctrl-C leaves the old file.

The temporary file is named `.NAME.digitnet-PID-XXXXXXXX.tmp` (NAME the
target's, PID the writer's process).  A `kill -9` mid-write leaves one
behind; the next write of the same target removes those whose process is
gone.  Nothing else is ever removed: a file of the user's that merely
starts with `.NAME.` does not match the pattern.
"""

import os
import re
import tempfile
from pathlib import Path

MARK = "digitnet"


class WriteError(OSError):
    """A file could not be written; the message names it and says why
    (a bare ENOSPC says neither which file nor which write)."""

    def __init__(self, path, why, errno=None):
        super().__init__(f"cannot write {path}: {why}")
        self.errno, self.path, self.why = errno, str(path), why


def umask():
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def _folder(path):
    return path.parent if str(path.parent) else Path(".")


def _temporary(path):
    """(fd, name) of a new temporary file beside `path`, named as above."""
    return tempfile.mkstemp(dir=_folder(path), prefix=f".{path.name}.{MARK}-{os.getpid()}-",
                            suffix=".tmp")


def leftovers(path):
    """The temporary files of earlier writes of `path` whose writer is gone."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{MARK}-(\d+)-[a-z0-9_]{{8}}\.tmp")
    found = []
    try:
        names = os.listdir(_folder(path))
    except OSError:
        return found
    for name in names:
        match = pattern.fullmatch(name)
        if match and not running(int(match.group(1))):
            found.append(_folder(path) / name)
    return found


def running(pid):
    """True when process `pid` exists (ours included; another user's too)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def problem(path):
    """Why `path` cannot be written, in words, or None when it can: checked
    before a long run, so a typo fails in a second, not after an hour."""
    path = Path(path)
    parent = _folder(path)
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if not parent.is_dir():
        return f"folder {parent} does not exist"
    try:  # the one true test, for root and read-only mounts alike
        fd, tmp = _temporary(path)
    except OSError as exc:
        return f"folder {parent} is not writable ({exc.strerror})"
    os.close(fd)
    os.unlink(tmp)
    return None


def write_atomic(path, write):
    """Call write(file) on a temporary file, then rename it over `path`.

    The file gets the permissions the umask gives a new file (mkstemp's
    0600 would hide it from other users).  A WriteError, which names the
    user's path and the cause, when it cannot be written.
    """
    why = problem(path)
    if why:
        raise WriteError(path, why)
    path = Path(path)
    for old in leftovers(path):
        try:
            old.unlink()
        except OSError:
            pass  # another run got there first, or it is not ours to remove
    fd, tmp = _temporary(path)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(path, (exc.strerror or str(exc)).lower(), exc.errno) from None
        raise
