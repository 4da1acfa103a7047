"""Fetch the canonical dataset files, verified by SHA-256, from several mirrors.

pooch does the hard parts: it downloads to a temporary file beside the
target and only renames it into the cache once the hash matches, so a
corrupt download never stays behind.  This module adds what pooch leaves to
its caller: a SIGTERM that unwinds instead of killing (so pooch's cleanup
runs), files that follow the umask, and a sweep for the temporary files a
SIGKILL or power cut can still leave.
"""

import contextlib
import hashlib
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# The published hashes of the upstream releases (see shared/data/SOURCES.md).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# Tried in order.  The original MNIST site now refuses most downloads, so the
# PyTorch- and Google-hosted copies come first and it comes last.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
}


class DownloadError(RuntimeError):
    """No mirror gave a file with the right hash."""


def mirrors(dataset):
    """Base URLs to try: $DIGITNET_MIRRORS (space-separated) or the built-ins.

    A "{dataset}" in a mirror URL is replaced by the dataset's name, so one
    variable can serve both datasets from a folder laid out like data/.
    """
    custom = os.environ.get("DIGITNET_MIRRORS", "").split()
    bases = custom or MIRRORS[dataset]
    return [b.replace("{dataset}", dataset) for b in bases]


def sha256(path):
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(dataset, directory):
    """{filename: True/False/None} for verified, wrong hash, missing.

    Hashes every byte: a same-sized file with one flipped bit must fail.
    """
    out = {}
    for name in FILES:
        path = Path(directory) / name
        out[name] = (sha256(path) == SHA256[dataset][name]) if path.is_file() else None
    return out


# pooch's temporary files are tempfile.NamedTemporaryFile's defaults: "tmp"
# and eight of [a-z0-9_].  Nothing else in a data folder is ever touched.
TEMP_NAME = re.compile(r"tmp[a-z0-9_]{8}")

# A live download writes (and flushes) a chunk at least every 30 s, pooch's
# timeout, or gives up; a temporary file left alone for ten minutes belongs to
# no one.  The age keeps two processes downloading into one folder from
# deleting each other's work.
STALE_SECONDS = 600


def remove_stale(directory):
    """Delete the temporary files that a killed earlier download left behind."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if (TEMP_NAME.fullmatch(path.name) and path.is_file()
                    and time.time() - path.stat().st_mtime > STALE_SECONDS):
                path.unlink()


@contextlib.contextmanager
def sigterm_unwinds():
    """While downloading, SIGTERM raises SystemExit(143) instead of killing.

    SIGTERM's default action ends the process on the spot: no `finally`
    runs, and pooch's half-written temporary file stays in the data folder
    for good.  An exception unwinds through pooch's cleanup instead.  Only
    the main thread may set handlers, and a handler someone else set is
    theirs to keep.  A second SIGTERM is ignored so it cannot cut the
    cleanup short.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def unwind(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def umask():
    """The process's umask.  Python can only read it by setting it, so set it back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def downloader(url, progressbar, mode):
    """pooch's downloader for `url`, then chmod the temporary file to `mode`.

    pooch makes its temporary file with mkstemp, which is always 0600, and
    renames it into place: without this a downloaded file is private to its
    owner whatever the umask says.  Setting the mode before the rename means
    the file is never visible with the wrong one.
    """
    from pooch.downloaders import choose_downloader

    get = choose_downloader(url, progressbar=progressbar)

    def download(url, output_file, pooch):
        get(url, output_file, pooch)
        os.chmod(output_file, mode)
    return download


def fetch(dataset, name, directory, progress=True, why=None):
    """Download `name` into `directory`, trying each mirror until one verifies.

    A file already there with the wrong hash is replaced only by a verified
    copy (pooch renames over it), so a failed attempt leaves it as it was.
    Progress bars only on a terminal: in a log file they are noise.
    `why` says how the folder was chosen (data.place), for the error.
    """
    import pooch  # imported here: loading data from disk never needs it

    pooch.get_logger().setLevel("WARNING")
    remove_stale(directory)
    mode = 0o666 & ~umask()
    bar = bool(progress) and sys.stderr is not None and sys.stderr.isatty()
    failures = []
    with sigterm_unwinds():
        for base in mirrors(dataset):
            url = base.rstrip("/") + "/" + name
            try:
                path = pooch.retrieve(url, known_hash="sha256:" + SHA256[dataset][name],
                                      fname=name, path=directory,
                                      downloader=downloader(url, bar, mode))
                return Path(path)
            except Exception as exc:  # network, HTTP status or hash: try the next
                reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
                failures.append(f"{url}: {reason[:160]}")
    raise DownloadError(
        f"could not download {name} ({'; '.join(failures)}); put the four {dataset} "
        f"files in {Path(directory).resolve()}{f' ({why})' if why else ''} or set "
        f"DIGITNET_DATA to a folder that has {dataset}/ in it")


def ensure(dataset, directory, progress=True, replace_bad=False, why=None):
    """Download whichever of the dataset's four files are missing.

    With replace_bad (what `digitnet download` asks for) a present file is
    also hashed, and one that does not match is replaced by a verified fresh
    copy.  Loading data does not hash: it would re-read the files on every
    run, and `digitnet download` is the command that checks them.
    """
    if dataset not in SHA256:
        raise ValueError(f"unknown dataset {dataset!r}: choose from {', '.join(SHA256)}")
    remove_stale(directory)
    for name in FILES:
        path = Path(directory) / name
        if not path.is_file():
            fetch(dataset, name, directory, progress=progress, why=why)
        elif replace_bad and sha256(path) != SHA256[dataset][name]:
            try:
                fetch(dataset, name, directory, progress=progress, why=why)
            except DownloadError as exc:
                raise DownloadError(f"{path} does not match the published SHA-256 and "
                                    f"was left as it is: {exc}") from None
