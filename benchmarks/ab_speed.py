"""A/B speed of two versions of digitnet, interleaved, through the public API.

    python benchmarks/ab_speed.py OLD/src NEW/src [ROUNDS]

Each round starts one process per version, alternately (old, new, old,
new...), and each process times, after a warm-up, one SGD epoch of:
the chapter-1 fast path ([784, 30, 10], float32) at m = 10, 100 and 1000
over 10,000 real MNIST images; the dense recipe's network and options
(fc:300 ReLU, softmax, dropout 0.3, momentum, L2, m = 20) over 10,000;
and the conv recipe's (m = 20) over 2,000 expanded images.  Only `sgd` with
no monitoring is timed, which both old and new versions have.  Prints the
median examples per second of each case and version, and new/old.
"""

import json
import os
import statistics
import subprocess
import sys
import time

CONV = "conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10"


def cases(digitnet, data):
    training, _, _ = data.load_dataset("mnist", os.environ.get("DIGITNET_DATA"),
                                       download_missing=False)
    dense_data, conv_data = training[:10_000], data.expand(training[:400])
    for m in (10, 100, 1000):
        yield f"ch1 m={m}", len(dense_data), lambda m=m: digitnet.Network(
            [784, 30, 10], seed=0, device="cpu").sgd(dense_data, 1, m, 3.0)
    yield "dense recipe m=20", len(dense_data), lambda: digitnet.Model(
        "fc:300,softmax:10", activation="relu", init="scaled", dropout=0.3, seed=0,
        device="cpu").sgd(dense_data, 1, 20, 0.05, lmbda=5.0, momentum=0.9)
    yield "conv recipe m=20", len(conv_data), lambda: digitnet.Model(
        CONV, activation="relu", init="scaled", dropout=0.5, seed=0,
        device="cpu").sgd(conv_data, 1, 20, 0.01, lmbda=5.0, momentum=0.9)


def child():
    import digitnet
    from digitnet import data
    out = {}
    for name, n, epoch in cases(digitnet, data):
        epoch()  # warm-up
        start = time.perf_counter()
        epoch()
        out[name] = n / (time.perf_counter() - start)
    print(json.dumps(out))


def main(old, new, rounds=5):
    results = {"old": [], "new": []}
    for _ in range(rounds):
        for label, src in (("old", old), ("new", new)):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
            done = subprocess.run([sys.executable, __file__, "--child"], env=env, check=True,
                                  capture_output=True, text=True)
            results[label].append(json.loads(done.stdout))
    print(f"{'case':<20}{'old ex/s':>12}{'new ex/s':>12}{'new/old':>9}   ({rounds} interleaved rounds, medians)")
    for name in results["old"][0]:
        o = statistics.median(r[name] for r in results["old"])
        n = statistics.median(r[name] for r in results["new"])
        print(f"{name:<20}{o:>12,.0f}{n:>12,.0f}{n / o:>9.2f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5)
