"""A/B speed of two versions of digitnet in one process, epoch by epoch.

    DIGITNET_DATA=../shared/data python benchmarks/ab_speed.py OLD/src NEW/src [ROUNDS] [CASE...]

Both source trees are imported side by side (as packages `digitnet_a` and
`digitnet_b`), and each case runs one epoch of the old version, then one of
the new, ROUNDS times, so both see the same machine: this one's speed
wanders by 2x within minutes, and only close pairs compare fairly.  Cases:
the chapter-1 fast path ([784, 30, 10], float32) at m = 10, 100 and 1000
over 10,000 real MNIST images; the dense recipe's network and options
(fc:300 ReLU, softmax, dropout 0.3, momentum, L2, m = 20) over 10,000; and
the same with the speedrun's levers (one-cycle with warm-up, Nesterov,
label smoothing); and the conv recipe's (m = 20) over 2,000 expanded
images; and the README speed recipe's network (with `bn`, m = 64,
its levers) over the same images; and the handwriting recipe (that
network, `--augment`) and the record recipe (its 3x3 stacks, `--augment`
at strength 0.4) over the 2,000 images unexpanded.  Only `sgd` with no
monitoring is timed, which old and new versions both have.  Prints each
case's median examples per second, and the median and range of the
per-pair new/old ratios.  CASE words pick the cases whose names contain
them (e.g. `dense conv`).
"""

import importlib.util
import inspect
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Numba's cache (digitnet/jit.py) names a function's module: one compiled
# here as digitnet_b must not be found by a later run of digitnet.
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ab_speed_numba_")

CONV = "conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10"
# the README's speed recipe's network (trees before batch normalization lack it)
SPEED_BN = "conv:16x5x5,bn,pool:2,conv:32x5x5,bn,pool:2,fc:128,bn,softmax:10"
RECORD = ("conv:32x3x3,bn,conv:32x3x3,bn,pool:2,conv:64x3x3,bn,conv:64x3x3,bn,pool:2,"
          "fc:256,bn,softmax:10")


def load(src, name):
    """The digitnet package under `src`, imported as `name`."""
    init = Path(src) / "digitnet" / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, init,
                                                  submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cases(dn):
    """(name, examples, epoch) for one version `dn` of the package."""
    training, _, _ = dn.load_dataset("mnist", os.environ.get("DIGITNET_DATA"),
                                     download_missing=False)
    dense_data, conv_data = training[:10_000], dn.expand(training[:400])
    # versions since the book's progress lines print them unless told not to
    sgd = importlib.import_module(f"{dn.__name__}.training").sgd
    quiet = {"verbose": False} if "verbose" in inspect.signature(sgd).parameters else {}
    for m in (10, 100, 1000):
        yield f"ch1 m={m}", len(dense_data), lambda m=m: dn.Network(
            [784, 30, 10], seed=0, device="cpu").sgd(dense_data, 1, m, 3.0, **quiet)
    dense = lambda: dn.Model("fc:300,softmax:10", activation="relu", init="scaled",  # noqa: E731
                             dropout=0.3, seed=0, device="cpu")
    yield "dense recipe m=20", len(dense_data), lambda: dense().sgd(
        dense_data, 1, 20, 0.05, lmbda=5.0, momentum=0.9, **quiet)
    yield "dense levers m=20", len(dense_data), lambda: dense().sgd(
        dense_data, 1, 20, 0.05, lmbda=5.0, momentum=0.9, nesterov=True, schedule="one-cycle",
        warmup=0.2, label_smoothing=0.1, **quiet)
    yield "conv recipe m=20", len(conv_data), lambda: dn.Model(
        CONV, activation="relu", init="scaled", dropout=0.5, seed=0,
        device="cpu").sgd(conv_data, 1, 20, 0.01, lmbda=5.0, momentum=0.9, **quiet)
    levers = dict(momentum=0.9, nesterov=True, schedule="one-cycle", warmup=0.2,
                  label_smoothing=0.1, **quiet)
    yield "speed bn m=64", len(conv_data), lambda: dn.Model(
        SPEED_BN, activation="relu", init="scaled", seed=0, device="cpu").sgd(
        conv_data, 1, 64, 0.2, lmbda=25.0, **levers)
    augment_data = training[:2000]
    yield "handwriting m=64", len(augment_data), lambda: dn.Model(
        SPEED_BN, activation="relu", init="scaled", seed=0, device="cpu").sgd(
        augment_data, 1, 64, 0.2, lmbda=5.0, augment=True, **levers)
    yield "record m=64", len(augment_data), lambda: dn.Model(
        RECORD, activation="relu", init="scaled", seed=0, device="cpu").sgd(
        augment_data, 1, 64, 0.2, lmbda=5.0, augment=True, augment_strength=0.4, **levers)


def timed(epoch):
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def main(old, new, rounds=9, only=()):
    pairs = zip(cases(load(old, "digitnet_a")), cases(load(new, "digitnet_b")))
    pairs = [p for p in pairs if not only or any(word in p[0][0] for word in only)]
    print(f"{'case':<20}{'old ex/s':>11}{'new ex/s':>11}{'new/old':>9}  [range]   "
          f"(medians of {rounds} old/new pairs)")
    for (name, n, old_epoch), (_, _, new_epoch) in pairs:
        try:
            old_epoch(), new_epoch()  # warm-up
        except (ValueError, TypeError) as e:  # a layer or an option the old tree lacks
            print(f"{name:<20}not in both trees: {e}")
            continue
        times = [(timed(old_epoch), timed(new_epoch)) for _ in range(rounds)]
        ratios = [a / b for a, b in times]
        o = n / statistics.median(a for a, _ in times)
        w = n / statistics.median(b for _, b in times)
        print(f"{name:<20}{o:>11,.0f}{w:>11,.0f}{statistics.median(ratios):>9.2f}  "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 9, sys.argv[4:])
