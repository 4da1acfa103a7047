"""Saved runs (`digitnet train --checkpoint`): documented `.npz` files,
never pickles; saved networks are modelfile.py's, re-exported here.

A run checkpoint is format "digitnet-run", version 2: a model file's
description and state (modelfile.py: the last finished epoch's), and

    state        JSON: epoch, eta, patience count, how it ended, the
                 generator's state, the history, the best epoch's record,
                 the run's settings, the optimizer's scalars (Adam's
                 adam_steps) and the command's own settings (extra)
    velocity_w_i, velocity_b_i   SGD's momentum buffers, when momentum is on
    adam_m_w_i, adam_m_b_i, adam_v_w_i, adam_v_b_i   Adam's moments
    best_weights_i, best_biases_i, best_buffer.NAME   the best validation
                 epoch's state, when there is one

and nothing else (Run.state_dict's arrays).  Version 1 checkpoints, whose
description was modelfile.py's version-1 arrays, still load.  A file is
written atomically like every file here, and a run's state is checked
field by field (runstate.py) before anything is restored from it.
"""

import json

import numpy as np

from . import modelfile, npzfile, runstate
from .config import TrainConfig
from .files import write_atomic
from .model import Model
from .modelfile import (FORMAT, MODEL_FORMAT, RUN_FORMAT, VERSION, CheckpointError,  # noqa: F401
                        json_of, marker, network_arrays, open_archive, save)
from .network import Network
from .training import Run

KINDS = {"network": Network, "model": Model}


def load(path, device="auto", fits=None):
    """The `Network` or `Model` saved in `path`, on `device` (digitnet.load)."""
    return modelfile.load(path, KINDS, device, fits)


def save_run(run, path, extra=None):
    """Write everything needed to go on with `run` (its state_dict) to `path`,
    atomically; `extra` is the caller's own JSON-ready settings (the command
    line's)."""
    state = run.state_dict()
    arrays = {**modelfile.described(run.net, RUN_FORMAT), **state.pop("arrays")}
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
        net, version = modelfile.read(path, arrays, KINDS, device, (RUN_FORMAT,))
        try:
            state = json_of(arrays, "state", runstate.LIMIT)
        except KeyError:
            raise CheckpointError(f"{path}: missing array 'state'") from None
        except (RecursionError, *npzfile.READ_ERRORS) as exc:  # ValueError among them
            why = "is not a string" if "not a string" in str(exc) else "is not valid JSON"
            raise CheckpointError(f"{path}: the run's state {why}") from None
        problems = runstate.problems(state, net)
        if problems:
            raise CheckpointError(*(f"{path}: {p}" for p in problems))
        run = Run(net, TrainConfig.from_json(state["settings"]))
        # What this run's state declares beside the network's: the
        # optimizer's buffers, and the best epoch's state when it has one.
        shapes = {name: a.shape for name, a in run.optimizer.state_dict().items()}
        if state["best"] is not None:
            shapes.update((f"best_{name}", a.shape) for name, a in net.store.named().items())
        try:
            state["arrays"] = {**net.store.named(), **modelfile.finite_arrays(arrays, shapes)}
            if version > 1:
                modelfile.undeclared(arrays, [*state["arrays"], "state"])
        except KeyError as exc:
            raise CheckpointError(f"{path}: missing array {exc}") from None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except npzfile.READ_ERRORS:
            raise CheckpointError(f"{path}: damaged, not a readable .npz file") from None
    run.load_state_dict(state)
    return run, state["extra"]
