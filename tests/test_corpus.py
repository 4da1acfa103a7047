"""Files users already hold: every model file and run checkpoint in the
corpus (tests/data/, written by the code of each version) loads through
digitnet.load, load_run, `digitnet train --resume` and `digitnet evaluate`,
and holds what the version that wrote it read back from it."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import digitnet
from digitnet import checkpoint, cli
from digitnet.config import DEFAULTS, LATER

HERE = Path(__file__).resolve().parent / "data"
MANIFESTS = [json.loads(p.read_text()) for p in sorted(HERE.glob("*.json"))]
ENTRIES = {name: entry for m in MANIFESTS for name, entry in m["files"].items()}
MODELS = sorted(n for n, e in ENTRIES.items() if not e["run"])
RUNS = sorted(n for n, e in ENTRIES.items() if e["run"])
PROBE = np.random.default_rng(24).random((784, 3))  # make_corpus.py's


def test_the_corpus_is_whole():
    """Every version's files, each kind, each seed: a file that went missing
    would take its test with it."""
    assert sorted(m["commit"] for m in MANIFESTS) == ["1c6e49b", "1d94826", "57d6ca1", "91b84be",
                                                      "d1ab6ce", "f3a56a6"]
    assert sorted(p.name for p in HERE.glob("*.npz")) == sorted(ENTRIES)
    seeds = {ENTRIES[n]["seed"] for n in MODELS}
    assert {None, 0, 3, 5, 7} <= seeds
    assert {n.split("-", 1)[1] for n in RUNS} == {"network-run.npz", "dense-run.npz",
                                                  "conv-run.npz", "seednull-run.npz",
                                                  "onecycle-run.npz", "adam-run.npz",
                                                  "padded-run.npz", "bn-run.npz"}
    assert sum(p.stat().st_size for p in HERE.iterdir()) < 2 << 20


def same_network(net, entry):
    assert type(net).__name__ == entry["kind"]
    assert net.seed == entry["seed"] and type(net.seed) is type(entry["seed"])
    assert net.classes == entry["classes"] and net.dtype_name == entry["dtype"]
    if "sizes" in entry:
        assert list(net.sizes) == entry["sizes"]
    if entry.get("layers"):
        assert net.spec == entry["layers"]
    out = np.asarray(net.feedforward(net.asarray(PROBE)))
    np.testing.assert_allclose(out, np.array(entry["outputs"]), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", MODELS)
def test_a_model_file_loads_as_its_version_read_it(name):
    same_network(digitnet.load(HERE / name, device="cpu"), ENTRIES[name])


@pytest.mark.parametrize("name", RUNS)
def test_a_run_checkpoint_loads_with_every_field_it_holds(name):
    entry = ENTRIES[name]
    run, extra = checkpoint.load_run(HERE / name, device="cpu")
    same_network(run.net, entry)
    assert (run.epoch, run.eta, run.since, run.ended) == (entry["epoch"], entry["eta"],
                                                          entry["since"], entry["ended"])
    assert run.history == entry["history"] and extra == entry["extra"]
    # the settings a version did not have are their defaults
    assert run.config.to_json() == {**{k: DEFAULTS[k] for k in LATER}, **entry["settings"]}
    assert (run.best.record["epoch"] if run.best else None) == entry["best_epoch"]
    assert (run.velocities is not None) == entry["momentum"]
    assert run.optimizer.kind == entry.get("optimizer", "sgd")  # no optimizer field before Adam
    assert run.net.rng.bit_generator.state["state"] == entry["rng"]


def run_cli(*argv, capsys=None):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize("name", RUNS)
def test_every_checkpoint_resumes_and_its_files_keep_the_seed(name, small_split, tmp_path,
                                                               capsys):
    """One more epoch from each version's checkpoint: no traceback for a
    null seed, the history goes on, and the checkpoint and model file it
    writes keep the seed (0, the command line's default, included)."""
    entry = ENTRIES[name]
    ckpt, save = tmp_path / "run.npz", tmp_path / "model.npz"
    out = run_cli("train", "--resume", HERE / name, "--epochs", entry["epoch"] + 1,
                  "--checkpoint", ckpt, "--save", save, *small_split, capsys=capsys)
    assert f"from epoch {entry['epoch']}" in out
    run, _ = checkpoint.load_run(ckpt, device="cpu")
    assert run.epoch == entry["epoch"] + 1 and run.net.seed == entry["seed"]
    assert [r["epoch"] for r in run.history] == list(range(1, run.epoch + 1))
    for old, new in zip(entry["history"], run.history):
        assert {k: v for k, v in new.items() if not k.startswith("test")} == \
               {k: v for k, v in old.items() if not k.startswith("test")}
    assert digitnet.load(save, device="cpu").seed == entry["seed"]


def group(kind):
    return [n for n in MODELS if n.split("-", 1)[1].rsplit(".", 1)[0] in kind]


@pytest.mark.parametrize("kind", [("network", "seednull", "onecycle"), ("dense",), ("conv",)])
def test_evaluate_counts_what_each_version_counted_and_their_ensemble(kind, small_split,
                                                                       capsys):
    """`digitnet evaluate` of each kind's files from every version: each
    file's count is the one its own version made on the same 500 images,
    and the ensemble line is their outputs averaged, computed apart."""
    names = group(kind)
    assert len(names) >= 3
    out = run_cli("evaluate", *(HERE / n for n in names), *small_split, capsys=capsys)
    counts = [int(c) for c in re.findall(r": test (\d+)/500 ", out)]
    assert counts[:-1] == [ENTRIES[n]["test_correct"] for n in names]
    _, _, test = digitnet.load_mnist(small_split[1])
    nets = [digitnet.load(HERE / n, device="cpu") for n in names]
    x = test.rows.T.astype(np.float32) / 255 if test.rows.dtype == np.uint8 else test.rows.T
    mean = sum(np.asarray(net.feedforward(net.asarray(x))) for net in nets) / len(nets)
    assert counts[-1] == int(np.sum(np.argmax(mean, axis=0) == np.asarray(test.labels)))
    assert f"ensemble of {len(names)}: test {counts[-1]}/500" in out


def test_evaluate_of_exactly_two_models_has_the_ensemble_line(small_split, capsys):
    names = ["1c6e49b-network.npz", "1d94826-seednull.npz"]
    out = run_cli("evaluate", *(HERE / n for n in names), *small_split, capsys=capsys)
    lines = out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("ensemble of 2: test ")
    assert [int(c) for c in re.findall(r": test (\d+)/500 ", out)][:2] == \
        [ENTRIES[n]["test_correct"] for n in names]
