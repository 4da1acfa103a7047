"""Write the corpus files of one version of digitnet (tests/data/README.md).

Run it with that version's code first on the path, never installed:

    git worktree add /tmp/old-C C
    DIGITNET_DATA=/work/shared/data PYTHONPATH=/tmp/old-C/src \
        python tests/data/make_corpus.py tests/data C

It trains tiny networks on a slice of the real MNIST (the first 1,200
training and 500 test images, split 1,000/200: tests/conftest.py's
small_mnist_dir) through that version's own command line, as a user would
have, and writes what that version read back from each file to
C.json: the values tests/test_corpus.py expects today's code to read.  Only
the command-line flags and calls every version since the first one has are
used; the features a version lacks are skipped (`has`).  The data slice
stays in a temporary folder: no dataset file is kept.
"""

import contextlib
import gzip
import io
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

import digitnet
from digitnet import cli, data

OUT, TAG = Path(sys.argv[1]).resolve(), sys.argv[2]
SOURCE_CLI = Path(cli.__file__).read_text()
SOURCE = Path(os.environ["DIGITNET_DATA"]) / "mnist"
TRAIN, VALIDATION, TEST = 1000, 200, 500
# Fixed inputs every version's networks are run on: their outputs are the
# values a loaded file must reproduce.
PROBE = np.random.default_rng(24).random((784, 3))


def idx_slice(source, target, n):
    raw = gzip.decompress(source.read_bytes())
    magic, _ = struct.unpack(">II", raw[:8])
    dims = magic & 0xFF
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    header = 4 + 4 * dims
    record = int(np.prod(shape[1:], dtype=np.int64))
    out = raw[:4] + struct.pack(">I", n) + raw[8:header] + raw[header:header + n * record]
    target.write_bytes(gzip.compress(out, compresslevel=1))


def has(module, name):
    return hasattr(module, name)


