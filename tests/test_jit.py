"""The compiled update (jit.py) against the NumPy chain it replaces
(kernels.NumpyKernels.update), bit for bit: every form of the update, both
layouts of a block, both dtypes, one call at a time and whole runs."""

import numpy as np
import pytest

from digitnet import Model, jit, kernels, training
from conftest import blobs
from test_kernels import CASES

pytestmark = pytest.mark.skipif(jit.numba is None,
                                reason="Numba is not installed (the `fast` extra)")

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
