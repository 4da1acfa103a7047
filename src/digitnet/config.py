"""A run's settings as one validated object: `TrainConfig`.

The command line, the Python API (`net.sgd`, `training.Run`) and a resumed
checkpoint all build one, and it travels whole: the trainer and the
engines read its fields by name.  Every field is checked here, once, by
one table (FIELDS), so a setting is never accepted by one door and refused
by another; checkpoint states are checked by the same table
(`problems`, which runstate.py calls), field by field.

The seed is not here: it is the network's, which drew the weights and
owns the generator that shuffles and drops out (a run's checkpoint keeps
it with the generator's state).
"""

import dataclasses
import json
import math
import numbers

ENGINES = ("batched", "per-example")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "one-cycle", "cosine")


def whole(v, low):
    """A whole number >= low: an int (or a float with no fraction), not a bool."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return (isinstance(v, numbers.Integral) or math.isfinite(v) and float(v).is_integer()) \
        and v >= low


def number(v):
    """A finite real number, not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


# field: (is it acceptable, what it must be)
FIELDS = {
    "mini_batch_size": (lambda v: whole(v, 1), "a whole number >= 1"),
    "eta": (lambda v: number(v) and v > 0, "a positive number"),
    "lmbda": (lambda v: number(v) and v >= 0, "a number >= 0"),
    "momentum": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "patience": (lambda v: v is None or whole(v, 1), "null or a whole number >= 1"),
    "eta_decay": (lambda v: v is None or number(v) and v > 1, "null or a number > 1"),
    "engine": (lambda v: v in ENGINES, "one of " + ", ".join(ENGINES)),
    "augment": (lambda v: isinstance(v, bool), "true or false"),
    "epochs": (lambda v: whole(v, 0), "a whole number >= 0"),
    "monitor_training": (lambda v: isinstance(v, bool), "true or false"),
    "schedule": (lambda v: v in SCHEDULES, "one of " + ", ".join(SCHEDULES)),
    "warmup": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "nesterov": (lambda v: isinstance(v, bool), "true or false"),
    "label_smoothing": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "test_at_end": (lambda v: isinstance(v, bool), "true or false"),
    "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "beta1": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "augment_strength": (lambda v: number(v) and 0 < v <= 2, "a number in (0, 2]"),
}
# Settings that checkpoints from before them lack: their defaults then hold
# (the command line kept its epochs and monitor_training in `extra`).
LATER = ("augment", "epochs", "monitor_training", "schedule", "warmup", "nesterov",
         "label_smoothing", "test_at_end", "optimizer", "beta1", "beta2", "augment_strength")


def show(value, width=40):
    """A bad value as the user would write it (a JSON list or object as
    JSON), cut short."""
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def problems(settings, prefix=""):
    """One line per missing or bad field of a settings dict (a checkpoint's),
    each naming it with `prefix`; empty when TrainConfig(**settings) holds.
    A field of LATER may be missing: its default holds."""
    found = []
    for key, (ok, what) in FIELDS.items():
        if key not in settings and key in LATER:
            continue
        if key not in settings:
            found.append(f"{prefix}{key} is missing")
        elif not ok(settings[key]):
            found.append(f"{prefix}{key} must be {what}, got {show(settings[key])}")
    if not found:
        found += conflicts({**DEFAULTS, **settings}, prefix)
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        found.append(f"{prefix}{unknown[0]} is not a setting of a run")
    return found


