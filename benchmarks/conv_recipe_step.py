"""Examples per second of the conv recipe's SGD step, for A/B runs between
versions of digitnet (the benchmarks compare configurations of one version).

The step is the README recipe's: expanded data, m = 20, dropout 0.5,
momentum 0.9, L2, random mini-batches.  Interleave two checkouts so that
the machine's drift hits both alike:

    for i in 1 2 3; do
        PYTHONPATH=/path/to/old/src python benchmarks/conv_recipe_step.py old
        python benchmarks/conv_recipe_step.py new
    done

Needs DIGITNET_DATA (or ./data) with MNIST.
"""

import sys
import time

import numpy as np

from digitnet import data
from digitnet.fit import step
from digitnet.model import Model
from digitnet.network import one_hot

RECIPE = "conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10"


def main(label="this"):
    training, _, _ = data.load_dataset("mnist", progress=False)
    expanded = data.expand(training[:2000])
    rows, labels = np.ascontiguousarray(expanded.images.T), expanded.labels
    model = Model(RECIPE, activation="relu", dropout=0.5, device="cpu")
    velocities = [(np.zeros_like(w), np.zeros_like(b)) for w, b in zip(model.weights, model.biases)]
    eye = np.eye(10, dtype=np.float32)
    order = np.random.default_rng(0).permutation(len(labels))
    start = time.perf_counter()
    for k in range(0, len(labels), 20):
        idx = order[k:k + 20]
        step(model, np.take(rows, idx, axis=0).T, one_hot(np, labels[idx], eye),
             0.01, 5.0, 250_000, 0.9, velocities)
    print(f"{label}: {len(labels) / (time.perf_counter() - start):.0f} examples/s")


if __name__ == "__main__":
    main(*sys.argv[1:])
