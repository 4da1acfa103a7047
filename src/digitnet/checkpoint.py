"""Saved networks and saved runs: documented `.npz` files, never pickles.

A chapter-1 `Network` is format "digitnet-network", version 1:

    format      the string "digitnet-network"
    version     1
    sizes       int64 (L,), the layer sizes
    dtype       the string "float32" or "float64"
    weights_i   (sizes[i+1], sizes[i]) for i in 0..L-2
    biases_i    (sizes[i+1], 1)
    classes     optional: the n_out class names (absent: the digits 0-9)

A `Model` is format "digitnet-model", version 1: `format`, `version`,
`dtype` and `classes` as above, and

    layers       the layer spec, e.g. "conv:20x5x5,pool:2,fc:100,softmax:10"
    cost         "quadratic", "cross-entropy" or "log-likelihood"
    activation   the hidden layers' activation
    init         "large" or "scaled", how the weights started (a record)
    dropout      the dropout probability it was trained with (a record)
    input_shape  int64 (3,), (channels, height, width), or (n,) for dense input
    weights_i, biases_i   for the i-th layer that has weights, in order

Both are written from the network's `config()`.  A run checkpoint
(`digitnet train --checkpoint`) is format "digitnet-run", version 1: the
network as above (the last finished epoch's parameters), and

    velocity_w_i, velocity_b_i   momentum buffers, when momentum is on
    best_weights_i, best_biases_i   the best validation epoch's, when there is one
    state        JSON: epoch, eta, patience count, how it ended, the
                 generator's state, the history, the best epoch's record,
                 the run's settings and the command's own settings

Every file is written to a temporary file in the target folder and renamed
over the target, so a crash never leaves half a file where a good one was.
Reading compares each array's header (shape and dtype) with the shapes the
file declares before reading its data (npzfile.py): a small file cannot make
us allocate a billion neurons.  A run's state is checked field by field
(runstate.py) before anything is restored from it.
"""

import json
import math

import numpy as np

from . import backend, npzfile, runstate
from .files import write_atomic
from .model import Model, param_shapes
from .network import Network
from .training import Run

FORMAT = "digitnet-network"
MODEL_FORMAT = "digitnet-model"
RUN_FORMAT = "digitnet-run"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable digitnet network or run: one line per
    problem found (`lines`), each naming the file."""

    def __init__(self, *lines):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


def network_arrays(net, weights=None, biases=None):
    """The arrays that describe `net` (with these parameters, default its own)."""
    config = net.config()
    arrays = {"version": np.array(VERSION), "dtype": np.array(config["dtype"])}
    if config["kind"] == "network":
        arrays.update(format=np.array(FORMAT), sizes=np.array(config["sizes"], dtype=np.int64))
    else:
        arrays.update(format=np.array(MODEL_FORMAT), layers=np.array(config["layers"]),
                      cost=np.array(config["cost"]), activation=np.array(config["activation"]),
                      init=np.array(config["init"]), dropout=np.array(config["dropout"]),
                      input_shape=np.array(config["input_shape"], dtype=np.int64))
    if net.classes is not None:
        arrays["classes"] = np.array([str(c) for c in net.classes])
    pairs = zip(net.weights if weights is None else weights,
                net.biases if biases is None else biases)
    for i, (w, b) in enumerate(pairs):
        arrays[f"weights_{i}"] = backend.to_numpy(w)
        arrays[f"biases_{i}"] = backend.to_numpy(b)
    return arrays


def save(net, path):
    """Write a network (Network or Model) to `path`, atomically."""
    arrays = network_arrays(net)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def _open(path):
    """The .npz file's Archive (every array's header read, no data), or a
    CheckpointError naming what is wrong."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
                raise CheckpointError(f"{path}: not a .npz file, not a digitnet file")
        return npzfile.Archive(path)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a file") from None
    except npzfile.READ_ERRORS as exc:
        why = "holds pickled objects" if "pickle" in str(exc) else "not a readable .npz file"
        raise CheckpointError(f"{path}: {why}, not a digitnet file") from None