def conflicts(s, prefix):
    """Settings each fine alone but not together."""
    found = []
    if s["eta_decay"] is not None and s["patience"] is None:
        found.append(f"{prefix}eta_decay needs {prefix}patience: the schedule halves the "
                     f"learning rate each time {prefix}patience runs out")
    if s["eta_decay"] is not None and s["schedule"] != "constant":
        found.append(f"{prefix}eta_decay halves a constant learning rate, and "
                     f"{s['schedule']} sets its own")
    if s["warmup"] and s["schedule"] == "constant":
        found.append(f"{prefix}warmup is part of the one-cycle and cosine schedules, "
                     f"not the constant one")
    if s["augment_strength"] != 1 and not s["augment"]:
        found.append(f"{prefix}augment_strength scales the distortions of {prefix}augment: "
                     f"give {prefix}augment too")
    if s["nesterov"] and not s["momentum"]:
        found.append(f"{prefix}nesterov needs {prefix}momentum > 0")
    if s["optimizer"] == "adam" and s["momentum"]:
        found.append(f"{prefix}momentum is SGD's; adam keeps its own average of the "
                     f"gradients ({prefix}beta1)")
    if s["optimizer"] == "sgd" and (s["beta1"], s["beta2"]) != (0.9, 0.999):
        found.append(f"{prefix}beta1 and {prefix}beta2 are adam's: give {prefix}optimizer adam")
    return found


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a run trains: mini-batch SGD with the book's options.

    mini_batch_size (m) and eta as in chapter 1; lmbda, L2 over the n
    training examples, and momentum mu (chapter 3); patience, epochs
    without a better validation accuracy before stopping, and eta_decay,
    which makes patience halve eta instead until it has fallen by that
    factor; engine, "batched" or the book's "per-example"; augment,
    distorting every mini-batch afresh (augment.py); epochs, how many the
    run trains in all (a resumed run may be given more); monitor_training,
    measuring cost and accuracy on the training data too after each epoch.

    Beyond the book: schedule, "constant" (eta, halved by eta_decay) or
    eta changed at every mini-batch over the run's epochs, "one-cycle"
    (a linear rise from eta/25 over the first `warmup` fraction of the
    steps, then a linear fall to 0) or "cosine" (the same rise, then half a
    cosine down to 0) (schedules.py); nesterov, Nesterov's momentum;
    label_smoothing eps, training towards (1 - eps) e_label + eps/n_out
    rather than e_label; test_at_end, measuring the test set once, at the
    best validation epoch after training, rather than after every epoch;
    optimizer, "sgd" or "adam" (AdamW: lmbda then decays the weights apart
    from the gradient), with Adam's beta1 and beta2 (optimizers.py);
    augment_strength, scaling every range of augment's distortions (up to 2:
    beyond, rotations past 24 degrees and shifts past 5 pixels).
    """

    mini_batch_size: int
    eta: float
    lmbda: float = 0.0
    momentum: float = 0.0
    patience: int | None = None
    eta_decay: float | None = None
    engine: str = "batched"
    augment: bool = False
    epochs: int = 30
    monitor_training: bool = False
    schedule: str = "constant"
    warmup: float = 0.0
    nesterov: bool = False
    label_smoothing: float = 0.0
    test_at_end: bool = False
    optimizer: str = "sgd"
    beta1: float = 0.9
    beta2: float = 0.999
    augment_strength: float = 1.0

    def __post_init__(self):
        found = problems(dataclasses.asdict(self))
        if found:
            raise ValueError(found[0])
        # plain Python numbers, so the JSON of a checkpoint is the same
        # whatever the caller passed (numpy scalars, 10.0 for 10)
        for key, kind in (("mini_batch_size", int), ("eta", float), ("lmbda", float),
                          ("momentum", float), ("epochs", int), ("warmup", float),
                          ("label_smoothing", float), ("beta1", float), ("beta2", float),
                          ("augment_strength", float)):
            object.__setattr__(self, key, kind(getattr(self, key)))
        if self.patience is not None:
            object.__setattr__(self, "patience", int(self.patience))
        if self.eta_decay is not None:
            object.__setattr__(self, "eta_decay", float(self.eta_decay))

    def to_json(self):
        """The settings as a JSON-ready dict (a checkpoint's `settings`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, settings):
        """The config a checkpoint's `settings` describe (checked by `problems`)."""
        return cls(**settings)


DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING}
