"""The compiled update (jit.py) against the NumPy chain it replaces
(kernels.NumpyKernels.update), bit for bit: every form of the update, both
layouts of a block, both dtypes, one call at a time and whole runs."""

import importlib.metadata
import os
import subprocess
import sys

import numpy as np
import pytest

from digitnet import Model, jit, kernels, layers, training
from conftest import blobs
from test_kernels import CASES

pytestmark = pytest.mark.skipif(jit.numba is None,
                                reason="Numba is not installed (the `fast` extra)")

def numba_version():
    return importlib.metadata.version("numba")


FORMS = {  # name: (momentum, nesterov, L2)
    "sgd": (False, False, False), "sgd L2": (False, False, True),
    "momentum": (True, False, False), "momentum L2": (True, False, True),
    "nesterov": (True, True, False), "nesterov L2": (True, True, True),
}


@pytest.fixture
def loops(monkeypatch):
    """Every block takes the loop (none is SMALL), and the loops that ran."""
    ran = []
    monkeypatch.setattr(jit, "SMALL", 0)
    for name in ("_sgd", "_momentum", "_nesterov"):
        real = getattr(jit, name)
        monkeypatch.setattr(jit, name, lambda *a, real=real, name=name:
                            ran.append(name) or real(*a))
    return ran


def block(rng, shape, dtype, by_rows):
    """A random (rows, cols) array, stored transposed when by_rows (batched.matrix)."""
    a = rng.standard_normal(shape[::-1] if by_rows else shape).astype(dtype)
    a.flat[::7] = 0.0  # zeros and negative zeros, whose signs must survive
    a.flat[3::11] = -0.0
    return a.T if by_rows else a


def one_update(K, arrays, form, dtype, copy=lambda a: np.copy(a, order="K")):
    wb, nabla, v, scratch = (copy(a) for a in arrays)
    momentum, nesterov, l2 = FORMS[form]
    s = lambda x: np.asarray(x, dtype=dtype)  # noqa: E731
    v = v if momentum else None
    K.update(np, wb, nabla, v, wb[:, :-1], nabla[:, :-1], None if v is None else v[:, :-1],
             s(0.9), s(0.003) if l2 else None, s(1 - 0.003), scratch if nesterov else None)
    return wb, v


