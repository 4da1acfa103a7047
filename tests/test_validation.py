"""Every condition of every validation, alone: for each check (a run's
settings and their conflicts, a run's state, ensemble members, serve's
JSON pixels and picture sizes), one case per condition, with every other
condition met, so that dropping any one condition fails a case.  Each bad
value is one line that names it; each edge that is allowed is allowed.
(Model files' fields: test_validation_files.py.)"""

import json
import math

import numpy as np
import pytest

from digitnet import Ensemble, Model, Network, bodies, config, imaging, runstate
from digitnet.config import FIELDS, TrainConfig, show
from digitnet.connections import HTTPError
from digitnet.training import Run, fit

from conftest import blobs

GOOD = TrainConfig(mini_batch_size=10, eta=0.5).to_json()
NAN, INF = float("nan"), float("inf")

# (field, a value that breaks exactly one of its conditions)
BAD_FIELDS = [
    ("mini_batch_size", 0), ("mini_batch_size", 2.5), ("mini_batch_size", True),
    ("mini_batch_size", "10"),
    ("eta", 0), ("eta", -1.0), ("eta", NAN), ("eta", INF), ("eta", True), ("eta", "1"),
    ("lmbda", -0.1), ("lmbda", INF), ("lmbda", True),
    ("momentum", -0.1), ("momentum", 1.0), ("momentum", NAN), ("momentum", True),
    ("patience", 0), ("patience", 1.5), ("patience", True),
    ("eta_decay", 1.0), ("eta_decay", NAN), ("eta_decay", True), ("eta_decay", "2"),
    ("engine", "fast"), ("augment", 1), ("augment", None),
    ("epochs", -1), ("epochs", 2.5), ("epochs", True),
    ("monitor_training", 1), ("schedule", "linear"), ("schedule", None),
    ("warmup", -0.1), ("warmup", 1.0), ("warmup", NAN), ("warmup", True),
    ("nesterov", 1), ("label_smoothing", -0.1), ("label_smoothing", 1.0),
    ("label_smoothing", NAN), ("label_smoothing", True), ("test_at_end", 1),
    ("augment_strength", 0), ("augment_strength", -0.6), ("augment_strength", 2.01),
    ("augment_strength", NAN), ("augment_strength", True), ("augment_strength", "0.6"),
]
# each edge a condition allows: a check drawn too tight refuses one
EDGES = [("mini_batch_size", 1), ("mini_batch_size", 3.0), ("eta", 1e-9), ("lmbda", 0),
         ("momentum", 0), ("momentum", 0.999), ("patience", None), ("patience", 1),
         ("eta_decay", None), ("epochs", 0), ("warmup", 0), ("label_smoothing", 0),
         ("label_smoothing", 0.999)]


@pytest.mark.parametrize("key, value", BAD_FIELDS, ids=[f"{k}={v!r}" for k, v in BAD_FIELDS])
def test_each_condition_of_each_setting_alone(key, value):
    settings = {**GOOD, key: value}
    line = f"{key} must be {FIELDS[key][1]}, got {show(value)}"
    assert config.problems(settings) == [line]
    with pytest.raises(ValueError) as exc:
        TrainConfig(**settings)
    assert str(exc.value) == line


@pytest.mark.parametrize("key, value", EDGES, ids=[f"{k}={v!r}" for k, v in EDGES])
def test_each_edge_a_setting_allows_is_allowed(key, value):
    assert config.problems({**GOOD, key: value}) == []


CONFLICTS = [
    (dict(eta_decay=2.0), dict(patience=2), "eta_decay needs patience"),
    (dict(eta_decay=2.0, patience=2, schedule="cosine"), dict(schedule="constant"),
     "eta_decay halves a constant learning rate, and cosine sets its own"),
    (dict(warmup=0.2), dict(schedule="one-cycle"), "warmup is part of the one-cycle"),
    (dict(nesterov=True), dict(momentum=0.9), "nesterov needs momentum > 0"),
    (dict(augment_strength=0.6), dict(augment=True),
     "augment_strength scales the distortions of augment: give augment too"),
]


