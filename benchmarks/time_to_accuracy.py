"""Seconds until a README recipe's validation-selected test accuracy first
reaches a target: what a user waits for, evaluation included.

    DIGITNET_DATA=../shared/data python benchmarks/time_to_accuracy.py dense [conv] [--seed S]

For each recipe the trainer runs as `digitnet train` runs it (the same
Model, options and data, the expanded set for conv), and after every epoch
the test accuracy at the best validation epoch so far is compared with the
recipe's targets (dense: 98.0%; conv: 99.3% and 99.5%).  Prints, per
target, the epoch and the wall seconds since training started (data
loading and expansion excluded), or that the run ended first.  Not a timed
test: run it alone on a quiet machine, and compare figures only within one
sitting (this machine's speed wanders by up to 2.5x from day to day).
"""

import os
import sys
import time

import digitnet
from digitnet import training

RECIPES = {
    "dense": (dict(layers="fc:300,softmax:10", activation="relu", init="scaled", dropout=0.3),
              dict(mini_batch_size=20, eta=0.05, lmbda=5.0, momentum=0.9, patience=3,
                   eta_decay=16),
              40, False, (0.980,)),
    "conv": (dict(layers="conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10",
                  activation="relu", init="scaled", dropout=0.5),
             dict(mini_batch_size=20, eta=0.01, lmbda=5.0, momentum=0.9, patience=1,
                  eta_decay=32),
             12, True, (0.993, 0.995)),
}


def time_to(name, seed=0):
    """{target: (epoch, seconds) or None} for one recipe and seed."""
    model_options, options, epochs, expand, targets = RECIPES[name]
    training_set, validation, test = digitnet.load_dataset(
        "mnist", os.environ.get("DIGITNET_DATA"), download_missing=False)
    if expand:
        training_set = digitnet.expand(training_set)
    net = digitnet.Model(**model_options, seed=seed, device="cpu")
    run = training.Run(net, **options)
    reached = dict.fromkeys(targets)
    started = time.perf_counter()

    def on_epoch(record, run):
        best = training.best_epoch(run.history)
        for target in targets:
            if reached[target] is None and best["test_accuracy"] >= target:
                reached[target] = (record["epoch"], time.perf_counter() - started)
        print(f"  {name} epoch {record['epoch']}: best-validation test accuracy "
              f"{100 * best['test_accuracy']:.2f}% at {time.perf_counter() - started:.0f} s",
              flush=True)

    training.fit(run, training_set, epochs, validation, test, on_epoch=on_epoch)
    return reached, time.perf_counter() - started


def main(argv):
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    names = [a for a in argv if a in RECIPES] or ["dense"]
    for name in names:
        reached, total = time_to(name, seed)
        for target, hit in reached.items():
            when = (f"epoch {hit[0]}, {hit[1]:.0f} s" if hit else "not reached")
            print(f"{name} seed {seed}: {100 * target:.1f}% -> {when} (whole run {total:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
