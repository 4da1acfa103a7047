"""The README recipes' networks against PyTorch CPU, interleaved in one run.

    DIGITNET_DATA=../shared/data python benchmarks/vs_torch.py [dense] [dense-levers] [conv] \
        [speed-bn] [--rounds R] [--old OLD/src] [--m M]

For each recipe network (the dense recipe's fc:300 ReLU with dropout 0.3,
with and without the speedrun's levers; the conv recipe's LeNet-style net
with dropout 0.5; the speed recipe's with bn, for `--m 64`; m = 20 unless
--m says, momentum, L2, float32, NumPy), one epoch over real MNIST images is timed for digitnet
(the trainer's own `run_epoch`: shuffle, gathers, dropout, momentum, L2),
then for PyTorch doing the same work (peer_torch.make_model_epoch, 2
threads), and with `--old` for an older digitnet source tree, round after
round: this machine's speed wanders by 2x within minutes, so only the
per-round ratios, and their medians, mean anything.  Also prints the
large-GEMM rate measured in the same run and each network's FLOPs per
example, so throughput reads as a fraction of the arithmetic bound.
"""

import importlib
import os
import statistics
import sys
import time

import numpy as np

import digitnet.config  # noqa: F401  (dn.config and dn.schedules below)
import digitnet.schedules  # noqa: F401

from ab_speed import CONV, SPEED_BN, load

DENSE = dict(layers="fc:300,softmax:10", activation="relu", init="scaled", dropout=0.3)
RECIPES = {  # name: (model options, run options, examples per epoch)
    "dense": (DENSE, dict(eta=0.05, lmbda=5.0, momentum=0.9), 10_000),
    # the speedrun's levers on the dense network: a rate set every step
    # (one-cycle over 3 epochs; each timed epoch is the run's first),
    # Nesterov, label smoothing
    "dense-levers": (DENSE, dict(eta=0.05, lmbda=5.0, momentum=0.9, nesterov=True,
                                 label_smoothing=0.1, schedule="one-cycle", warmup=0.2,
                                 epochs=3), 10_000),
    "conv": (dict(layers=CONV, activation="relu", init="scaled", dropout=0.5),
             dict(eta=0.01, lmbda=5.0, momentum=0.9), 2_000),
    # the README's speed recipe (with bn), for issue 28's target at --m 64
    "speed-bn": (dict(layers=SPEED_BN, activation="relu", init="scaled", dropout=0.0),
                 dict(eta=0.2, lmbda=25.0, momentum=0.9, nesterov=True, label_smoothing=0.1,
                      schedule="one-cycle", warmup=0.2, epochs=1), 6_400),
}
N_TRAIN = 50_000  # the L2 term's n in the recipes (250,000 for conv --expand; same cost)


def flops_per_example(dn, spec):
    """Multiply-adds x 2 of one forward and backward pass: each layer's GEMM
    runs forward, for nabla_w, and (all but the first) for dC/dx."""
    total, first = 0, True
    for layer in dn.model.build_layers(dn.model.parse_layers(spec), "relu", (1, 28, 28)):
        if layer.w_shape is None:
            continue
        positions = int(np.prod(layer.shape_out[1:])) if len(layer.shape_out) == 3 else 1
        total += 2 * layer.w_shape[0] * layer.w_shape[1] * positions * (2 if first else 3)
        first = False
    return total


def gemm_rate(n=1024, repeats=5):
    """Float32 FLOP/s of a large square GEMM on this machine, now."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    np.dot(a, a, out=c)
    best = min(timed(lambda: np.dot(a, a, out=c)) for _ in range(repeats))
    return 2 * n ** 3 / best


def peer_options(dn, options, n, m):
    """The run options as make_model_epoch takes them: a schedule as the
    rate of each step of the (first) epoch, as digitnet sets it."""
    options = dict(options)
    schedule, warmup = options.pop("schedule", "constant"), options.pop("warmup", 0.0)
    epochs = options.pop("epochs", 1)
    if schedule != "constant":
        config = dn.config.TrainConfig(mini_batch_size=m, schedule=schedule, warmup=warmup,
                                       epochs=epochs, **options)
        eta = dn.schedules.for_pass(config, 0, epochs, n)
        per_pass = -(-n // m)
        options["rate"] = lambda step: eta(step % per_pass)
    return options


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(dn, name, rows, labels, m):
    model_options, options, _ = RECIPES[name]
    net = dn.Model(**model_options, seed=0, device="cpu")
    training = importlib.import_module(f"{dn.__name__}.training")  # --old's too
    run = training.Run(net, mini_batch_size=m, **options)
    device_rows, device_labels = training.to_device(net, _Data(rows, labels))
    return lambda: training.run_epoch(run, device_rows, device_labels)


class _Data:
    """The two fields to_device reads, in the IDX reader's layout."""

    def __init__(self, rows, labels):
        self.images, self.labels = rows.T, labels
        self.rows = rows


def main(argv):
    import torch
    torch.set_num_threads(2)
    from peer_torch import make_model_epoch
    import digitnet
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 7
    m = int(argv[argv.index("--m") + 1]) if "--m" in argv else 20
    old = load(argv[argv.index("--old") + 1], "digitnet_old") if "--old" in argv else None
    names = [a for a in argv if a in RECIPES] or list(RECIPES)
    training, _, _ = digitnet.load_dataset("mnist", os.environ.get("DIGITNET_DATA"),
                                           download_missing=False)
    rate = gemm_rate()
    print(f"large float32 GEMM: {rate / 1e9:.1f} GFLOP/s; m = {m}; medians of {rounds} rounds")
    for name in names:
        model_options, options, n = RECIPES[name]
        rows = np.ascontiguousarray(training.images[:, :n].T)
        labels = np.asarray(training.labels[:n])
        contenders = {"digitnet": ours(digitnet, name, rows, labels, m)}
        if old is not None:
            contenders["old"] = ours(old, name, rows, labels, m)
        contenders["torch"] = make_model_epoch(torch, model_options["layers"], rows, labels, m,
                                               dropout=model_options["dropout"], n=N_TRAIN,
                                               **peer_options(digitnet, options, n, m))
        for epoch in contenders.values():
            epoch()  # warm-up
        times = {k: [] for k in contenders}
        for _ in range(rounds):
            for k, epoch in contenders.items():
                times[k].append(timed(epoch))
        bound = rate / flops_per_example(digitnet, model_options["layers"])
        print(f"{name}: {flops_per_example(digitnet, model_options['layers']) / 1e6:.2f} "
              f"MFLOP/example, GEMM-rate bound {bound:,.0f} examples/s")
        for k, ts in times.items():
            speed = n / statistics.median(ts)
            print(f"  {k:<9}{speed:>10,.0f} examples/s  ({speed / bound:.0%} of the bound)")
        for k in contenders:
            if k == "digitnet":
                continue
            ratios = [b / a for a, b in zip(times["digitnet"], times[k])]
            print(f"  digitnet / {k}: median {statistics.median(ratios):.2f} "
                  f"[{min(ratios):.2f}-{max(ratios):.2f}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
