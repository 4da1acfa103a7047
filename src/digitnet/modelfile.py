"""Saved networks: documented `.npz` files, never pickles.

A chapter-1 `Network` is format "digitnet-network", version 1:

    format      the string "digitnet-network"
    version     1
    sizes       int64 (L,), the layer sizes
    dtype       the string "float32" or "float64"
    weights_i   (sizes[i+1], sizes[i]) for i in 0..L-2
    biases_i    (sizes[i+1], 1)
    classes     optional: the n_out class names (absent: the digits 0-9)
    seed        optional: int64, the seed its weights were drawn with

A `Model` is format "digitnet-model", version 1: `format`, `version`,
`dtype`, `classes` and `seed` as above, and

    layers       the layer spec, e.g. "conv:20x5x5,pool:2,fc:100,softmax:10"
    cost         "quadratic", "cross-entropy" or "log-likelihood"
    activation   the hidden layers' activation
    init         "large" or "scaled", how the weights started (a record)
    dropout      the dropout probability it was trained with (a record)
    input_shape  int64 (3,), (channels, height, width), or (n,) for dense input
    weights_i, biases_i   for the i-th layer that has weights, in order

Both are written from the network's `config()`, and read back through the
classes of `kinds` ({"network": Network, "model": Model}, or one of them):
each class builds itself from a config and says which parameter shapes it
declares, so this module knows the file format and no network class
(base.py's `save` and `load` call it; checkpoint.py adds runs).

Every file is written to a temporary file in the target folder and renamed
over the target, so a crash never leaves half a file where a good one was.
Reading compares each array's header (shape and dtype) with the shapes the
file declares before reading its data (npzfile.py): a small file cannot make
us allocate a billion neurons.
"""

import numpy as np

from . import backend, npzfile
from .files import write_atomic
from .params import Store

FORMAT = "digitnet-network"
MODEL_FORMAT = "digitnet-model"
RUN_FORMAT = "digitnet-run"
VERSION = 1
# What a class's load says of a file of the other kind.
HOLDS = {"network": ("a chapter-1 Network", "Network"), "model": ("a Model", "Model")}


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
    if isinstance(net.seed, int) and not isinstance(net.seed, bool):
        arrays["seed"] = np.array(net.seed, dtype=np.int64)
    state = net.store if weights is None else Store(net.xp, weights, biases)
    arrays.update(state.state_dict())  # weights_i, biases_i (and buffer.NAME)
    return arrays


def save(net, path):
    """Write a network (Network or Model) to `path`, atomically."""
    arrays = network_arrays(net)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def open_archive(path):
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
    except OSError as exc:  # a name too long, no permission: the system's reason
        if exc.strerror and exc.filename is not None:
            raise CheckpointError(f"{path}: {exc.strerror.lower()}") from None
        raise CheckpointError(f"{path}: not a readable .npz file, not a digitnet file") from None
    except npzfile.READ_ERRORS as exc:
        why = "holds pickled objects" if "pickle" in str(exc) else "not a readable .npz file"
        raise CheckpointError(f"{path}: {why}, not a digitnet file") from None


def text(arrays, key, limit=npzfile.SMALL):
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
    kind = marker(arrays)
    if kind not in formats:
        raise ValueError("not a digitnet file of this kind (no " +
                         " or ".join(f"'{f}'" for f in formats) + " marker)")
    version = arrays.small("version") if "version" in arrays else None
    if version is None or version.ndim or version.dtype.kind not in "iu" or int(version) != VERSION:
        raise ValueError(f"format version {version}, this digitnet reads {VERSION}")
    config = {"dtype": text(arrays, "dtype")}
    if config["dtype"] not in backend.DTYPES:
        raise ValueError(f"dtype {config['dtype']!r} is not one of {', '.join(backend.DTYPES)}")
    if kind == FORMAT or "sizes" in arrays and kind == RUN_FORMAT:
        config.update(kind="network", sizes=_ints(arrays, "sizes"))
    else:
        dropout = arrays.small("dropout")
        if dropout.ndim or dropout.dtype.kind != "f":
            raise ValueError("dropout is not a number")
        config.update(kind="model", layers=text(arrays, "layers"), cost=text(arrays, "cost"),
                      activation=text(arrays, "activation"), init=text(arrays, "init"),
                      dropout=float(dropout), input_shape=_ints(arrays, "input_shape"))
    return config


def marker(arrays):
    """The file's format marker, or "" when it has none that is a string."""
    try:
        return text(arrays, "format")
    except (KeyError, ValueError):
        return ""


def _class(config, kinds):
    """The class in `kinds` that reads this config, or a ValueError."""
    if config["kind"] not in kinds:
        what, name = HOLDS[config["kind"]]
        raise ValueError(f"holds {what}; load it with digitnet.load or {name}.load")
    return kinds[config["kind"]]


def parameters(arrays, shapes, prefix_w="weights", prefix_b="biases"):
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


def read(path, arrays, kinds, device, formats, fits=None):
    """(network, shapes): the network a file describes, built by its class in
    `kinds`, with its stored parameters, checked.  `fits(n_in, n_out)` may
    refuse it (a ValueError) before any parameter is read."""
    xp = backend.namespace(device)  # a missing GPU is not the file's fault
    try:
        config = _config(arrays, formats)
        cls = _class(config, kinds)
        shapes = cls.param_shapes(config)
        if fits is not None:
            fits(cls.n_in_of(config), shapes[-1][0][0])
        weights, biases = parameters(arrays, shapes)
        classes = None
        if "classes" in arrays:
            names = arrays.small("classes")
            if names.ndim != 1 or names.dtype.kind != "U" or len(names) != shapes[-1][0][0]:
                raise ValueError(f"classes must be {shapes[-1][0][0]} names, one per output")
            classes = [str(c) for c in names]
        seed = None  # files written before seeds were kept
        if "seed" in arrays:
            seed = arrays.small("seed")
            if seed.ndim or seed.dtype.kind not in "iu":
                raise ValueError("seed is not a whole number")
            seed = int(seed)
        net = cls.from_config(config, xp)
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None
    except (ValueError, TypeError) as exc:  # bad sizes, spec, dtype or arrays
        raise CheckpointError(f"{path}: {exc}") from None
    except npzfile.READ_ERRORS:  # a damaged member: a bad CRC, a truncated stream
        raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    net.classes, net.seed = classes, seed
    net.weights[:] = [net.asarray(w) for w in weights]
    net.biases[:] = [net.asarray(b) for b in biases]
    return net, shapes


def load(path, kinds, device="auto", fits=None):
    """The network saved in `path`, of a class in `kinds`, on `device`; never
    unpickles.  `fits(n_in, n_out)` may refuse the network (a ValueError that
    says why) before its parameters are read."""
    with open_archive(path) as arrays:
        return read(path, arrays, kinds, device, (FORMAT, MODEL_FORMAT), fits)[0]