def _text(arrays, key, limit=npzfile.SMALL):
    a = arrays.small(key, limit)
    if a.ndim != 0 or a.dtype.kind != "U":
        raise ValueError(f"{key} is not a string")
    return str(a)


def _ints(arrays, key):
    a = arrays.small(key)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"{key} is not a list of whole numbers")
    return [int(v) for v in a]


def _config(arrays, formats):
    """The network's config() from a file's arrays, checked."""
    kind = _marker(arrays)
    if kind not in formats:
        raise ValueError("not a digitnet file of this kind (no " +
                         " or ".join(f"'{f}'" for f in formats) + " marker)")
    version = arrays.small("version") if "version" in arrays else None
    if version is None or version.ndim or version.dtype.kind not in "iu" or int(version) != VERSION:
        raise ValueError(f"format version {version}, this digitnet reads {VERSION}")
    config = {"dtype": _text(arrays, "dtype")}
    if config["dtype"] not in backend.DTYPES:
        raise ValueError(f"dtype {config['dtype']!r} is not one of {', '.join(backend.DTYPES)}")
    if kind == FORMAT or "sizes" in arrays and kind == RUN_FORMAT:
        config.update(kind="network", sizes=_ints(arrays, "sizes"))
    else:
        dropout = arrays.small("dropout")
        if dropout.ndim or dropout.dtype.kind != "f":
            raise ValueError("dropout is not a number")
        config.update(kind="model", layers=_text(arrays, "layers"), cost=_text(arrays, "cost"),
                      activation=_text(arrays, "activation"), init=_text(arrays, "init"),
                      dropout=float(dropout), input_shape=_ints(arrays, "input_shape"))
    return config


def _marker(arrays):
    """The file's format marker, or "" when it has none that is a string."""
    try:
        return _text(arrays, "format")
    except (KeyError, ValueError):
        return ""


def expected_shapes(config):
    """[(w shape, b shape)] a config declares, computed without any array."""
    if config["kind"] == "network":
        sizes = config["sizes"]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes {sizes} are not a network's")
        return [((y, x), (y, 1)) for x, y in zip(sizes[:-1], sizes[1:])]
    return param_shapes(config["layers"], config["input_shape"])


def _parameters(arrays, shapes, prefix_w="weights", prefix_b="biases"):
    """The stored (weights, biases), each header checked against its declared
    shape before its data is read."""
    weights, biases = [], []
    for i, (w_shape, b_shape) in enumerate(shapes):
        for prefix, shape, out in ((prefix_w, w_shape, weights), (prefix_b, b_shape, biases)):
            a = arrays.parameter(f"{prefix}_{i}", shape)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{prefix}_{i} holds NaN or infinite values")
            out.append(a)
    return weights, biases


def build(config, device="auto"):
    """A fresh network from a config() (its parameters are then replaced)."""
    if config["kind"] == "network":
        return Network(config["sizes"], device=device, dtype=config["dtype"])
    return Model(config["layers"], cost=config["cost"], activation=config["activation"],
                 init=config["init"], dropout=config["dropout"], device=device,
                 dtype=config["dtype"], input_shape=config["input_shape"])


def _network(path, arrays, device, formats, fits=None):
    """The network a file describes, with its stored parameters, checked.
    `fits(n_in, n_out)` may refuse it (a ValueError) before any parameter
    is read."""
    xp = backend.namespace(device)  # a missing GPU is not the file's fault
    try:
        config = _config(arrays, formats)
        shapes = expected_shapes(config)
        if fits is not None:
            n_in = config["sizes"][0] if config["kind"] == "network" else math.prod(
                config["input_shape"])
            fits(n_in, shapes[-1][0][0])
        weights, biases = _parameters(arrays, shapes)
        classes = None
        if "classes" in arrays:
            names = arrays.small("classes")
            if names.ndim != 1 or names.dtype.kind != "U" or len(names) != shapes[-1][0][0]:
                raise ValueError(f"classes must be {shapes[-1][0][0]} names, one per output")
            classes = [str(c) for c in names]
        net = build(config, xp)
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None
    except (ValueError, TypeError) as exc:  # bad sizes, spec, dtype or arrays
        raise CheckpointError(f"{path}: {exc}") from None
    except npzfile.READ_ERRORS:  # a damaged member: a bad CRC, a truncated stream
        raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    net.classes = classes
    net.weights[:] = [net.asarray(w) for w in weights]
    net.biases[:] = [net.asarray(b) for b in biases]
    return net, shapes