@pytest.mark.parametrize("bad, fix, line", CONFLICTS, ids=[c[2][:24] for c in CONFLICTS])
def test_each_conflict_alone_and_its_cure(bad, fix, line):
    found = config.problems({**GOOD, **bad})
    assert len(found) == 1 and found[0].startswith(line)
    assert config.problems({**GOOD, **bad, **fix}) == []


@pytest.mark.parametrize("value", [1e-9, 0.6, 1, 2])
def test_each_augment_strength_allowed_with_augment(value):
    assert config.problems({**GOOD, "augment": True, "augment_strength": value}) == []
    assert TrainConfig(**{**GOOD, "augment": True, "augment_strength": value}).augment_strength \
        == float(value)


def test_settings_missing_or_unknown():
    assert config.problems({k: v for k, v in GOOD.items() if k != "eta"}) == ["eta is missing"]
    # a setting a checkpoint from before it lacks: its default holds
    for key in config.LATER:
        assert config.problems({k: v for k, v in GOOD.items() if k != key}) == []
    assert config.problems({**GOOD, "seed": 0}) == ["seed is not a setting of a run"]


@pytest.fixture(scope="module")
def good_state():
    """A real run's state, as its checkpoint's JSON holds it: two epochs
    with validation, momentum."""
    net = Network([12, 3, 4], seed=1, device="cpu", dtype="float64")
    run = Run(net, mini_batch_size=5, eta=1.0, momentum=0.5, epochs=2)
    fit(run, blobs(40), validation_data=blobs(20, seed=1))
    state = run.state_dict()
    del state["arrays"]
    state["extra"] = {}
    return json.loads(json.dumps(state)), net


def edit(path, value):
    """A change to one field of a state: path is keys and indices."""
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


def best_changed(state):
    state["best"] = {**state["best"], "validation_accuracy": 0.123}