@pytest.mark.parametrize("shape", [(7, 13), (1, 6), (5, 1), (300, 785)])
@pytest.mark.parametrize("by_rows", [False, True], ids=["by columns", "by rows"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("form", FORMS)
def test_each_update_is_the_chains_bit_for_bit(form, dtype, by_rows, shape, loops):
    """The same [w | b] and velocities, to the bit (signed zeros included),
    as the chain on copies of the same arguments; the biases (last column
    of the (rows, cols) view) are never decayed."""
    rng = np.random.default_rng(len(loops))
    arrays = [block(rng, shape, dtype, by_rows) for _ in range(4)]
    want = one_update(kernels.NumpyKernels, arrays, form, dtype)
    got = one_update(jit.NumbaKernels, arrays, form, dtype)
    assert loops, "the compiled loop did not run"
    for a, b in zip(got, want):
        if b is not None:
            assert a.flags.c_contiguous == b.flags.c_contiguous
            np.testing.assert_array_equal(a, b, strict=True)
            assert np.array_equal(np.signbit(a), np.signbit(b))


def test_other_layouts_and_small_blocks_take_the_chain(loops, monkeypatch):
    """A block neither C- nor F-contiguous, or one under SMALL elements, is
    updated by the chain, with the same result."""
    rng = np.random.default_rng(1)
    arrays = [block(rng, (8, 6), np.float32, False) for _ in range(4)]
    strided = lambda a: np.repeat(a, 2, axis=1)[:, ::2]  # noqa: E731
    for form in FORMS:
        np.testing.assert_array_equal(
            one_update(jit.NumbaKernels, arrays, form, np.float32, strided)[0],
            one_update(kernels.NumpyKernels, arrays, form, np.float32)[0])
    assert not loops
    monkeypatch.setattr(jit, "SMALL", 8 * 6 + 1)
    one_update(jit.NumbaKernels, arrays, "sgd", np.float32)
    assert not loops
    monkeypatch.setattr(jit, "SMALL", 8 * 6)
    one_update(jit.NumbaKernels, arrays, "sgd", np.float32)
    assert loops == ["_sgd"]


def test_the_fast_path_uses_the_loops_unless_switched_off(monkeypatch):
    """On NumPy with Numba the fast path's kernels are NumbaKernels;
    DIGITNET_JIT=0 gives the NumPy chains."""
    monkeypatch.delenv("DIGITNET_JIT", raising=False)
    assert jit.for_namespace(np) is jit.NumbaKernels
    monkeypatch.setenv("DIGITNET_JIT", "0")
    assert jit.for_namespace(np) is kernels.NumpyKernels


def run(case, dtype, m, jit_on, monkeypatch):
    layers, options, run_options = CASES[case]
    monkeypatch.setenv("DIGITNET_JIT", "1" if jit_on else "0")
    net = Model(layers, **options, seed=4, device="cpu", dtype=dtype, input_shape=(12,))
    run = training.Run(net, mini_batch_size=m, eta=0.8, epochs=2, **run_options)
    training.fit(run, blobs(150, dtype=np.dtype(dtype).type), 2)
    return net.weights + net.biases + run.optimizer.buffers()


NEGATED = {"sigmoid quadratic", "sigmoid quadratic one-cycle smoothing"}
SGD_CASES = [c for c in CASES if CASES[c][2].get("optimizer") != "adam"]


@pytest.mark.parametrize("m", [7, 64])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", SGD_CASES)
def test_a_run_with_the_loops_is_the_run_with_the_chains(case, dtype, m, loops, monkeypatch):
    """Two epochs of every SGD configuration of the fast path's tests
    (per-step rates, L2, Nesterov, dropout...), both buffer layouts: the
    same weights, biases and velocities to the bit."""
    want = run(case, dtype, m, False, monkeypatch)
    assert not loops
    got = run(case, dtype, m, True, monkeypatch)
    # a sigmoid chain by plain SGD takes sgd_negated, no update
    assert bool(loops) != (case in NEGATED), loops
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b, strict=True)


# ---------------------------------------------------------------- conv, pooling, bn

LAYER_LOOPS = ("_col2im", "_pool_max", "_pool_max_relu", "_pool_back", "_pool_back_relu",
               "_bn_out", "_bn_back")


@pytest.fixture
def layer_loops(monkeypatch):
    """The names of jit's layer loops that ran, one per call."""
    ran = []
    for name in LAYER_LOOPS:
        real = getattr(jit, name)
        monkeypatch.setattr(jit, name, lambda *a, real=real, name=name:
                            ran.append(name) or real(*a))
    return ran


def both(monkeypatch, fn):
    """fn()'s arrays with the loops, then with DIGITNET_JIT=0 (the passes)."""
    monkeypatch.setenv("DIGITNET_JIT", "1")
    got = fn()
    monkeypatch.setenv("DIGITNET_JIT", "0")
    return got, fn()


def assert_same_bits(got, want):
    """Every array equal to the bit: values, dtype, shape and signed zeros."""
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b, strict=True)
        assert np.array_equal(np.signbit(a), np.signbit(b))


def awkward(rng, shape, dtype):
    """Normal numbers with zeros of both signs, and repeats (ties for a max)."""
    a = rng.standard_normal(shape).astype(dtype)
    a.flat[::7] = 0.0
    a.flat[3::11] = -0.0
    a.flat[5::13] = a.flat[6::13][:a.flat[5::13].size]
    return a


@pytest.mark.parametrize("m", [1, 5, 20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 9, 9, 4, 3, 0), (3, 9, 9, 4, 3, 1), (2, 6, 7, 3, 5, 2),
                                   (4, 5, 5, 2, 1, 0), (1, 5, 5, 2, 5, 0)],
                         ids=lambda s: "c{}h{}w{}f{}k{}p{}".format(*s))
def test_conv_backward_with_the_loop_is_the_passes(shape, dtype, m, layer_loops, monkeypatch):
    """col2im as one loop: the same nabla_w, nabla_b and dC/dx to the bit,
    for every kernel size, padding (the border left out) and mini-batch."""
    c, h, w, f, k, p = shape
    conv = layers.Conv((c, h, w), f, k, "relu", pad=p)
    rng = np.random.default_rng(k * 10 + p)
    x = awkward(rng, (c, h, w, m), dtype)
    wts, b = awkward(rng, conv.w_shape, dtype), awkward(rng, (f, 1), dtype)
    delta = awkward(rng, conv.shape_out + (m,), dtype)

    def step():
        _, cols = conv.forward(np, wts, b, x)
        (nw, nb), dx = conv.backward(np, wts, cols, delta, True)
        return nw, nb, np.ascontiguousarray(dx)
    got, want = both(monkeypatch, step)
    assert layer_loops == ["_col2im"]
    assert_same_bits(got, want)


