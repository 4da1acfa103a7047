"""Throughput of the later chapters' Model: one SGD pass over real MNIST images.

Run:  python -m pytest benchmarks/test_model_throughput.py --benchmark-only
The README's recipes run these networks; m is the knob that matters on a
CPU (a conv net's im2col matrices fall out of cache as m grows).
"""

import pytest

from digitnet import backend, jit
from digitnet.model import Model
from digitnet.training import Run, measure, run_epoch, to_device

from .peer_torch import make_model_epoch
from .test_throughput import record

# The README recipes' networks and options (m is the benchmark's).
NETS = {
    "fc300-relu": (dict(layers="fc:300,softmax:10", activation="relu", init="scaled",
                        dropout=0.3), dict(eta=0.05, lmbda=5.0, momentum=0.9)),
    "lenet-relu": (dict(layers="conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10",
                        activation="relu", init="scaled", dropout=0.5),
                   dict(eta=0.01, lmbda=5.0, momentum=0.9)),
}
N = {"fc300-relu": 10_000, "lenet-relu": 2_000}  # conv: a shorter pass, same per-example cost
MS = [10, 20, 50]


@pytest.mark.parametrize("m", MS, ids=[f"m{m}" for m in MS])
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_model_sgd_pass(benchmark, mnist_slice, device, net, m):
    """The trainer's own epoch (shuffle, gathers, dropout, momentum, L2)."""
    if device == "cupy" and backend.cupy_or_reason()[0] is None:
        pytest.skip(f"no GPU here: {backend.cupy_or_reason()[1]}")
    model_options, options = NETS[net]
    model = Model(**model_options, device="cpu" if device == "numpy" else "gpu", seed=0)
    data = mnist_slice[:N[net]]
    rows, labels = to_device(model, data)
    run = Run(model, mini_batch_size=m, **options)
    benchmark.group = f"model {net}"
    benchmark.name = f"{device} m={m}"
    benchmark.pedantic(run_epoch, args=(run, rows, labels), rounds=3, warmup_rounds=1,
                       iterations=1)
    record(benchmark, len(data), engine="model", device=device, sizes=net, m=m, dtype="float32")


@pytest.mark.parametrize("m", MS, ids=[f"m{m}" for m in MS])
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_torch_peer_model(benchmark, mnist_slice, device, net, m):
    """PyTorch doing the same epoch (peer_torch.make_model_epoch): the same
    layers, init scale, m, momentum, L2 as weight decay, dropout, float32."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device for PyTorch")
    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    model_options, options = NETS[net]
    data = mnist_slice[:N[net]]
    epoch = make_model_epoch(torch, model_options["layers"], data.images.T, data.labels, m,
                             dropout=model_options["dropout"], n=50_000, device=device,
                             **options)
    benchmark.group = f"model {net}"
    benchmark.name = f"torch {device} m={m}"
    benchmark.pedantic(epoch, rounds=3, warmup_rounds=1, iterations=1)
    record(benchmark, len(data), engine="torch", device=device, sizes=net, m=m, dtype="float32")


CHUNKS = [50, 1000]


@pytest.mark.parametrize("chunk", CHUNKS, ids=[f"chunk{c}" for c in CHUNKS])
def test_conv_evaluation_chunk(benchmark, mnist_slice, chunk):
    """Evaluation in chunks of 50 (training.chunk_size's choice for conv nets) vs 1000."""
    model = Model(**NETS["lenet-relu"][0], device="cpu", seed=0)
    data = mnist_slice[:N["lenet-relu"]]
    rows, labels = to_device(model, data)
    benchmark.group = "model lenet-relu evaluation"
    benchmark.name = f"numpy chunk={chunk}"
    benchmark.pedantic(measure, args=(model, rows, labels, chunk), rounds=3, warmup_rounds=1,
                       iterations=1)
    record(benchmark, len(data), engine="evaluate", device="numpy", sizes="lenet-relu",
           m=chunk, dtype="float32")


LEVERS = dict(nesterov=True, schedule="one-cycle", warmup=0.2, label_smoothing=0.1, epochs=1)


@pytest.mark.parametrize("levers", [False, True], ids=["recipe", "levers"])
@pytest.mark.parametrize("update", ["compiled", "chain"])
def test_dense_update_compiled_or_chain(benchmark, mnist_slice, monkeypatch, update, levers):
    """The dense recipe at m = 20 (and with the speedrun's levers): the fast
    path's update as Numba's one loop (jit.py) or as NumPy's chain of passes."""
    if update == "compiled" and not jit.available():
        pytest.skip("Numba is not installed (the `fast` extra)")
    monkeypatch.setenv("DIGITNET_JIT", "1" if update == "compiled" else "0")
    model_options, options = NETS["fc300-relu"]
    model = Model(**model_options, device="cpu", seed=0)
    data = mnist_slice[:N["fc300-relu"]]
    rows, labels = to_device(model, data)
    run = Run(model, mini_batch_size=20, **options, **(LEVERS if levers else {}))
    benchmark.group = "dense update" + (" with the levers" if levers else "")
    benchmark.name = update
    benchmark.pedantic(run_epoch, args=(run, rows, labels), rounds=3, warmup_rounds=1,
                       iterations=1)
    record(benchmark, len(data), engine="model", device="numpy", sizes="fc300-relu", m=20,
           dtype="float32", update=update)
