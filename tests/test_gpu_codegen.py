"""The fast path's CuPy kernels, checked without a GPU (tests/cupy_codegen.py):
CuPy's own generated CUDA source for every kernel launch the fast path can
make compiles with NVRTC for the H200 (sm_90) and the A100 (sm_80), and,
compiled for the host, trains every fast-path network like the plain engine.

These need the `gpucheck` extra (CuPy 14 and NVRTC from pip) and a C++
compiler; without them they skip, and CI (DIGITNET_REQUIRE_GPUCHECK=1)
fails instead."""

import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from digitnet import backend, batched, kernels, training
import cupy_codegen as cg

pytestmark = [pytest.mark.gpucheck, pytest.mark.slow]

ARCHS = ("90", "80")   # H200, A100
# Every kernel CupyKernels builds (an independent list: a kernel the drive
# below never launched fails the test instead of passing unchecked).
KERNELS = {f"digitnet_{name}" for name in (
    "gather", "act_sigmoid", "act_relu", "act_tanh", "act_drop_sigmoid", "act_drop_relu",
    "act_drop_tanh", "sigmoid_neg", "hd_sigmoid_neg", "sgd_neg", "shift_exp", "output_delta",
    "output_delta_q", "hd_sigmoid", "hd_relu", "hd_tanh", "hd_drop_sigmoid", "hd_drop_relu",
    "hd_drop_tanh", "sgd", "momentum", "nesterov", "output_delta_s", "output_delta_q_s",
    "adam")}
DTYPES = ("float32", "float64")
ROWS = ("float32", "uint8")


@pytest.fixture(autouse=True)
def fresh_kernels(monkeypatch):
    """CupyKernels caches kernel objects per body: each test builds its own."""
    monkeypatch.setattr(kernels.CupyKernels, "_cache", {})
    cg.internals()


def train(make, xp, dtype, data, m, options, epochs, plain=False, monkeypatch=None, eta=0.1):
    """(net, run, fast steps taken) after `epochs` of training `make(xp, dtype)`.
    (At eta = 0.8 some float32 tanh runs are chaotic: the CPU fast path and
    plain engine part by 0.1 there too.)"""
    used = []
    real = batched.FastBatched.step
    with monkeypatch.context() as patch:
        patch.setattr(batched.FastBatched, "step",
                      lambda self, idx, k: used.append(1) or real(self, idx, k))
        if plain:
            patch.setattr(backend, "has_out", lambda xp: False)
        net = make(xp, dtype)
        run = training.Run(net, mini_batch_size=m, eta=eta, **options)
        training.fit(run, data, epochs)
    return net, run, len(used)


@pytest.fixture(scope="module")
def launches():
    """Every distinct kernel launch (by its generated source) of every
    configuration, dtype, row type, and mini-batch sizes 7 and 64 with short
    last batches of 1 and 3 examples (a one-column batch is C-contiguous)."""
    cg.internals()
    cg.Recorder.launches = {}
    xp = cg.stand_in(cg.Recorder, gemm=False)
    # without the GEMMs the values are garbage (NaN in softmax): only launches count
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels.CupyKernels, "_cache", {})
        for dtype in DTYPES:
            for rows in ROWS:
                for m, n in ((7, 15), (64, 131)):
                    data = cg.dataset(n, rows)
                    for name, make, options in cg.configurations():
                        _, _, steps = train(make, xp, dtype, data, m, options, 1,
                                            monkeypatch=patch)
                        assert steps, f"{name}: the fast path was not taken"
    return list(cg.Recorder.launches.values())


def test_every_kernel_launch_compiles_with_nvrtc_for_the_h200_and_the_a100(launches):
    """Each distinct source CuPy 14 would generate, compiled as CuPy would
    (its headers and options, -ftz=true, the kernels' --fmad=false), for
    sm_90 and sm_80; NVRTC's log on failure.  (32-bit indexing: CuPy
    switches to 64-bit only for arrays of 2^31 elements, far beyond MNIST's.)"""
    version = cg.nvrtc_version()

    def compile_one(job):
        launch, arch = job
        source = launch.source()
        try:
            assert cg.nvrtc_compile(launch.kernel, source, arch)
        except cg.internals().CompileError as exc:
            return (f"{launch.kernel.name} sm_{arch} (NVRTC {version}):\n"
                    f"{exc.get_message()}\n{source}")
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        failures = [f for f in pool.map(compile_one, [(x, a) for x in launches for a in ARCHS])
                    if f]
    assert not failures, "\n\n".join(failures[:3]) + f"\n({len(failures)} failed)"
    names = {x.kernel.name for x in launches}
    assert names == KERNELS, f"never launched: {KERNELS - names}; unknown: {names - KERNELS}"
    assert len(launches) >= 2 * len(KERNELS) * len(DTYPES)