@pytest.mark.parametrize("activation", ["relu", None, "sigmoid"])
@pytest.mark.parametrize("m", [1, 6, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p, shape", [(2, (3, 8, 6)), (3, (2, 9, 6)), (1, (2, 3, 3))])
def test_pooling_with_the_loops_is_the_passes(p, shape, dtype, m, activation, layer_loops,
                                              monkeypatch):
    """Max-pooling's forward (the max, then its activation: ReLU's in the
    loop) and backward (the activation's derivative, then the routing) as
    loops: the same bits, ties (every tied input gets delta), signed zeros
    (np.maximum keeps the later of two equal numbers) and NaN (it wins)."""
    pool = layers.MaxPool(shape, p, activation)
    rng = np.random.default_rng(p)
    x = awkward(rng, shape + (m,), dtype)
    x[0, 0, 0, 0] = np.nan
    x[-1, :p, :p, -1] = -0.0  # a block of zeros: the max's sign is the last one's
    x[-1, 0, 0, -1] = 0.0
    delta = awkward(rng, pool.shape_out + (m,), dtype)

    def step():
        a, cache = pool.forward(np, None, None, x)
        _, dx = pool.backward(np, None, cache, delta, True)
        return a, cache[1], dx
    got, want = both(monkeypatch, step)
    relu = "_relu" * (activation == "relu")
    assert layer_loops == ["_pool_max" + relu, "_pool_back" + relu]
    assert_same_bits(got, want)
    assert np.isnan(got[1][0, 0, 0, 0])


@pytest.mark.parametrize("train", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 5), (7,)], ids=["conv", "fc"])
def test_batch_norm_with_the_loops_is_the_passes(shape, dtype, activation, train, layer_loops,
                                                 monkeypatch):
    """bn's output and dC/dz as one loop each: the same bits (signed zeros
    too), and the same running statistics, gradients and cache."""
    bn = layers.BatchNorm(shape, activation, 0)
    rng = np.random.default_rng(len(shape))
    z = awkward(rng, shape + (6,), dtype)
    gamma, beta = awkward(rng, (shape[0], 1), dtype) + 1, awkward(rng, (shape[0], 1), dtype)
    delta = awkward(rng, shape + (6,), dtype)

    mean, var = rng.random((shape[0], 1)).astype(dtype), rng.random((shape[0], 1)).astype(dtype)
    # evaluation's y = -0 s + -0 = -0 in channel 0, which ReLU makes +0 (np.maximum)
    mean[0], beta[0], z[0, ..., :3] = 0.0, -0.0, -0.0

    def step():
        buffers = {bn.mean: mean, bn.var: var + 0.5}
        y, cache = bn.forward(np, gamma, beta, z, buffers, train)
        grads, dz = bn.backward(np, gamma, cache, delta, True)
        return y, *cache[:2], *grads, dz, *buffers.values()
    got, want = both(monkeypatch, step)
    assert layer_loops == (["_bn_out", "_bn_back"] if train else ["_bn_out"])
    assert_same_bits(got, want)


def test_the_layer_loops_leave_other_inputs_to_the_passes(layer_loops, monkeypatch):
    """Activations other than ReLU, arrays that are not C-contiguous, mixed
    dtypes: the loops decline (None) and the layers make their passes."""
    monkeypatch.setenv("DIGITNET_JIT", "1")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 4, 6))
    L = jit.loops(np)
    for relu in (True, False):
        assert L.pool_max(x[..., ::2], 2, relu) is None
        assert L.pool_back(x, x[:, ::2, ::2], x[:, ::2, ::2].astype(np.float32), 2, relu) is None
    assert L.col2im(np.asfortranarray(rng.standard_normal((4, 2, 3, 3, 5))), 2, 0, 4, 4) is None
    zc, s = rng.standard_normal((3, 8)), np.ones((3, 1))
    assert L.bn_out(zc, s, s, "sigmoid") is None
    assert L.bn_out(zc, s, s.astype(np.float32), "relu") is None
    assert L.bn_back(zc.T, zc.T, s, s, s) is None
    assert not layer_loops
    bn = layers.BatchNorm((3,), "tanh", 0)
    buffers = dict.fromkeys((bn.mean, bn.var), np.ones((3, 1)))
    bn.forward(np, s, s, zc, buffers, True)
    assert not layer_loops
    assert jit.loops(np) is jit.Loops
    monkeypatch.setenv("DIGITNET_JIT", "0")
    assert jit.loops(np) is None


CONV_NETS = {  # the conv recipe's network; 3x3 stacks with bn; bn after fc with ReLU
    "conv": dict(layers="conv:8x5x5,pool:2,conv:12x5x5,pool:2,fc:30,softmax:10", dropout=0.5),
    "padded bn": dict(layers="conv:6x3x3p1,bn,conv:6x3x3p1,pool:2,conv:8x5x5,bn,pool:2,"
                             "fc:20,bn,softmax:10"),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CONV_NETS)
