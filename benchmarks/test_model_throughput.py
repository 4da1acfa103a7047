"""Throughput of the later chapters' Model: one SGD pass over real MNIST images.

Run:  python -m pytest benchmarks/test_model_throughput.py --benchmark-only
The README's recipes run these networks; m is the knob that matters on a
CPU (a conv net's im2col matrices fall out of cache as m grows).
"""

import pytest

from digitnet import backend
from digitnet.fit import step, to_device
from digitnet.model import Model
from digitnet.network import one_hot

from .test_throughput import record

NETS = {
    "fc300-relu": dict(layers="fc:300,softmax:10", activation="relu"),
    "lenet-relu": dict(layers="conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10",
                       activation="relu"),
}
N = {"fc300-relu": 10_000, "lenet-relu": 2_000}  # conv: a shorter pass, same per-example cost
MS = [10, 20, 50]


@pytest.mark.parametrize("m", MS, ids=[f"m{m}" for m in MS])
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_model_sgd_pass(benchmark, mnist_slice, device, net, m):
    if device == "cupy" and backend.cupy_or_reason()[0] is None:
        pytest.skip(f"no GPU here: {backend.cupy_or_reason()[1]}")
    model = Model(**NETS[net], device="cpu" if device == "numpy" else "gpu", seed=0)
    data = mnist_slice[:N[net]]
    rows, labels = to_device(model, data)
    xp, n = model.xp, len(data)
    eye = xp.eye(10, dtype=model.dtype)
    velocities = [(xp.zeros_like(w), xp.zeros_like(b))
                  for w, b in zip(model.weights, model.biases)]

    def one_pass():
        for k in range(0, n, m):
            x = rows[k:k + m, :].T
            step(model, x, one_hot(xp, labels[k:k + m], eye), 0.01, 1.0, n, 0.9, velocities)
        backend.synchronize(xp)

    benchmark.group = f"model {net}"
    benchmark.name = f"{device} m={m}"
    benchmark.pedantic(one_pass, rounds=3, warmup_rounds=1, iterations=1)
    record(benchmark, n, engine="model", device=device, sizes=net, m=m, dtype="float32")


CHUNKS = [50, 1000]


@pytest.mark.parametrize("chunk", CHUNKS, ids=[f"chunk{c}" for c in CHUNKS])
def test_conv_evaluation_chunk(benchmark, mnist_slice, chunk):
    """Evaluation in chunks of 50 (fit.measure's choice for conv nets) vs 1000."""
    from digitnet.fit import measure
    model = Model(**NETS["lenet-relu"], device="cpu", seed=0)
    data = mnist_slice[:N["lenet-relu"]]
    rows, labels = to_device(model, data)
    benchmark.group = "model lenet-relu evaluation"
    benchmark.name = f"numpy chunk={chunk}"
    benchmark.pedantic(measure, args=(model, rows, labels, chunk), rounds=3, warmup_rounds=1,
                       iterations=1)
    record(benchmark, len(data), engine="evaluate", device="numpy", sizes="lenet-relu",
           m=chunk, dtype="float32")
