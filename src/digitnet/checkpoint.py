"""Saved networks: a documented `.npz` file, never a pickle.

A chapter-1 `Network` is format "digitnet-network", version 1:

    format      the string "digitnet-network"
    version     1
    sizes       int64 (L,), the layer sizes
    dtype       the string "float32" or "float64"
    weights_i   (sizes[i+1], sizes[i]) for i in 0..L-2
    biases_i    (sizes[i+1], 1)
    classes     optional: the 10 class names (absent: the digits 0-9)

A `Model` is format "digitnet-model", version 1: `format`, `version`,
`dtype` and `classes` as above, and

    layers       the layer spec, e.g. "conv:20x5x5,pool:2,fc:100,softmax:10"
    cost         "quadratic", "cross-entropy" or "log-likelihood"
    activation   the hidden layers' activation
    init         "large" or "scaled", how the weights started (a record)
    dropout      the dropout probability it was trained with (a record)
    input_shape  int64 (3,), (channels, height, width), or (n,) for dense input
    weights_i, biases_i   for the i-th layer that has weights, in order

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
MODEL_FORMAT = "digitnet-model"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable digitnet network."""


def _umask():
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def write_atomic(path, write):
    """Call write(file) on a temporary file, then rename it over `path`."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CheckpointError(f"{path}: folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write(net, path, arrays):
    arrays.update(version=np.array(VERSION), dtype=np.array(net.dtype_name))
    if getattr(net, "classes", None) is not None:
        arrays["classes"] = np.array([str(c) for c in net.classes])
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"weights_{i}"] = backend.to_numpy(w)
        arrays[f"biases_{i}"] = backend.to_numpy(b)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def save(net, path):
    """Write a chapter-1 `Network` to `path`, atomically."""
    _write(net, path, {"format": np.array(FORMAT),
                       "sizes": np.array(net.sizes, dtype=np.int64)})


def save_model(model, path):
    """Write a `Model` to `path`, atomically."""
    _write(model, path, {"format": np.array(MODEL_FORMAT), "layers": np.array(model.spec),
                         "cost": np.array(model.cost_name),
                         "activation": np.array(model.activation),
                         "init": np.array(model.init), "dropout": np.array(model.dropout),
                         "input_shape": np.array(model.input_shape, dtype=np.int64)})


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
    """The `Network` or `Model` saved in `path`, on `device`, checked
    against its own description."""
    from .model import Model
    from .network import Network

    xp = backend.namespace(device)  # a missing GPU is not the file's fault
    arrays = _read(path)
    kind = str(arrays.get("format", ""))
    if kind not in (FORMAT, MODEL_FORMAT):
        raise CheckpointError(f"{path}: not a digitnet model (no '{FORMAT}' or "
                              f"'{MODEL_FORMAT}' marker)")
    version = int(arrays.get("version", -1))
    if version != VERSION:
        raise CheckpointError(f"{path}: format version {version}, this digitnet reads {VERSION}")
    try:
        dtype = str(arrays["dtype"])
        if kind == FORMAT:
            net = Network([int(s) for s in arrays["sizes"]], device=xp, dtype=dtype)
        else:
            net = Model(str(arrays["layers"]), cost=str(arrays["cost"]),
                        activation=str(arrays["activation"]), device=xp, dtype=dtype,
                        init=str(arrays["init"]), dropout=float(arrays["dropout"]),
                        input_shape=np.atleast_1d(arrays["input_shape"]))
        count = len(net.weights)
        weights = [arrays[f"weights_{i}"] for i in range(count)]
        biases = [arrays[f"biases_{i}"] for i in range(count)]
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None
    except ValueError as exc:  # bad sizes, spec or dtype
        raise CheckpointError(f"{path}: {exc}") from None
    for i, (w, b, w0, b0) in enumerate(zip(weights, biases, net.weights, net.biases)):
        if w.shape != w0.shape or b.shape != b0.shape:
            raise CheckpointError(f"{path}: layer {i} has shapes {w.shape} and {b.shape}, "
                                  f"which do not match its description ({w0.shape} "
                                  f"and {b0.shape})")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise CheckpointError(f"{path}: layer {i} holds NaN or infinite values")
    if "classes" in arrays:
        net.classes = [str(c) for c in arrays["classes"]]
    set_parameters(net, [net.asarray(w) for w in weights], [net.asarray(b) for b in biases])
    return net


def set_parameters(net, weights, biases):
    if hasattr(net, "layers"):  # a Model keeps its parameters in its layers
        for layer, w, b in zip(net.params, weights, biases):
            layer.w, layer.b = w, b
    else:
        net.weights, net.biases = weights, biases
