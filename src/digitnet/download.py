"""Fetch the canonical dataset files, verified by SHA-256, from several mirrors.

pooch does the hard parts: it downloads to a temporary file beside the
target and only renames it into the cache once the hash matches, so a
corrupt or interrupted download never stays behind.
"""

import hashlib
import os
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
    """{filename: True/False/None} for verified, wrong hash, missing."""
    out = {}
    for name in FILES:
        path = Path(directory) / name
        out[name] = (sha256(path) == SHA256[dataset][name]) if path.is_file() else None
    return out


def fetch(dataset, name, directory, progress=True):
    """Download `name` into `directory`, trying each mirror until one verifies."""
    import pooch  # imported here: loading data from disk never needs it

    pooch.get_logger().setLevel("WARNING")
    failures = []
    for base in mirrors(dataset):
        url = base.rstrip("/") + "/" + name
        try:
            path = pooch.retrieve(url, known_hash="sha256:" + SHA256[dataset][name],
                                  fname=name, path=directory, progressbar=progress)
            return Path(path)
        except Exception as exc:  # network, HTTP status or hash: try the next
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            failures.append(f"{url}: {reason[:160]}")
    raise DownloadError(
        f"could not download {name} ({'; '.join(failures)}); put the four {dataset} "
        f"files in {Path(directory).resolve()} or set DIGITNET_DATA to a folder "
        f"that has {dataset}/ in it")


def ensure(dataset, directory, progress=True):
    """Download whichever of the dataset's four files are missing."""
    if dataset not in SHA256:
        raise ValueError(f"unknown dataset {dataset!r}: choose from {', '.join(SHA256)}")
    for name in FILES:
        if not (Path(directory) / name).is_file():
            fetch(dataset, name, directory, progress=progress)
