"""Seconds until a README recipe's validation-selected test accuracy first
reaches a target: what a user waits for, evaluation included.

    DIGITNET_DATA=../shared/data python benchmarks/time_to_accuracy.py dense [conv] [--seed S] \
        [--torch] [--src OLD/src] [--peers-only] [--curve TORCH.json]

For each recipe the trainer runs as `digitnet train` runs it (the same
Model, options and data, the expanded set for conv), and after every epoch
the test accuracy at the best validation epoch so far is compared with the
recipe's targets (dense: 98.0%; conv: 99.3% and 99.5%).  Prints, per
target, the epoch and the wall seconds since training started (data
loading and expansion excluded), or that the run ended first.  `--torch`
also runs the PyTorch peer (peer_torch.make_model_epoch: the same network,
options, data, schedule and evaluation each epoch), and `--src` an older
digitnet source tree, one after the other in the same run (`--peers-only`
skips the current digitnet; `--curve` writes the peer's epochs as a
metrics file for `digitnet plot time`).  Not a timed
test: run it alone on a quiet machine, and compare figures only within one
sitting (this machine's speed wanders by up to 2.5x from day to day).
"""

import copy
import json
import os
import sys
import time

import digitnet
import digitnet.training  # noqa: F401  (dn.training below)
from digitnet import schedules
from digitnet.config import TrainConfig
from ab_speed import load  # the script's own folder is on sys.path

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
    # the README's speed recipe (issue 20); with test_at_end (a lever of
    # its table) the test set is measured once, at the end, and the time to
    # a target is then the whole run's when it is reached
    "speed": (dict(layers="conv:16x5x5,pool:2,conv:32x5x5,pool:2,fc:128,softmax:10",
                   activation="relu", init="scaled"),
              dict(mini_batch_size=64, eta=0.1, lmbda=25.0, momentum=0.9, nesterov=True,
                   schedule="one-cycle", warmup=0.2, label_smoothing=0.1),
              3, True, (0.993, 0.995)),
    # issue 27's speed recipe: batch normalization, one epoch of the expanded set
    "speed-bn": (dict(layers="conv:16x5x5,bn,pool:2,conv:32x5x5,bn,pool:2,fc:128,bn,softmax:10",
                      activation="relu", init="scaled"),
                 dict(mini_batch_size=64, eta=0.2, lmbda=25.0, momentum=0.9, nesterov=True,
                      schedule="one-cycle", warmup=0.2, label_smoothing=0.1),
                 1, True, (0.993, 0.995)),
}


def datasets(dn, expand):
    training_set, validation, test = dn.load_dataset(
        "mnist", os.environ.get("DIGITNET_DATA"), download_missing=False)
    return (dn.expand(training_set) if expand else training_set), validation, test