def load(path, device="auto", fits=None):
    """The `Network` or `Model` saved in `path`, on `device`; never unpickles.
    `fits(n_in, n_out)` may refuse the network (a ValueError that says why)
    before its parameters are read."""
    with _open(path) as arrays:
        return _network(path, arrays, device, (FORMAT, MODEL_FORMAT), fits)[0]


def save_run(run, path, extra=None):
    """Write everything needed to go on with `run` to `path`, atomically;
    `extra` is the caller's own JSON-ready settings (the command line's)."""
    net = run.net
    arrays = network_arrays(net, *(run.last or (None, None)))
    arrays["format"] = np.array(RUN_FORMAT)
    for i, (vw, vb) in enumerate(run.velocities or ()):
        arrays[f"velocity_w_{i}"] = backend.to_numpy(vw)
        arrays[f"velocity_b_{i}"] = backend.to_numpy(vb)
    if run.best is not None:
        for i, (w, b) in enumerate(zip(run.best[1], run.best[2])):
            arrays[f"best_weights_{i}"] = backend.to_numpy(w)
            arrays[f"best_biases_{i}"] = backend.to_numpy(b)
    state = {"epoch": run.epoch, "eta": run.eta, "since": run.since, "ended": run.ended,
             "rng": net.rng.bit_generator.state, "history": run.history,
             "best": run.best[0] if run.best else None, "settings": run.settings,
             "seed": net.seed, "extra": extra or {}}
    arrays["state"] = np.array(json.dumps(state))
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load_run(path, device="auto"):
    """(run, extra) from a file written by `save_run`, on `device`; every
    field of its state checked first (runstate.py), one line per bad one."""
    with _open(path) as arrays:
        if _marker(arrays) != RUN_FORMAT:
            raise CheckpointError(f"{path}: not a digitnet run checkpoint (no '{RUN_FORMAT}' "
                                  "marker; a saved model cannot be resumed)")
        net, shapes = _network(path, arrays, device, (RUN_FORMAT,))
        try:
            state = json.loads(_text(arrays, "state", runstate.LIMIT))
        except KeyError:
            raise CheckpointError(f"{path}: missing array 'state'") from None
        except (RecursionError, *npzfile.READ_ERRORS) as exc:  # ValueError among them
            why = "is not a string" if "not a string" in str(exc) else "is not valid JSON"
            raise CheckpointError(f"{path}: the run's state {why}") from None
        problems = runstate.problems(state, net)
        if problems:
            raise CheckpointError(*(f"{path}: {p}" for p in problems))
        s = state["settings"]
        run = Run(net, s["mini_batch_size"], s["eta"], s["lmbda"], s["momentum"],
                  s["patience"], s["eta_decay"], s["engine"], s.get("augment", False))
        run.epoch, run.eta, run.since = state["epoch"], float(state["eta"]), state["since"]
        run.ended, run.history = state["ended"], list(state["history"])
        net.seed = state["seed"]
        net.rng.bit_generator.state = state["rng"]
        try:
            if run.velocities is not None:
                vw, vb = _parameters(arrays, shapes, "velocity_w", "velocity_b")
                run.velocities = [(net.asarray(w), net.asarray(b)) for w, b in zip(vw, vb)]
            if state["best"] is not None:
                bw, bb = _parameters(arrays, shapes, "best_weights", "best_biases")
                run.best = (state["best"], [net.asarray(w) for w in bw],
                            [net.asarray(b) for b in bb])
        except KeyError as exc:
            raise CheckpointError(f"{path}: missing array {exc}") from None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except npzfile.READ_ERRORS:
            raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    return run, state["extra"]
