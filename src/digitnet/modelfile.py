"""Saved networks: documented `.npz` files, never pickles.

Format version 2, written since 2026-12-07, is one description and named
arrays; the kind is written in the description, never inferred:

    format      the string "digitnet-model" ("digitnet-run" for a run
                checkpoint, checkpoint.py)
    version     2
    model       JSON: the network's config() (its "kind", "network" or
                "model", and that kind's fields: a Network's "sizes"; a
                Model's "layers", "cost", "activation", "init", "dropout",
                "input_shape"; both "dtype"), its "classes" (null: the
                digits 0-9) and its "seed" (null when unknown)
    weights_i, biases_i   the i-th layer's parameters, as the book names
                them: a Network's weights_i is (sizes[i+1], sizes[i])
    buffer.NAME the network's buffers (a batch-norm layer's running
                statistics), each declared by its class's buffer_shapes

and nothing else: an array the description does not declare is refused.

Version 1 files, written before, still load.  They kept the description as
one small array per field (`sizes`, or `layers`, `cost`, `activation`,
`init`, `dropout`, `input_shape`; `dtype`, `classes`, `seed`), and a
chapter-1 `Network` was marked "digitnet-network".

Networks are read through the classes of `kinds` ({"network": Network,
"model": Model}, or one of them): each builds itself from a config and
says which shapes it declares, so this module knows the file format and no
network class (base.py's `save` and `load` call it; checkpoint.py adds runs).

Every file is written to a temporary file in the target folder and renamed
over the target, so a crash never leaves half a file where a good one was.
Reading compares each array's header (shape and dtype) with the shapes the
description declares before reading its data (npzfile.py): a small file
cannot make us allocate a billion neurons.
"""

import json
import math

import numpy as np

from . import backend, npzfile
from .files import write_atomic

FORMAT = "digitnet-network"    # version 1's chapter-1 marker, still read
MODEL_FORMAT = "digitnet-model"
RUN_FORMAT = "digitnet-run"
VERSION = 2                    # what this digitnet writes
VERSIONS = (1, 2)              # what it reads
DESCRIPTION = ("format", "version", "model")
# What a class's load says of a file of the other kind.
HOLDS = {"network": ("a chapter-1 Network", "Network"), "model": ("a Model", "Model")}


class CheckpointError(ValueError):
    """A file that is not a readable digitnet network or run: one line per
    problem found (`lines`), each naming the file."""

    def __init__(self, *lines):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


def description(net):
    """What a file says of `net` besides its arrays: its config, classes, seed."""
    seed = net.seed if isinstance(net.seed, int) and not isinstance(net.seed, bool) else None
    return {**net.config(), "classes": None if net.classes is None else
            [str(c) for c in net.classes], "seed": seed}


def described(net, fmt=MODEL_FORMAT):
    """The arrays that describe `net` in a version-2 file marked `fmt`."""
    return {"format": np.array(fmt), "version": np.array(VERSION),
            "model": np.array(json.dumps(description(net)))}


def network_arrays(net):
    """Every array of `net`'s model file: its description and its state."""
    return {**described(net), **net.store.state_dict()}


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


def json_of(arrays, key, limit=npzfile.SMALL):
    """The JSON document in the string array `key`, or a ValueError."""
    try:
        return json.loads(text(arrays, key, limit))
    except (RecursionError, json.JSONDecodeError):
        raise ValueError(f"{key} is not valid JSON") from None


def marker(arrays):
    """The file's format marker, or "" when it has none that is a string."""
    try:
        return text(arrays, "format")
    except (KeyError, ValueError):
        return ""


def version_of(arrays, formats):
    """The format version of a file marked with one of `formats`, or a ValueError."""
    if marker(arrays) not in formats:
        raise ValueError("not a digitnet file of this kind (no " +
                         " or ".join(f"'{f}'" for f in formats) + " marker)")
    version = arrays.small("version") if "version" in arrays else None
    if (version is None or version.ndim or version.dtype.kind not in "iu"
            or int(version) not in VERSIONS):
        raise ValueError(f"format version {version}, this digitnet reads "
                         + " and ".join(map(str, VERSIONS)))
    return int(version)


def _whole(v, low=0):
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _wholes(v):
    return isinstance(v, list) and all(_whole(s) for s in v)


# Version 2's description: each kind's fields, and the fields of every kind.
FIELDS = {
    "network": {"sizes": (_wholes, "a list of whole numbers")},
    "model": {"layers": (lambda v: isinstance(v, str), "a string"),
              "cost": (lambda v: isinstance(v, str), "a string"),
              "activation": (lambda v: isinstance(v, str), "a string"),
              "init": (lambda v: isinstance(v, str), "a string"),
              "dropout": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                          and math.isfinite(v), "a number"),
              "input_shape": (_wholes, "a list of whole numbers")},
}
COMMON = {
    "dtype": (lambda v: v in backend.DTYPES, "one of " + ", ".join(backend.DTYPES)),
    "classes": (lambda v: v is None or isinstance(v, list) and all(isinstance(c, str) for c in v),
                "null or a list of names"),
    "seed": (lambda v: v is None or _whole(v), "null or a whole number >= 0"),
}


