"""The JSON state of a run checkpoint, checked field by field.

A checkpoint is a file people copy, keep for months and sometimes edit by
hand.  Every field `load_run` restores is checked for its type and range
before anything is built from it, and each bad field is one line that
names it: `history=[1,2]` or `eta=-1` never reach the trainer, where they
would be a traceback or, worse, a run that trains silently with a negative
learning rate.  The command's own settings (`extra`) are the caller's to
check (cli.py does).
"""

import math

from . import config
from .config import show

LIMIT = 32 << 20  # bytes of state (UTF-32 in the file): some 20,000 epochs of history
ENDED = (None, "patience", "schedule", "interrupted", "diverged")


def whole(v, low=0):
    """A JSON whole number >= low (not a bool, a float or a string)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def number(v):
    """A finite JSON number (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def rng_state(value, net):
    """True when `value` is a state of the network's bit generator."""
    generator = type(net.rng.bit_generator)()
    try:
        generator.state = value
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
        return False
    return True


def record_problem(record, i):
    """Why history[i] is not an epoch's record, or None."""
    if not isinstance(record, dict):
        return f"is {show(record)}, not an epoch's record"
    if record.get("epoch") != i + 1 or not whole(record.get("epoch")):
        return f"has epoch {show(record.get('epoch'))}, expected {i + 1}"
    for key in ("eta", "seconds", "elapsed"):
        if key not in record:
            return f"has no {key}"
    for key, value in record.items():
        if not number(value):
            return f"has {key} = {show(value)}, not a finite number"
        if key == "eta" and value <= 0 or key in ("seconds", "elapsed") and value < 0:
            return f"has {key} = {show(value)}, out of range"
        if key.endswith("_accuracy") and not 0 <= value <= 1:
            return f"has {key} = {show(value)}, not in [0, 1]"
        if key.endswith(("_correct", "_total")) and not whole(value):
            return f"has {key} = {show(value)}, not a whole number >= 0"
        if key.endswith("_correct") and value > record.get(key[:-8] + "_total", value):
            return f"has {key} = {value}, more than its total"
    return None


def problems(state, net):
    """Lines naming every field of `state` that is missing or wrong (empty:
    the state may be restored into a run of `net`)."""
    if not isinstance(state, dict):
        return [f"the run's state is {show(state)}, not a JSON object"]
    found = []

    def check(key, ok, what):
        if key not in state:
            found.append(f"state: {key} is missing")
            return False
        if not ok(state[key]):
            found.append(f"state: {key} must be {what}, got {show(state[key])}")
            return False
        return True

    epoch = check("epoch", whole, "a whole number >= 0")
    check("eta", lambda v: number(v) and v > 0, "a positive number")
    check("since", whole, "a whole number >= 0")
    check("ended", lambda v: v in ENDED, "null or one of " + ", ".join(ENDED[1:]))
    check("rng", lambda v: rng_state(v, net), f"a {type(net.rng.bit_generator).__name__} "
                                               "generator state")
    check("seed", lambda v: v is None or whole(v), "null or a whole number >= 0")
    check("extra", lambda v: isinstance(v, dict), "a JSON object")
    history = check("history", lambda v: isinstance(v, list), "a list of epoch records")
    if history:
        for i, record in enumerate(state["history"]):
            why = record_problem(record, i)
            if why:
                found.append(f"state: history[{i}] {why}")
                history = False
                break
    if history and epoch and len(state["history"]) != state["epoch"]:
        found.append(f"state: history holds {len(state['history'])} epochs, but epoch is "
                     f"{state['epoch']}")
    if check("best", lambda v: v is None or isinstance(v, dict), "null or an epoch's record") \
            and history:
        best, validated = state["best"], [r for r in state["history"]
                                          if "validation_accuracy" in r]
        if best is None and validated:
            found.append("state: best is null, but the history has validation accuracies")
        elif best is not None and best not in validated:
            found.append(f"state: best must be one of the history's validated epochs, got "
                         f"{show(best)}")
    if check("settings", lambda v: isinstance(v, dict), "a JSON object"):
        settings = state["settings"]
        found += config.problems(settings, "state: settings.")  # TrainConfig's own checks
        if not found and state["eta"] > settings["eta"]:
            found.append(f"state: eta {state['eta']} is above the run's starting eta "
                         f"{settings['eta']} (the schedule only halves it)")
    if not found and state["settings"].get("optimizer") == "adam":
        check("adam_steps", whole, "a whole number >= 0 (adam's steps taken)")
    if not found and state["since"] > state["epoch"]:
        found.append(f"state: since must be at most epoch ({state['epoch']}), got "
                     f"{state['since']}")
    return found