def train(name, *flags, checkpoint=False):
    """`digitnet train` of this version; the model file (and the checkpoint)."""
    # relative names, run from OUT: the paths a checkpoint keeps name no machine
    argv = ["train", "--data-dir", str(ROOT), "--epochs", "2", "--save", f"{TAG}-{name}.npz",
            *flags]
    if checkpoint:
        argv += ["--checkpoint", f"{TAG}-{name}-run.npz"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(argv) in (0, None), argv


def describe(path, test):
    """What this version reads from a file: the values the test compares."""
    path = Path(path)
    if path.name.endswith("-run.npz"):
        from digitnet import checkpoint
        run, extra = checkpoint.load_run(path, device="cpu")
        net = run.net
        settings = run.settings if hasattr(run, "settings") else run.config.to_json()
        entry = {"run": True, "epoch": run.epoch, "eta": run.eta, "since": run.since,
                 "ended": run.ended, "history": run.history, "extra": extra,
                 "settings": dict(settings),
                 "best_epoch": None if run.best is None else run.best[0]["epoch"],
                 "momentum": run.velocities is not None,
                 "optimizer": getattr(getattr(run, "optimizer", None), "kind", "sgd"),
                 "rng": net.rng.bit_generator.state["state"]}
    else:
        net = digitnet.load(path, device="cpu") if has(digitnet, "load") else \
            digitnet.Network.load(path, device="cpu")
        entry = {"run": False}
    out = np.asarray(net.feedforward(net.asarray(PROBE)))
    if not entry["run"]:  # a version before seeds were kept gave every loaded net seed 0
        with np.load(path, allow_pickle=False) as arrays:
            if "model" in arrays:  # format version 2: the description says
                net.seed = json.loads(str(arrays["model"]))["seed"]
            else:
                net.seed = int(arrays["seed"]) if "seed" in arrays else None
    entry.update(kind=type(net).__name__, seed=net.seed,
                 classes=getattr(net, "classes", None), dtype=net.dtype_name,
                 outputs=out.tolist(), test_correct=int(net.evaluate(test)),
                 bytes=path.stat().st_size)
    if hasattr(net, "sizes"):
        entry["sizes"] = list(net.sizes)
    if hasattr(net, "spec"):
        entry["layers"] = net.spec if isinstance(net.spec, str) else None
    return entry


def seed_null_run():
    """A run of Network([784, 3, 10], seed=None), saved from Python (no
    command line kept), and its model file."""
    from digitnet import checkpoint, training
    training_set, validation, _ = data.load_mnist(str(ROOT))
    net = digitnet.Network([784, 3, 10], seed=None, device="cpu")
    try:  # TrainConfig's Run, or the first Run's settings by position
        run = training.Run(net, mini_batch_size=10, eta=3.0, epochs=2)
        training.fit(run, training_set, validation_data=validation)
    except TypeError:
        run = training.Run(net, 10, 3.0)
        training.fit(run, training_set, 2, validation_data=validation)
    checkpoint.save_run(run, OUT / f"{TAG}-seednull-run.npz")
    checkpoint.save(run.net, OUT / f"{TAG}-seednull.npz")


with tempfile.TemporaryDirectory() as tmp:
    ROOT = Path(tmp)
    (ROOT / "mnist").mkdir()
    for name, n in (("train-images-idx3-ubyte.gz", TRAIN + VALIDATION),
                    ("train-labels-idx1-ubyte.gz", TRAIN + VALIDATION),
                    ("t10k-images-idx3-ubyte.gz", TEST), ("t10k-labels-idx1-ubyte.gz", TEST)):
        idx_slice(SOURCE / name, ROOT / "mnist" / name, n)
    data.N_TRAIN = TRAIN
    os.chdir(OUT)
    later = has(digitnet, "Model")  # run checkpoints came with the later chapters
    # the command line's default seed, 0: the seed most files hold
    train("network", "--sizes", "784", "3", "10", "--batch-size", "10", "--eta", "3",
          checkpoint=later)
    if later:
        train("dense", "--layers", "fc:3,softmax:10", "--cost", "log-likelihood", "--seed", "5",
              "--batch-size", "10", "--eta", "0.1", "--momentum", "0.5", "--lmbda", "0.1",
              checkpoint=True)
        train("conv", "--layers", "conv:2x5x5,pool:2,fc:10", "--seed", "3", "--batch-size", "10",
              "--eta", "0.5", "--cost", "cross-entropy", checkpoint=True)
        seed_null_run()
    if "--schedule" in SOURCE_CLI:  # the levers: a finished one-cycle run, tested at the end
        train("onecycle", "--sizes", "784", "3", "10", "--batch-size", "64", "--eta", "1",
              "--schedule", "one-cycle", "--warmup", "0.3", "--momentum", "0.9", "--nesterov",
              "--label-smoothing", "0.1", "--test-at-end", "--seed", "7", checkpoint=True)
    if "--optimizer" in SOURCE_CLI:  # optimizers that own their state: Adam's moments
        train("adam", "--layers", "fc:3,softmax:10", "--seed", "9", "--batch-size", "10",
              "--eta", "0.01", "--optimizer", "adam", "--lmbda", "0.1", checkpoint=True)
    if "KxKpPAD" in Path(cli.__file__).with_name("model.py").read_text():  # padded convs
        train("padded", "--layers", "conv:2x3x3p1,pool:2,fc:10", "--seed", "4", "--batch-size",
              "10", "--eta", "0.5", "--cost", "cross-entropy", checkpoint=True)
    if '"bn"' in Path(cli.__file__).with_name("model.py").read_text():  # batch normalization
        train("bn", "--layers", "conv:2x3x3p1,bn,pool:2,fc:8,bn,softmax:10", "--seed", "6",
              "--batch-size", "10", "--eta", "0.1", "--momentum", "0.5", "--activation", "relu",
              "--init", "scaled", checkpoint=True)
    test = data.load_mnist(str(ROOT))[2]
    manifest = {"commit": TAG, "probe_seed": 24, "files": {
        p.name: describe(p, test) for p in sorted(OUT.glob(f"{TAG}-*.npz"))}}
    (OUT / f"{TAG}.json").write_text(json.dumps(manifest, indent=1) + "\n")