def _described_v2(arrays):
    """(config, classes, seed) from a version-2 file's description."""
    d = json_of(arrays, "model")
    if not isinstance(d, dict):
        raise ValueError("model is not a JSON object")
    if d.get("kind") not in FIELDS:
        raise ValueError(f"model: kind must be one of {', '.join(FIELDS)}, got "
                         f"{json.dumps(d.get('kind'))[:40]}")
    fields = {**FIELDS[d["kind"]], **COMMON}
    for key in sorted(set(d) - set(fields) - {"kind"}):
        raise ValueError(f"model: {key} is not a field of a {d['kind']}'s description")
    for key, (ok, what) in fields.items():
        if key not in d:
            raise ValueError(f"model: {key} is missing")
        if not ok(d[key]):
            raise ValueError(f"model: {key} must be {what}, got {json.dumps(d[key])[:40]}")
    config = {key: d[key] for key in d if key not in ("classes", "seed")}
    return config, d["classes"], d["seed"]


def _ints(arrays, key):
    a = arrays.small(key)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"{key} is not a list of whole numbers")
    return [int(v) for v in a]


def _described_v1(arrays):
    """(config, classes, seed) from a version-1 file's arrays: its kind is
    the marker's, or for a run whichever of `sizes` and `layers` it has."""
    config, kind = {"dtype": text(arrays, "dtype")}, marker(arrays)
    if config["dtype"] not in backend.DTYPES:
        raise ValueError(f"dtype {config['dtype']!r} is not one of {', '.join(backend.DTYPES)}")
    if kind == RUN_FORMAT and "sizes" in arrays and "layers" in arrays:
        raise ValueError("holds both a Network's sizes and a Model's layers")
    if kind == FORMAT or "sizes" in arrays and kind == RUN_FORMAT:
        config.update(kind="network", sizes=_ints(arrays, "sizes"))
    else:
        dropout = arrays.small("dropout")
        if dropout.ndim or dropout.dtype.kind != "f":
            raise ValueError("dropout is not a number")
        config.update(kind="model", layers=text(arrays, "layers"), cost=text(arrays, "cost"),
                      activation=text(arrays, "activation"), init=text(arrays, "init"),
                      dropout=float(dropout), input_shape=_ints(arrays, "input_shape"))
    classes = None
    if "classes" in arrays:
        names = arrays.small("classes")  # not a list of names: no count fits (read)
        classes = [str(c) for c in names] if names.ndim == 1 and names.dtype.kind == "U" else []
    seed = None  # files written before seeds were kept
    if "seed" in arrays:
        seed = arrays.small("seed")
        if seed.ndim or seed.dtype.kind not in "iu":
            raise ValueError("seed is not a whole number")
        seed = int(seed)
    return config, classes, seed


def _class(config, kinds):
    """The class in `kinds` that reads this config, or a ValueError."""
    if config["kind"] not in kinds:
        what, name = HOLDS[config["kind"]]
        raise ValueError(f"holds {what}; load it with digitnet.load or {name}.load")
    return kinds[config["kind"]]


def declared(params, buffers):
    """{name: shape} of every array of a network's state, in the order they
    are read: weights_0, biases_0, ... (params: [(w shape, b shape)]), then
    buffer.NAME (buffers: {NAME: shape})."""
    shapes = {}
    for i, (w_shape, b_shape) in enumerate(params):
        shapes[f"weights_{i}"], shapes[f"biases_{i}"] = w_shape, b_shape
    shapes.update((f"buffer.{name}", s) for name, s in buffers.items())
    return shapes


def finite_arrays(arrays, shapes):
    """{name: array} for {name: shape}, each header checked against its
    shape before its data is read, and its values checked finite."""
    out = {}
    for name, shape in shapes.items():
        a = arrays.parameter(name, shape)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds NaN or infinite values")
        out[name] = a
    return out


def undeclared(arrays, names):
    """A ValueError when a version-2 file holds arrays besides `names`."""
    extra = sorted(set(arrays.headers) - set(names) - set(DESCRIPTION))
    if extra:
        raise ValueError(f"holds arrays its description does not declare: {', '.join(extra)}")


def read(path, arrays, kinds, device, formats, fits=None):
    """(network, version): the network a file describes, built by its class
    in `kinds`, with its stored state, checked.  `fits(n_in, n_out)` may
    refuse it (a ValueError) before any parameter is read."""
    xp = backend.namespace(device)  # a missing GPU is not the file's fault
    try:
        version = version_of(arrays, formats)
        config, classes, seed = (_described_v1 if version == 1 else _described_v2)(arrays)
        cls = _class(config, kinds)
        params = cls.param_shapes(config)
        shapes = declared(params, cls.buffer_shapes(config))
        n_out = params[-1][0][0]
        if fits is not None:
            fits(cls.n_in_of(config), n_out)
        state = finite_arrays(arrays, shapes)
        if classes is not None and len(classes) != n_out:
            raise ValueError(f"classes must be {n_out} names, one per output")
        net = cls.from_config(config, xp)
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None
    except (ValueError, TypeError) as exc:  # bad sizes, spec, dtype or arrays
        raise CheckpointError(f"{path}: {exc}") from None
    except npzfile.READ_ERRORS:  # a damaged member: a bad CRC, a truncated stream
        raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    net.classes, net.seed = classes, seed
    net.store.load_state_dict(state, net.asarray)
    return net, version


def load(path, kinds, device="auto", fits=None):
    """The network saved in `path`, of a class in `kinds`, on `device`; never
    unpickles.  `fits(n_in, n_out)` may refuse the network (a ValueError that
    says why) before its parameters are read."""
    with open_archive(path) as arrays:
        net, version = read(path, arrays, kinds, device, (FORMAT, MODEL_FORMAT), fits)
        if version > 1:
            try:
                undeclared(arrays, net.store.named())
            except ValueError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
        return net