def time_to(name, seed=0, dn=digitnet, label="digitnet"):
    """{target: (epoch, seconds) or None} for one recipe and seed."""
    model_options, options, epochs, expand, targets = RECIPES[name]
    training_set, validation, test = datasets(dn, expand)
    net = dn.Model(**model_options, seed=seed, device="cpu")
    training = dn.training
    run = training.Run(net, **options)
    reached = dict.fromkeys(targets)
    started = time.perf_counter()

    def on_epoch(record, run):
        best = training.best_epoch(run.history)
        if "test_accuracy" not in best:  # test_at_end: measured after the last epoch
            print(f"  {label} {name} epoch {record['epoch']}: validation "
                  f"{100 * record['validation_accuracy']:.2f}% at "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            return
        for target in targets:
            if reached[target] is None and best["test_accuracy"] >= target:
                reached[target] = (record["epoch"], time.perf_counter() - started)
        print(f"  {label} {name} epoch {record['epoch']}: best-validation test accuracy "
              f"{100 * best['test_accuracy']:.2f}% at {time.perf_counter() - started:.0f} s",
              flush=True)

    training.fit(run, training_set, epochs, validation_data=validation, test_data=test,
                 on_epoch=on_epoch)
    total = time.perf_counter() - started
    if options.get("test_at_end"):
        best = training.best_epoch(run.history)
        reached = {target: (best["epoch"], total) if best["test_accuracy"] >= target else None
                   for target in targets}
        print(f"  {label} {name}: test accuracy {100 * best['test_accuracy']:.2f}% at the best "
              f"validation epoch {best['epoch']}, {total:.0f} s", flush=True)
    return reached, total


def torch_time_to(name, seed=0, curve=None):
    """time_to for the PyTorch peer: the same recipe, schedule (halve eta
    after `patience` epochs without a better validation accuracy, stop once
    it would fall to eta/eta_decay) and selection (test at the best
    validation epoch)."""
    import torch
    from peer_torch import accuracy, make_model_epoch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model_options, options, epochs, expand, targets = RECIPES[name]
    training_set, validation, test = datasets(digitnet, expand)
    config = TrainConfig(**options, epochs=epochs)
    steps = -(-len(training_set) // config.mini_batch_size) * epochs
    rate = None if config.schedule == "constant" else (
        lambda step: config.eta * schedules.fraction(config.schedule, config.warmup, step, steps))
    epoch = make_model_epoch(torch, model_options["layers"], training_set.images.T,
                             training_set.labels, config.mini_batch_size, config.eta,
                             config.lmbda, config.momentum, model_options.get("dropout", 0.0),
                             n=len(training_set), seed=seed, nesterov=config.nesterov,
                             label_smoothing=config.label_smoothing, rate=rate)
    conv = model_options["layers"].startswith("conv")
    reached, best, since, eta = dict.fromkeys(targets), None, 0, config.eta
    records = []  # as a --metrics file's, written to `curve` for `digitnet plot time`
    started = time.perf_counter()
    for e in range(1, epochs + 1):
        epoch()
        val = accuracy(torch, epoch.model, validation, conv)
        records.append({"epoch": e, "validation_accuracy": val})
        if best is None or val > best[0]:
            # as digitnet's test_at_end: the best epoch's weights kept, tested once
            tst = (copy.deepcopy(epoch.model.state_dict()) if config.test_at_end
                   else accuracy(torch, epoch.model, test, conv))
            best, since = (val, tst, e), 0
        else:
            since += 1
        if config.test_at_end:
            print(f"  torch {name} epoch {e}: validation {100 * val:.2f}% at "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            continue
        records[-1].update(test_accuracy=tst, elapsed=time.perf_counter() - started)
        for target in targets:
            if reached[target] is None and best[1] >= target:
                reached[target] = (e, time.perf_counter() - started)
        print(f"  torch {name} epoch {e}: best-validation test accuracy {100 * best[1]:.2f}% "
              f"at {time.perf_counter() - started:.0f} s", flush=True)
        if config.patience is not None and since >= config.patience:
            if eta / 2 <= config.eta / config.eta_decay:
                break
            eta, since = eta / 2, 0
            for group in epoch.optimizer.param_groups:
                group["lr"] = eta
    if curve:
        with open(curve, "w") as f:
            json.dump({"config": {"peer": "torch", "recipe": name, "seed": seed},
                       "epochs": records}, f)
    if config.test_at_end:
        epoch.model.load_state_dict(best[1])
        tst = accuracy(torch, epoch.model, test, conv)
        total = time.perf_counter() - started
        reached = {target: (best[2], total) if tst >= target else None
                   for target in targets}
        print(f"  torch {name}: test accuracy {100 * tst:.2f}% at the best validation epoch, "
              f"{total:.0f} s", flush=True)
    return reached, time.perf_counter() - started


def main(argv):
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    names = [a for a in argv if a in RECIPES] or ["dense"]
    runners = [] if "--peers-only" in argv else [("digitnet", lambda name: time_to(name, seed))]
    if "--src" in argv:
        old = load(argv[argv.index("--src") + 1], "digitnet_old")
        runners.append(("old", lambda name: time_to(name, seed, old, "old")))
    if "--torch" in argv:
        curve = argv[argv.index("--curve") + 1] if "--curve" in argv else None
        runners.append(("torch", lambda name: torch_time_to(name, seed, curve)))
    results = []
    for name in names:
        for label, runner in runners:
            reached, total = runner(name)
            for target, hit in reached.items():
                when = (f"epoch {hit[0]}, {hit[1]:.0f} s" if hit else "not reached")
                results.append(f"{label} {name} seed {seed}: {100 * target:.1f}% -> {when} "
                               f"(whole run {total:.0f} s)")
    print("\n".join(results))


if __name__ == "__main__":
    main(sys.argv[1:])