STATE_CASES = [
    (edit(["epoch"], KeyError), "state: epoch is missing"),
    (edit(["epoch"], -1), "state: epoch must be a whole number >= 0, got -1"),
    (edit(["epoch"], 2.0), "state: epoch must be a whole number >= 0, got 2.0"),
    (edit(["epoch"], True), "state: epoch must be a whole number >= 0, got True"),
    (edit(["eta"], 0), "state: eta must be a positive number, got 0"),
    (edit(["eta"], NAN), "state: eta must be a positive number, got nan"),
    (edit(["eta"], True), "state: eta must be a positive number, got True"),
    (edit(["since"], -1), "state: since must be a whole number >= 0, got -1"),
    (edit(["since"], False), "state: since must be a whole number >= 0, got False"),
    (edit(["ended"], "stopped"), "state: ended must be null or one of patience, schedule, "
                                 "interrupted, diverged, got 'stopped'"),
    (edit(["rng"], {"bit_generator": "PCG64"}),
     "state: rng must be a PCG64 generator state, got {\"bit_generator\": \"PCG64\"}"),
    (edit(["seed"], -1), "state: seed must be null or a whole number >= 0, got -1"),
    (edit(["seed"], 1.5), "state: seed must be null or a whole number >= 0, got 1.5"),
    (edit(["seed"], True), "state: seed must be null or a whole number >= 0, got True"),
    (edit(["extra"], []), "state: extra must be a JSON object, got []"),
    (edit(["history"], {}), "state: history must be a list of epoch records, got {}"),
    (edit(["history", 0], 3), "state: history[0] is 3, not an epoch's record"),
    (edit(["history", 1, "epoch"], 1), "state: history[1] has epoch 1, expected 2"),
    (edit(["history", 0, "epoch"], True), "state: history[0] has epoch True, expected 1"),
    (edit(["history", 0, "eta"], KeyError), "state: history[0] has no eta"),
    (edit(["history", 0, "seconds"], KeyError), "state: history[0] has no seconds"),
    (edit(["history", 1, "elapsed"], KeyError), "state: history[1] has no elapsed"),
    (edit(["history", 0, "validation_cost"], None),
     "state: history[0] has validation_cost = None, not a finite number"),
    (edit(["history", 0, "validation_cost"], INF),
     "state: history[0] has validation_cost = inf, not a finite number"),
    (edit(["history", 0, "eta"], 0.0), "state: history[0] has eta = 0.0, out of range"),
    (edit(["history", 0, "seconds"], -1.0), "state: history[0] has seconds = -1.0, out of range"),
    (edit(["history", 0, "elapsed"], -1.0), "state: history[0] has elapsed = -1.0, out of range"),
    (edit(["history", 0, "validation_accuracy"], 1.5),
     "state: history[0] has validation_accuracy = 1.5, not in [0, 1]"),
    (edit(["history", 0, "validation_accuracy"], -0.5),
     "state: history[0] has validation_accuracy = -0.5, not in [0, 1]"),
    (edit(["history", 0, "validation_correct"], 2.5),
     "state: history[0] has validation_correct = 2.5, not a whole number >= 0"),
    (edit(["history", 0, "validation_total"], 20.5),  # -1 would be below its count first
     "state: history[0] has validation_total = 20.5, not a whole number >= 0"),
    (edit(["history", 0, "validation_correct"], 21),
     "state: history[0] has validation_correct = 21, more than its total"),
    (edit(["epoch"], 1), "state: history holds 2 epochs, but epoch is 1"),
    (edit(["best"], "x"), "state: best must be null or an epoch's record, got 'x'"),
    (edit(["best"], None), "state: best is null, but the history has validation accuracies"),
    (best_changed, "state: best must be one of the history's validated epochs, got "),
    (edit(["settings"], []), "state: settings must be a JSON object, got []"),
    (edit(["settings", "eta"], -1), "state: settings.eta must be a positive number, got -1"),
    (edit(["settings", "seed"], 0), "state: settings.seed is not a setting of a run"),
    (edit(["eta"], 2.0), "state: eta 2.0 is above the run's starting eta 1.0 (the schedule "
                         "only halves it)"),
    (edit(["since"], 3), "state: since must be at most epoch (2), got 3"),
]


@pytest.mark.parametrize("change, line", STATE_CASES, ids=[c[1][7:40] for c in STATE_CASES])
def test_each_condition_of_a_runs_state_alone(good_state, change, line):
    state, net = good_state
    assert runstate.problems(state, net) == []
    bad = json.loads(json.dumps(state))
    change(bad)
    found = runstate.problems(bad, net)
    assert len(found) == 1 and found[0].startswith(line), found


@pytest.mark.parametrize("change", [edit(["seed"], None), edit(["seed"], 0),
                                    edit(["ended"], None), edit(["ended"], "interrupted"),
                                    edit(["since"], 2), edit(["eta"], 1.0),
                                    edit(["history", 0, "validation_accuracy"], 1.0),
                                    edit(["history", 0, "validation_accuracy"], 0.0)])
def test_each_edge_a_runs_state_allows_is_allowed(good_state, change):
    state, net = good_state
    ok = json.loads(json.dumps(state))
    change(ok)
    if ok["best"] is not None:  # the best record is one of the history's
        ok["best"] = max(ok["history"], key=lambda r: r["validation_accuracy"])
    assert runstate.problems(ok, net) == []


def member(**kw):
    return Network([12, 3, 4], seed=kw.pop("seed", 1), device=kw.pop("device", "cpu"), **kw)


def fashion():
    net = member()
    net.classes = ["T-shirt", "trouser", "pullover", "dress"]
    return net


def strict():
    return member(device=pytest.importorskip("array_api_strict"))


