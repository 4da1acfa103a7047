"""Saved runs (`digitnet train --checkpoint`): documented `.npz` files,
never pickles; saved networks are modelfile.py's, re-exported here.

A run checkpoint is format "digitnet-run", version 1: the network as in
modelfile.py (the last finished epoch's parameters), and

    velocity_w_i, velocity_b_i   SGD's momentum buffers, when momentum is on
    adam_m_w_i, adam_m_b_i, adam_v_w_i, adam_v_b_i   Adam's moments (its
                 step count is the state's adam_steps)
    best_weights_i, best_biases_i   the best validation epoch's, when there is one
    state        JSON: epoch, eta, patience count, how it ended, the
                 generator's state, the history, the best epoch's record,
                 the run's settings and the command's own settings

It is written atomically like every file here, and a run's state is checked
field by field (runstate.py) before anything is restored from it.
"""

import json

import numpy as np

from . import modelfile, npzfile, runstate
from .files import write_atomic
from .model import Model
from .modelfile import (FORMAT, MODEL_FORMAT, RUN_FORMAT, VERSION, CheckpointError,  # noqa: F401
                        marker, network_arrays, open_archive, parameters, read, save, text)
from .config import TrainConfig
from .network import Network
from .training import ARRAY_LISTS, Run

KINDS = {"network": Network, "model": Model}


def load(path, device="auto", fits=None):
    """The `Network` or `Model` saved in `path`, on `device` (digitnet.load)."""
    return modelfile.load(path, KINDS, device, fits)


def save_run(run, path, extra=None):
    """Write everything needed to go on with `run` (its state_dict) to `path`,
    atomically; `extra` is the caller's own JSON-ready settings (the command
    line's)."""
    state = run.state_dict()
    arrays = network_arrays(run.net, state.pop("weights"), state.pop("biases"))
    arrays["format"] = np.array(RUN_FORMAT)
    for name in ARRAY_LISTS:
        for i, a in enumerate(state.pop(name) or ()):
            arrays[f"{name}_{i}"] = a
    state["extra"] = extra or {}
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
        state.update(weights=net.weights, biases=net.biases)  # read and checked above
        try:
            held = run.optimizer.lists  # the optimizer's buffers, in (w, b) pairs
            for w_name, b_name, present in (
                    *((w, b, held[w] is not None) for w, b in zip(
                        run.optimizer.BUFFERS[0::2], run.optimizer.BUFFERS[1::2])),
                    ("best_weights", "best_biases", state["best"] is not None)):
                state[w_name], state[b_name] = (parameters(arrays, shapes, w_name, b_name)
                                                if present else (None, None))
        except KeyError as exc:
            raise CheckpointError(f"{path}: missing array {exc}") from None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except npzfile.READ_ERRORS:
            raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    run.load_state_dict(state)
    return run, state["extra"]