def test_a_conv_run_with_the_loops_is_the_run_with_the_passes(name, dtype, mnist, layer_loops,
                                                              monkeypatch):
    """Two epochs on 300 real MNIST images (momentum, L2, Nesterov and the
    levers): the same weights, biases, velocities, bn's running statistics
    and test outputs to the bit, with every layer loop having run."""
    training_set, _, test_set = mnist

    def train():
        net = Model(**CONV_NETS[name], activation="relu", init="scaled", seed=3, device="cpu",
                    dtype=dtype)
        run = training.Run(net, mini_batch_size=20, eta=0.05, lmbda=5.0, momentum=0.9,
                           nesterov=True, label_smoothing=0.1, epochs=2)
        training.fit(run, training_set[:300], 2)
        return (*net.weights, *net.biases, *run.optimizer.buffers(), *net.store.buffers.values(),
                net.feedforward(test_set.images[:, :50]))
    got, want = both(monkeypatch, train)
    # ReLU pools: their loops with ReLU fused in run, not the plain ones
    ran = set(LAYER_LOOPS) - {"_pool_max", "_pool_back"} - (
        {"_bn_out", "_bn_back"} if name == "conv" else set())
    assert set(layer_loops) == ran
    assert_same_bits(got, want)


def test_switched_off_from_the_start_numba_never_loads():
    """DIGITNET_JIT=0 in the environment: a conv net trains on the passes
    without importing Numba (its ~70 MB runtime), and `digitnet info` says
    it is switched off, not missing; switched on, it says the loops run."""
    code = ("import sys, numpy as np; from digitnet import Model, info, layers; "
            "net = Model('conv:2x3x3,pool:2,softmax:10', activation='relu', seed=0, device='cpu',"
            " input_shape=(1, 6, 6)); "
            "from digitnet.data import Dataset; "
            "net.sgd(Dataset(np.random.default_rng(0).random((36, 8)), np.arange(8) % 2), 1, 4, 0.1, verbose=False);"
            "print('numba' in sys.modules, layers.loops(np)); print(info.format_info(info.info()))")
    for flag, loaded, line in (("0", "False None", "switched off (DIGITNET_JIT=0)"),
                               ("1", "True <class 'digitnet.jit.Loops'>", "the CPU loops compiled")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, DIGITNET_JIT=flag), check=True).stdout
        assert out.splitlines()[0] == loaded
        assert f"numba     {numba_version()}, {line}" in out


def test_a_read_only_install_compiles_without_its_cache():
    """Numba finds nowhere to write its cache (a read-only install run by a
    user with no writable home: a service account, a read-only container),
    which made every command fail: the loops then compile in each process,
    and train a dense and a conv net to the same bits as cached loops do."""
    code = ("import sys, hashlib, numpy as np\n"
            "if sys.argv[1] == 'nowhere':\n"
            "    from numba.core import caching; caching.CacheImpl._locator_classes = []\n"
            "from digitnet import Model, jit\n"
            "from digitnet.data import Dataset\n"
            "rng = np.random.default_rng(0)\n"
            "digest = hashlib.sha256()\n"
            "for layers, shape in (('fc:40,softmax:10', (1, 28, 28)),\n"
            "                      ('conv:4x3x3,bn,pool:2,softmax:10', (1, 8, 8))):\n"
            "    net = Model(layers, activation='relu', seed=0, device='cpu', input_shape=shape)\n"
            "    n = int(np.prod(shape))\n"
            "    data = Dataset(rng.random((n, 16)).astype(np.float32), np.arange(16) % 10)\n"
            "    net.sgd(data, 1, 8, 0.1, momentum=0.9, verbose=False)\n"
            "    for name, value in sorted(net.store.state_dict().items()):\n"
            "        digest.update(name.encode()); digest.update(np.ascontiguousarray(value).tobytes())\n"
            "print(type(jit._sgd._cache).__name__, digest.hexdigest())\n")
    runs = {where: subprocess.run([sys.executable, "-c", code, where], capture_output=True,
                                  text=True, env=dict(os.environ, DIGITNET_JIT="1"))
            for where in ("nowhere", "cached")}
    assert runs["nowhere"].returncode == 0, runs["nowhere"].stderr[-800:]
    assert runs["cached"].returncode == 0, runs["cached"].stderr[-800:]
    nowhere, cached = (runs[w].stdout.split() for w in ("nowhere", "cached"))
    assert (nowhere[0], cached[0]) == ("NullCache", "FunctionCache")
    assert nowhere[1] == cached[1]
