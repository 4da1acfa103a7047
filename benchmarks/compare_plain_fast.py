"""Before/after for the batched engine's fast path, in one run.

"plain" is the batched engine without the fast path (engines.py's plain step,
what runs on namespaces without out=); "fast" is batched.py.  Same data (the
first 10,000 MNIST training images), same network, alternating, median of 7.

    DIGITNET_DATA=../shared/data python benchmarks/compare_plain_fast.py 10 100 1000
"""

import sys
import time

import numpy as np

import digitnet
from digitnet import backend, training


def median_ms(run, rounds=7):
    run()  # warm-up: allocates the fast path's buffers
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def runner(data, m, fast):
    """One epoch of the trainer (training.run_epoch); without the fast path
    when `fast` is False, as on a namespace without out=."""
    net = digitnet.Network([784, 30, 10], device="cpu")
    rows, labels = training.to_device(net, data)
    run = training.Run(net, mini_batch_size=m, eta=3.0)

    def epoch():
        has_out = backend.has_out
        if not fast:
            backend.has_out = lambda xp: False
        try:
            training.run_epoch(run, rows, labels)
        finally:
            backend.has_out = has_out
    return epoch


def main(ms):
    training_data, _, _ = digitnet.load_mnist()
    data = training_data[:10_000]
    for m in ms:
        plain, fast = runner(data, m, False), runner(data, m, True)
        p, f = median_ms(plain), median_ms(fast)
        print(f"m={m:5d}  plain {p:7.2f} ms  fast {f:7.2f} ms  per 10k examples  "
              f"speed-up {p / f:.2f}x  (fast: {f * 6:.1f} ms per 60k epoch)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100, 1000])
