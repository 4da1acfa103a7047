"""The matrix-batched engine against the book's per-example loop, interleaved.

    DIGITNET_DATA=../shared/data python benchmarks/engines_ratio.py [--rounds R] [--m M] [--quick]

Chapter 1's network ([784, 30, 10], eta 3.0, m = 10 unless --m says),
float32 and float64, one SGD pass (`training.run_epoch`: shuffle, gathers,
steps) over 10,000 real MNIST images by each engine in turn, R times
(9 unless --rounds says).  pytest-benchmark (`test_throughput.py`) times
all of one engine's rounds, then all of the other's; on this project's
machines the speed wanders by 2x within minutes, so its ratio moved from
14x to 36x in three runs of one sitting.  Here each round's ratio pairs
two passes seconds apart, and the median of those ratios is the figure
(issue 28: at least 14x at m = 10).  --quick: 1,000 images, one round.
"""

import os
import statistics
import sys
import time

import digitnet
from digitnet.training import Run, run_epoch, to_device

ENGINES = ("per-example", "batched")


def timed(args):
    start = time.perf_counter()
    run_epoch(*args)
    return time.perf_counter() - start


def ratios(images, dtype, m, rounds):
    """(batched examples/s, per-round per-example/batched times), the two
    engines training their own copy of one seed's network."""
    runs = {}
    for engine in ENGINES:
        net = digitnet.Network([784, 30, 10], seed=0, device="cpu", dtype=dtype)
        rows, labels = to_device(net, images)
        runs[engine] = (Run(net, mini_batch_size=m, eta=3.0, engine=engine), rows, labels)
        run_epoch(*runs[engine])  # warm-up: first-touch pages, the fast path's plan
    pairs = [{engine: timed(args) for engine, args in runs.items()} for _ in range(rounds)]
    speed = len(images) / statistics.median(p["batched"] for p in pairs)
    return speed, [p["per-example"] / p["batched"] for p in pairs]


def main(argv):
    quick = "--quick" in argv
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 9
    if quick:
        rounds = 1
    m = int(argv[argv.index("--m") + 1]) if "--m" in argv else 10
    training = digitnet.load_dataset("mnist", os.environ.get("DIGITNET_DATA"),
                                     download_missing=False, progress=False)[0]
    images = training[:1_000 if quick else 10_000]
    print(f"[784, 30, 10], m = {m}, {len(images):,} images, medians of {rounds} rounds")
    for dtype in ("float32", "float64"):
        speed, rs = ratios(images, dtype, m, rounds)
        print(f"  {dtype}: batched {speed:,.0f} examples/s; batched / per-example "
              f"median {statistics.median(rs):.1f}x [{min(rs):.1f}-{max(rs):.1f}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
