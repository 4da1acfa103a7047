"""Saved runs (`digitnet train --checkpoint`): documented `.npz` files,
never pickles; saved networks are modelfile.py's, re-exported here.

A run checkpoint is format "digitnet-run", version 1: the network as in
modelfile.py (the last finished epoch's parameters), and

    velocity_w_i, velocity_b_i   momentum buffers, when momentum is on
    best_weights_i, best_biases_i   the best validation epoch's, when there is one
    state        JSON: epoch, eta, patience count, how it ended, the
                 generator's state, the history, the best epoch's record,
                 the run's settings and the command's own settings

It is written atomically like every file here, and a run's state is checked
field by field (runstate.py) before anything is restored from it.
"""

import json

import numpy as np

from . import backend, modelfile, npzfile, runstate
from .files import write_atomic
from .model import Model
from .modelfile import (FORMAT, MODEL_FORMAT, RUN_FORMAT, VERSION, CheckpointError,  # noqa: F401
                        marker, network_arrays, open_archive, parameters, read, save, text)
from .config import TrainConfig
from .network import Network
from .training import Run

KINDS = {"network": Network, "model": Model}


def load(path, device="auto", fits=None):
    """The `Network` or `Model` saved in `path`, on `device` (digitnet.load)."""
    return modelfile.load(path, KINDS, device, fits)


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
             "best": run.best[0] if run.best else None, "settings": run.config.to_json(),
             "seed": net.seed, "extra": extra or {}}
    arrays["state"] = np.array(json.dumps(state))
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load_run(path, device="auto"):
    """(run, extra) from a file written by `save_run`, on `device`; every
    field of its state checked first (runstate.py), one line per bad one."""
    with open_archive(path) as arrays:
        if marker(arrays) != RUN_FORMAT:
            raise CheckpointError(f"{path}: not a digitnet run checkpoint (no '{RUN_FORMAT}' "
                                  "marker; a saved model cannot be resumed)")
        net, shapes = read(path, arrays, KINDS, device, (RUN_FORMAT,))
        try:
            state = json.loads(text(arrays, "state", runstate.LIMIT))
        except KeyError:
            raise CheckpointError(f"{path}: missing array 'state'") from None
        except (RecursionError, *npzfile.READ_ERRORS) as exc:  # ValueError among them
            why = "is not a string" if "not a string" in str(exc) else "is not valid JSON"
            raise CheckpointError(f"{path}: the run's state {why}") from None
        problems = runstate.problems(state, net)
        if problems:
            raise CheckpointError(*(f"{path}: {p}" for p in problems))
        run = Run(net, TrainConfig.from_json(state["settings"]))
        run.epoch, run.eta, run.since = state["epoch"], float(state["eta"]), state["since"]
        run.ended, run.history = state["ended"], list(state["history"])
        net.seed = state["seed"]
        net.rng.bit_generator.state = state["rng"]
        try:
            if run.velocities is not None:
                vw, vb = parameters(arrays, shapes, "velocity_w", "velocity_b")
                run.velocities = [(net.asarray(w), net.asarray(b)) for w, b in zip(vw, vb)]
            if state["best"] is not None:
                bw, bb = parameters(arrays, shapes, "best_weights", "best_biases")
                run.best = (state["best"], [net.asarray(w) for w in bw],
                            [net.asarray(b) for b in bb])
        except KeyError as exc:
            raise CheckpointError(f"{path}: missing array {exc}") from None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except npzfile.READ_ERRORS:
            raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    return run, state["extra"]