ENSEMBLES = [
    ("inputs", lambda: Network([16, 3, 4], device="cpu")),
    ("outputs", lambda: Network([12, 3, 5], device="cpu")),
    ("class names", fashion),  # an MNIST and a Fashion-MNIST net of the same shapes
    ("output layer", lambda: Model("fc:3,softmax:4", cost="log-likelihood", input_shape=(12,),
                                   device="cpu")),
    ("cost", lambda: Model("fc:3,fc:4", cost="cross-entropy", input_shape=(12,), device="cpu")),
    ("device", strict),
]


@pytest.mark.parametrize("what, other", ENSEMBLES, ids=[e[0] for e in ENSEMBLES])
def test_each_condition_of_an_ensembles_members_alone(what, other):
    first, odd = member(), other()
    with pytest.raises(ValueError, match=f"must have the same {what}: "):
        Ensemble([first, member(seed=2), odd])
    # the same shapes, seeds apart: an ensemble
    assert Ensemble([first, member(seed=2), Model("fc:3,fc:4", input_shape=(12,),
                                                  device="cpu")]).n_in == 12


def status(call, *args):
    with pytest.raises(HTTPError) as exc:
        call(*args)
    return exc.value.status, str(exc.value)


PIXEL_CASES = [
    (b'{"pixels": [[0, -1]]}', imaging.PIXEL_RANGE), (b'{"pixels": [[0, 256]]}', imaging.PIXEL_RANGE),
    (b'{"pixels": [[0, 255.5]]}', imaging.PIXEL_RANGE), (b'{"pixels": [[0, NaN]]}', imaging.PIXEL_RANGE),
    (b'{"pixels": [[0, 1e400]]}', imaging.PIXEL_RANGE),
    (b'[[0, 1]]', 'expected a JSON object {"pixels": [[...], ...]}'),
    (b'{"pixel": [[0, 1]]}', 'expected a JSON object {"pixels": [[...], ...]}'),
    (b'{"pixels": [[0, 1], [1]]}', "pixels must be a 2-D array of numbers, rows of equal length"),
    (b'{"pixels": [0, 1]}', "pixels must be a 2-D array (rows of numbers), got shape (2,)"),
    (b'{"pixels": [[[0, 1]]]}', "pixels must be a 2-D array (rows of numbers), got shape (1, 1, 2)"),
    (b'{"pixels": ' + b"[" * 32 + b"]" * 32 + b"}", "malformed JSON: nested too deeply"),
]


@pytest.mark.parametrize("body, line", PIXEL_CASES, ids=[c[0][:30].decode() for c in PIXEL_CASES])
def test_each_condition_of_serves_json_pixels_alone(body, line):
    assert status(bodies.pixels, body) == (400, line)


def test_the_edges_serves_json_pixels_allow():
    a, n = bodies.pixels(b'{"pixels": [[0, 255], [0.5, 1]]}')
    assert a.tolist() == [[0, 255], [0.5, 1]] and n == 4
    deep = b'{"pixels": ' + b"[" * 31 + b"]" * 31 + b"}"  # 32 with the object's brace
    assert bodies.nesting(deep) == bodies.MAX_NESTING
    assert status(bodies.pixels, deep)[1] != "malformed JSON: nested too deeply"


@pytest.mark.parametrize("width, height, why", [
    (imaging.MAX_SIDE + 1, 1, "a side"), (1, imaging.MAX_SIDE + 1, "a side"),
    (8001, 8000, "megapixels"), (8000, 8001, "megapixels")])
def test_each_limit_of_a_pictures_size_alone(width, height, why):
    assert why in imaging.size_error(width, height)
    assert width * height != imaging.MAX_PIXELS


@pytest.mark.parametrize("width, height", [(imaging.MAX_SIDE, 1), (1, imaging.MAX_SIDE),
                                           (8000, 8000)])
def test_the_largest_picture_sizes_are_allowed(width, height):
    assert imaging.size_error(width, height) is None
    assert math.prod((width, height)) <= imaging.MAX_PIXELS
