"""Files written so that nothing the user had is ever half-overwritten.

Every file digitnet writes (models, checkpoints, metrics, pictures) goes to
a temporary file in the target's folder and is renamed over the target
only when complete: a crash, a full disk or Ctrl-C leaves the old file.

The temporary file is named `.NAME.digitnet-PID-XXXXXXXX.tmp` (NAME the
target's, PID the writer's process; a NAME too long for that is cut and
given a hash of the whole).  A `kill -9` mid-write leaves one behind; the
next write of the same target removes those whose process is gone.
Nothing else is ever removed: a file of the user's that merely starts with
`.NAME.` does not match the pattern.

`held(path)` keeps a second run from writing the same output while a run
does: an advisory lock (flock) on `.NAME.digitnet.lock` beside it, which
the system drops when the process ends, however it ends.
"""

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

MARK = "digitnet"
# Longest NAME kept whole in a temporary or lock file's name: with the
# ~35 characters around it, that stays under the usual 255-byte limit.
LONGEST = 200


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


def _stem(path):
    """`path`'s name as the names of its temporary and lock files hold it:
    whole, or cut with a hash of the whole when a legal long name would
    make theirs too long."""
    name = path.name
    if len(name.encode()) <= LONGEST:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name.encode()[:LONGEST - 13].decode(errors="ignore") + "~" + digest


def _temporary(path):
    """(fd, name) of a new temporary file beside `path`, named as above."""
    return tempfile.mkstemp(dir=_folder(path), prefix=f".{_stem(path)}.{MARK}-{os.getpid()}-",
                            suffix=".tmp")


def leftovers(path):
    """The temporary files of earlier writes of `path` whose writer is gone."""
    pattern = re.compile(rf"\.{re.escape(_stem(path))}\.{MARK}-(\d+)-[a-z0-9_]{{8}}\.tmp")
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
    longest = _longest_name(parent)
    if len(path.name.encode()) > longest:
        return f"the file name is {len(path.name.encode())} bytes long; the most here is {longest}"
    try:
        if path.is_dir():
            return f"{path} is a folder, not a file"
        if not parent.is_dir():
            return f"folder {parent} does not exist"
    except OSError as exc:  # a folder name too long, a loop of links
        return (exc.strerror or str(exc)).lower()
    try:  # the one true test, for root and read-only mounts alike
        fd, tmp = _temporary(path)
    except OSError as exc:
        return f"folder {parent} is not writable ({exc.strerror})"
    os.close(fd)
    os.unlink(tmp)
    return None


def _longest_name(folder):
    """The longest file name, in bytes, that `folder`'s file system takes."""
    try:
        return os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


class Busy(OSError):
    """Another process holds the lock on a file's writes."""

    def __init__(self, path, pid):
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is being written by another digitnet run ({who}); "
                         "wait for it to end, or give another path")
        self.path, self.pid = str(path), pid


@contextlib.contextmanager
def held(path):
    """Hold the advisory lock on `path`'s writes for the block; Busy when
    another process holds it.  The lock file is removed by its holder as
    the block ends (and re-checked after locking, so a file removed under
    a waiting locker is never trusted); one a `kill -9` leaves is simply
    locked again by the next run.  No lock where the system has no flock,
    nor where the lock file cannot be made (a full disk, a read-only
    folder), which the writes themselves then report."""
    try:
        import fcntl
    except ImportError:  # Windows: nothing to hold
        yield
        return
    real = Path(os.path.realpath(path))
    lock = _folder(real) / f".{_stem(real)}.{MARK}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        except OSError:  # a full disk or read-only folder: the writes will say so
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise Busy(path, pid if pid.isdigit() else None) from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed it as we waited: lock the new one
    try:
        with contextlib.suppress(OSError):  # the pid only names us in Busy's message
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


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