def test_a_typo_in_a_kernel_body_fails_with_nvrtcs_message(launches):
    """The check above is not vacuous: NVRTC compiles the source it is given,
    and its error names the fault."""
    cg.nvrtc_version()
    launch = next(x for x in launches if x.kernel.name == "digitnet_momentum")
    source = launch.source()
    assert "wb = wb + v;" in source
    with pytest.raises(cg.internals().CompileError) as error:
        cg.nvrtc_compile(launch.kernel, source.replace("wb = wb + v;", "wb = wb + vv;"), "90")
    assert 'identifier "vv" is undefined' in error.value.get_message()


# PTX floating-point arithmetic ptxas may contract into FMA: without an
# explicit rounding mode (`mul.f32`, not `mul.rn.f32`; PTX ISA, "mul").
CONTRACTIBLE = re.compile(r"\b(?:add|sub|mul)(?:\.ftz)?(?:\.sat)?\.f(?:32|64)\b")


def test_the_fused_kernels_compile_without_fused_multiply_add(launches):
    """kernels.py passes --fmad=false, so `mu * v - nabla` stays a multiply
    and a subtraction, rounded twice, as the plain engine's two ufuncs round
    it: in the PTX every add, sub and mul has its rounding mode fixed (.rn),
    which forbids ptxas to fuse them, and no kernel has an fma but those
    calling exp or tanh (CUDA's math library uses explicit FMAs inside).
    The control: without the option the same source has contractible ops."""
    cg.nvrtc_version()
    arithmetic = {}  # the layout changes indexing, not the formula: one per kernel and dtype
    for launch in launches:
        arithmetic.setdefault((launch.kernel.name, launch.type_map), launch)

    def ptx(launch):
        return launch, cg.nvrtc_compile(launch.kernel, launch.source(), "90", ptx=True)
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        for launch, text in pool.map(ptx, arithmetic.values()):
            assert not CONTRACTIBLE.findall(text), launch.kernel.name
            if not any(f in launch.kernel.operation for f in ("exp(", "tanh(")):
                assert "fma." not in text, launch.kernel.name
    momentum = next(x for x in launches if x.kernel.name == "digitnet_momentum")
    assert momentum.kernel.kwargs.get("options") == ("--fmad=false",)
    assert CONTRACTIBLE.findall(cg.nvrtc_compile(momentum.kernel, momentum.source(), "90",
                                                 ptx=True, options=()))


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory, launches):
    """The stand-in `cupy` whose kernels run their generated source on the
    host, every recorded variant compiled up front in one library."""
    cg.host_compiler()
    cg.HostKernel.build = tmp_path_factory.mktemp("host-kernels")
    cg.HostKernel.variants = {}
    cg.HostKernel.prebuild(launches)
    return cg.stand_in(cg.HostKernel)


def compare(make, xp, dtype, data, m, options, monkeypatch):
    """max |fast - plain| over weights, biases and the optimizer's buffers
    (velocities, Adam's moments), or a reason."""
    fast, fast_run, steps = train(make, xp, dtype, data, m, options, 2, monkeypatch=monkeypatch)
    plain, plain_run, plain_steps = train(make, xp, dtype, data, m, options, 2, plain=True,
                                          monkeypatch=monkeypatch)
    if not steps or plain_steps:
        return None, "the fast path was not taken (or the plain run took it)"
    start = make(np, dtype).weights[0]
    if np.abs(start - np.asarray(plain.weights[0])).max() < 1e-3:
        return None, "it did not train"
    pairs = list(zip(fast.weights + fast.biases, plain.weights + plain.biases))
    pairs += list(zip(fast_run.optimizer.buffers(), plain_run.optimizer.buffers()))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
    if not all(np.allclose(np.asarray(a), np.asarray(b), **tol) for a, b in pairs):
        return worst, f"max |fast - plain| = {worst:.3g}"
    if fast.rng.bit_generator.state != plain.rng.bit_generator.state:
        return worst, "different dropout draws"
    return worst, None


