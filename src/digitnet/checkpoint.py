"""Saved networks: a documented `.npz` file, never a pickle.

Format version 1 holds these arrays:

    format      the string "digitnet-network"
    version     1
    sizes       int64 (L,), the layer sizes
    dtype       the string "float32" or "float64"
    weights_i   (sizes[i+1], sizes[i]) for i in 0..L-2
    biases_i    (sizes[i+1], 1)

It is written to a temporary file in the target folder and renamed over the
target, so a crash never leaves half a model where a good one was.
"""

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import backend

FORMAT = "digitnet-network"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable digitnet network."""


def write_atomic(path, write):
    """Call write(file) on a temporary file, then rename it over `path`."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CheckpointError(f"{path}: folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save(net, path):
    """Write `net` to `path` in format version 1, atomically."""
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
              "sizes": np.array(net.sizes, dtype=np.int64),
              "dtype": np.array(net.dtype_name)}
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"weights_{i}"] = backend.to_numpy(w)
        arrays[f"biases_{i}"] = backend.to_numpy(b)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def _read(path):
    """All arrays of an .npz file, or a CheckpointError naming what is wrong."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
                raise CheckpointError(f"{path}: not a .npz file, not a digitnet model")
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a model file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        why = "holds pickled objects" if "pickle" in str(exc) else "not a .npz file"
        raise CheckpointError(f"{path}: {why}, not a digitnet model") from None


def load(path, device="auto"):
    """The network saved in `path`, on `device`, checked against its sizes."""
    from .network import Network

    xp = backend.namespace(device)  # a missing GPU is not the file's fault
    arrays = _read(path)
    if not isinstance(arrays, dict) or str(arrays.get("format", "")) != FORMAT:
        raise CheckpointError(f"{path}: not a digitnet model (no '{FORMAT}' marker)")
    version = int(arrays.get("version", -1))
    if version != VERSION:
        raise CheckpointError(f"{path}: format version {version}, this digitnet reads {VERSION}")
    try:
        sizes = [int(s) for s in arrays["sizes"]]
        dtype = str(arrays["dtype"])
        net = Network(sizes, device=xp, dtype=dtype)
        weights = [arrays[f"weights_{i}"] for i in range(len(sizes) - 1)]
        biases = [arrays[f"biases_{i}"] for i in range(len(sizes) - 1)]
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None
    except ValueError as exc:  # bad sizes or dtype
        raise CheckpointError(f"{path}: {exc}") from None
    for i, (w, b) in enumerate(zip(weights, biases)):
        if w.shape != (sizes[i + 1], sizes[i]) or b.shape != (sizes[i + 1], 1):
            raise CheckpointError(f"{path}: layer {i} has shapes {w.shape} and {b.shape}, "
                                  f"which do not match sizes {sizes}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise CheckpointError(f"{path}: layer {i} holds NaN or infinite values")
    net.weights = [net.asarray(w) for w in weights]
    net.biases = [net.asarray(b) for b in biases]
    return net
