"""Files written so that nothing the user had is ever half-overwritten.

Every file digitnet writes (models, checkpoints, metrics, pictures) goes to
a temporary file in the target's folder and is renamed over the target
only when complete: a crash, a full disk or Ctrl-C leaves the old file.
"""

import os
import tempfile
from pathlib import Path


def umask():
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def problem(path):
    """Why `path` cannot be written, in words, or None when it can: checked
    before a long run, so a typo fails in a second, not after an hour."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if not parent.is_dir():
        return f"folder {parent} does not exist"
    try:  # the one true test, for root and read-only mounts alike
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        return f"folder {parent} is not writable ({exc.strerror})"
    os.close(fd)
    os.unlink(tmp)
    return None


def write_atomic(path, write):
    """Call write(file) on a temporary file, then rename it over `path`.

    The file gets the permissions the umask gives a new file (mkstemp's
    0600 would hide it from other users).  OSError (with the user's path
    in its message) when it cannot be written.
    """
    why = problem(path)
    if why:
        raise OSError(f"cannot write {path}: {why}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
