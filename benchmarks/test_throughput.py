"""Throughput of one SGD pass over 10,000 real MNIST images, in examples per second.

Run:  python -m pytest benchmarks --benchmark-only
Each group holds the rows a user compares side by side: the two engines,
NumPy and CuPy, and the PyTorch peer, at one sizes/m/dtype.
"""

import pytest

from digitnet import Network, backend
from digitnet.training import Run, run_epoch, to_device

from .peer_torch import make_epoch

ETA = 3.0
SIZES = {"784-30-10": [784, 30, 10], "784-100-10": [784, 100, 10]}
MS = [1, 10, 100, 1000]
DTYPES = ["float32", "float64"]


def rounds_for(engine, m):
    # The per-example engine and m = 1 take seconds per pass: fewer rounds.
    return 3 if engine == "per-example" or m == 1 else 7


def record(benchmark, n, **info):
    benchmark.extra_info.update(info)
    stats = benchmark.stats  # None when run with --benchmark-disable
    if stats is not None:
        benchmark.extra_info["examples_per_second"] = round(n / stats.stats.median)
        benchmark.extra_info["seconds_per_60k_epoch"] = stats.stats.median * 60_000 / n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", MS, ids=[f"m{m}" for m in MS])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("engine", ["per-example", "batched"])
def test_sgd_epoch(benchmark, mnist_slice, engine, device, sizes, m, dtype):
    if device == "cupy":
        xp, why = backend.cupy_or_reason()
        if xp is None:
            pytest.skip(f"no GPU here: {why}")
    net = Network(SIZES[sizes], seed=0, device="cpu" if device == "numpy" else "gpu", dtype=dtype)
    rows, labels = to_device(net, mnist_slice)
    benchmark.group = f"{sizes} m={m} {dtype}"
    benchmark.name = f"{engine} {device}"
    # the trainer's own epoch: shuffle, gathers, steps
    run = Run(net, mini_batch_size=m, eta=ETA, engine=engine)
    benchmark.pedantic(run_epoch, args=(run, rows, labels),
                       rounds=rounds_for(engine, m), warmup_rounds=1, iterations=1)
    record(benchmark, len(mnist_slice), engine=engine, device=device, sizes=sizes, m=m, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", MS, ids=[f"m{m}" for m in MS])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_torch_peer(benchmark, mnist_slice, device, sizes, m, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device for PyTorch")
    epoch = make_epoch(torch, SIZES[sizes], mnist_slice.images.T, mnist_slice.labels,
                       m, ETA, dtype, device)
    benchmark.group = f"{sizes} m={m} {dtype}"
    benchmark.name = f"torch {device}"
    benchmark.pedantic(epoch, rounds=rounds_for("torch", m), warmup_rounds=1, iterations=1)
    record(benchmark, len(mnist_slice), engine="torch", device=device, sizes=sizes, m=m, dtype=dtype)