@pytest.mark.parametrize("m", [7, 64])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_generated_kernels_train_like_the_plain_engine(dtype, rows, m, host_kernels,
                                                           monkeypatch):
    """Two epochs of 150 examples (short last batches), every configuration:
    the fast path running CuPy's generated kernels on the host against the
    plain engine, to the tolerance the CPU fast path meets (tests/
    test_kernels.py): the same weights, biases and velocities to rounding,
    and the same dropout draws."""
    data = cg.dataset(150, rows)
    failures = []
    for name, make, options in cg.configurations():
        try:
            _, why = compare(make, host_kernels, dtype, data, m, options, monkeypatch)
        except (IndexError, ValueError, TypeError) as exc:
            why = f"{exc.__class__.__name__}: {exc}"
        if why:
            failures.append(f"{name}: {why}")
    assert not failures, "\n".join(failures)


ADAM = ("fc:7,fc:5,softmax:4 relu log-likelihood dropout=0.3 {'optimizer': 'adam', "
        "'lmbda': 3.0, 'schedule': 'one-cycle', 'warmup': 0.3}")
NESTEROV = ("fc:7,fc:5,softmax:4 relu log-likelihood dropout=0.3 {'lmbda': 3.0, 'momentum': 0.7, "
            "'nesterov': True, 'schedule': 'one-cycle', 'warmup': 0.3, 'label_smoothing': 0.1}")


@pytest.mark.parametrize("kernel, old, new", [
    # the label of the wrong example: the class and example indexes swapped
    ("digitnet_output_delta_q", "labels[idx[i % m]] == i / m", "labels[idx[i / m]] == i % m"),
    # the bias column taken for the first one: L2 decays the biases instead
    ("digitnet_momentum", "(i % cols) == cols - 1", "(i % cols) == 0"),
    # a formula: tanh' as 1 - a
    ("digitnet_hd_tanh", "((T)1 - a * a)", "((T)1 - a)"),
    # Nesterov's look-ahead left out: plain momentum's step
    ("digitnet_nesterov", "wb = (wb + mu * v) - g", "wb = wb + v"),
    # label smoothing's targets swapped
    ("digitnet_output_delta_s", "? hot : cold", "? cold : hot"),
    # Adam's second moment without its decay
    ("digitnet_adam", "ve = ve * b2 +", "ve = ve +"),
], ids=["index-swap", "bias-column", "tanh-derivative", "nesterov", "smoothing", "adam"])
def test_a_planted_bug_in_a_kernel_body_fails_the_comparison(kernel, old, new, host_kernels,
                                                             monkeypatch):
    """The comparison is not vacuous: a wrong index or formula in a kernel's
    CUDA source is caught (a mismatch, or a raw index out of range)."""
    monkeypatch.setattr(cg.HostKernel, "mutate", (kernel, old, new))
    case = {"digitnet_output_delta_q": "network lmbda=0.0 momentum=0.0",
            "digitnet_momentum": "fc:7,fc:5,fc:4 relu quadratic dropout=0.0 lmbda=3.0 "
                                 "momentum=0.7",
            "digitnet_hd_tanh": "fc:7,fc:5,fc:4 tanh quadratic dropout=0.0 lmbda=0.0 "
                                "momentum=0.0",
            "digitnet_nesterov": NESTEROV, "digitnet_output_delta_s": NESTEROV,
            "digitnet_adam": ADAM}
    name, make, options = next(c for c in cg.configurations() if c[0] == case[kernel])
    try:
        _, why = compare(make, host_kernels, "float64", cg.dataset(150, "float32"), 7, options,
                         monkeypatch)
    except (IndexError, training.Diverged) as exc:  # out of range, or training blew up
        why = str(exc)
    assert why, f"{kernel}: {new!r} for {old!r} went unnoticed"


# What each kernels.py chain writes (the rest of its arguments is input or scratch).
OUTPUTS = {"gather": lambda rows, idx, x, raw, two55: [x],
           "upload": lambda host, device: [],  # a copy, not a kernel
           "activate": lambda kind, z, a, one, zero, drop: [a] + list(drop[3:] if drop else []),
           "sigmoid_of_negated": lambda z, a, one: [a],
           "sigmoid_delta_negated": lambda delta, a, t, one: [delta],
           "sgd_negated": lambda wb, nabla: [wb],
           "softmax": lambda z, column, a: [a],
           "output_delta": lambda quadratic, a, targets, labels, smooth, idx, y, k, delta, t,
                                  one: [delta],
           "hidden_delta": lambda kind, delta, a, mask, t, one, zero: [delta],
           "update": lambda wb, nabla, v, w, nabla_w, v_w, mu, decay, keep, scratch: [wb] + (
               [] if v is None else [v]),
           "adam": lambda wb, g, mo, ve, *constants: [wb, mo, ve]}


def twin_copy(args, memo):
    """`args` with every array copied, views kept views of the same copy."""
    if isinstance(args, tuple):
        return tuple(twin_copy(a, memo) for a in args)
    if not isinstance(args, np.ndarray):
        return args
    root = args
    while isinstance(root.base, np.ndarray):
        root = root.base
    if id(root) not in memo:
        memo[id(root)] = np.empty_like(root.view(np.ndarray), order="K")
        np.copyto(memo[id(root)], root)
        assert memo[id(root)].strides == root.strides
    copy = memo[id(root)]
    offset = args.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return np.ndarray(args.shape, args.dtype, buffer=copy, offset=offset, strides=args.strides)


class Twins:
    """kernels.py for the fast path: each call runs the CuPy kernel's
    generated source on the host and the NumPy chain on copies of the same
    arguments, and compares what they write."""

    def __init__(self):
        self.checked, self.failures = {}, []

    def __getattr__(self, name):
        def call(xp, *args):
            twin = twin_copy(args, {})
            getattr(kernels.NumpyKernels, name)(np, *twin)
            getattr(kernels.CupyKernels, name)(xp, *args)
            transcendental = name in ("sigmoid_of_negated", "softmax") or (
                name == "activate" and args[0] != "relu")
            for got, want in zip(OUTPUTS[name](*args), OUTPUTS[name](*twin)):
                got, want = np.asarray(got), np.asarray(want)
                try:
                    if transcendental:
                        np.testing.assert_array_max_ulp(got, want, maxulp=4)
                    else:
                        np.testing.assert_array_equal(got.view(np.ndarray), want)
                except AssertionError as exc:
                    self.failures.append(f"{name} ({got.dtype}): {str(exc)[:300]}")
                self.checked[name] = self.checked.get(name, 0) + 1
        return call


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_kernel_computes_what_its_numpy_chain_computes(dtype, rows, host_kernels,
                                                             monkeypatch):
    """The promise docs/gpu.md makes, on the emulated kernels: on the same
    arguments, every kernel writes, bit for bit, what the NumPy chain it
    replaces writes (--fmad=false: the same roundings in the same order),
    except where it calls exp or tanh, whose last bits depend on the math
    library (within 4 ulp here).  Checked at every call of one epoch of
    every configuration, whose last mini-batch is one example (a one-column
    batch is C-contiguous: CuPy launches it flat)."""
    twins = Twins()
    monkeypatch.setattr(kernels, "for_namespace", lambda xp: twins)
    data = cg.dataset(29, rows)
    for name, make, options in cg.configurations():
        train(make, host_kernels, dtype, data, 7, options, 1, monkeypatch=monkeypatch)
    assert not twins.failures, "\n".join(twins.failures[:10])
    assert set(twins.checked) == set(OUTPUTS) - {"upload"}


def test_a_moved_generator_fails_clearly_rather_than_passing(monkeypatch):
    """CuPy's generator is private: a name gone, or source of another shape,
    fails these checks with a message saying so, never a vacuous pass."""
    from cupy._core import _kernel
    monkeypatch.setattr(cg, "_internals", [])
    monkeypatch.delattr(_kernel, "_get_elementwise_kernel_code")
    with pytest.raises(pytest.fail.Exception, match="private kernel generator moved .*"
                       "_get_elementwise_kernel_code"):
        cg.internals()
    monkeypatch.undo()
    monkeypatch.setattr(cg, "_internals", [])
    monkeypatch.setattr(_kernel, "_get_elementwise_kernel_code",
                        lambda *args, **kwargs: "__global__ void probe() {}")
    with pytest.raises(pytest.fail.Exception, match="a probe kernel's source lacks"):
        cg.internals()


@pytest.mark.parametrize("required", [False, True])
def test_another_cupy_minor_skips_here_and_fails_in_ci(required, monkeypatch):
    import cupy
    monkeypatch.setattr(cg, "_internals", [])
    monkeypatch.setattr(cupy, "__version__", "15.0.0")
    monkeypatch.setenv(cg.REQUIRE, "1" if required else "0")
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="CuPy 15.0.0 is installed, and these checks mirror"):
        cg.internals()
