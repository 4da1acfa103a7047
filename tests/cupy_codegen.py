"""CuPy's own CUDA source for the fast path's fused kernels, without a GPU.

kernels.CupyKernels builds each elementwise chain as a cupy.ElementwiseKernel;
CuPy writes the CUDA source only at launch, from the arguments' dtypes,
dimensions and layout.  So this module runs the real fast path (batched.py,
training.fit) on `stand_in()`, a `cupy` module whose arrays are NumPy arrays,
and at each kernel call does what CuPy 14's ElementwiseKernel.__call__ does
before a launch (broadcast, _reduce_dims, the argument infos) and asks CuPy's
generator for the source.  That source is then either compiled by NVRTC
(`nvrtc_compile`, for a GPU architecture) or compiled by the host's C++
compiler against CuPy's own carray.cuh and run on the NumPy buffers
(`HostKernel`), so the CUDA code's own indexing and arithmetic are tested.

The generator is private API (cupy._core._kernel), so this mirrors one minor
version, PINNED; `internals()` fails with a clear message when it moved.
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

PINNED = "14."          # the CuPy minor line whose generator this mirrors
REQUIRE = "DIGITNET_REQUIRE_GPUCHECK"
INSTALL = "pip install -e '.[gpucheck]'"
ND, INDEXER, SCALAR = 1, 2, 3  # cupy._core._kernel's ARG_KIND_* values


def unavailable(why):
    """Skip, or fail where CI (REQUIRE=1) demands these tests run."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{why}; {REQUIRE}=1 requires the GPU code checks to run", pytrace=False)
    pytest.skip(why)


def moved(what):
    pytest.fail(f"CuPy's private kernel generator moved ({what}): tests/cupy_codegen.py "
                f"mirrors CuPy {PINNED}x and must be updated with the pin", pytrace=False)


_internals = []


def internals():
    """CuPy's private pieces used here, checked once per session."""
    if _internals:
        return _internals[0]
    try:
        import cupy
    except ImportError as exc:
        unavailable(f"CuPy is not installed ({exc.__class__.__name__}); {INSTALL}")
    if not cupy.__version__.startswith(PINNED):
        unavailable(f"CuPy {cupy.__version__} is installed, and these checks mirror the "
                    f"private generator of CuPy {PINNED}x; {INSTALL}")
    try:
        from cupy._core import _carray, _kernel, _scalar, core
        from cupy.cuda import compiler, nvrtc
        ns = types.SimpleNamespace(
            cupy=cupy, code=_kernel._get_elementwise_kernel_code, ArgInfo=_kernel._ArgInfo,
            typename=_kernel._get_typename, CScalar=_scalar.CScalar, Indexer=_carray.Indexer,
            options=core.assemble_cupy_compiler_options, headers=tuple(core._cupy_header_list),
            Program=compiler._NVRTCProgram, CompileError=compiler.CompileException,
            nvrtc=nvrtc)
    except (ImportError, AttributeError) as exc:
        moved(f"{exc.__class__.__name__}: {exc}")
    _self_check(ns)
    _internals.append(ns)
    return ns


def _self_check(ns):
    """The source of a known kernel has the shape this module relies on:
    the kernel's signature (CArray<T, ndim, c_contiguous, 32-bit>, the
    indexer), the reference binding of non-raw arguments, the loop."""
    try:
        k = ns.cupy.ElementwiseKernel("raw T a, T b", "T c", "c = a[i] + b;", "probe")
        infos = (ns.ArgInfo(ND, ns.cupy.ndarray, np.dtype("float32"), 1, True, True),
                 ns.ArgInfo(ND, ns.cupy.ndarray, np.dtype("float32"), 2, False, True),
                 ns.ArgInfo(ND, ns.cupy.ndarray, np.dtype("float32"), 2, False, True),
                 ns.ArgInfo(INDEXER, ns.Indexer, None, 2, True, True))
        _, _, type_map = k._decide_params_type((np.dtype("float32"),) * 2, (np.dtype("float32"),))
        source = ns.code(infos, type_map, k.params, k.operation, k.name, k.preamble, **k.kwargs)
        nin, nargs = k.nin, k.nargs
    except Exception as exc:
        moved(f"{exc.__class__.__name__}: {exc}")
    expected = ['extern "C" __global__ void probe(const CArray<float, 1, 1, 1> a, '
                'const CArray<float, 2, 0, 1> _raw_b, CArray<float, 2, 0, 1> _raw_c, '
                'CIndexer<2, 1> _ind)', "typedef float T;", "CUPY_FOR(i, _ind.size())",
                "_ind.set(i);", "const T &b = _raw_b[_ind.get()];", "T &c = _raw_c[_ind.get()];"]
    missing = [e for e in expected if e not in source]
    if missing or (nin, nargs) != (2, 3):
        moved(f"a probe kernel's source lacks {missing}:\n{source}")


# -- the stand-in `cupy` ------------------------------------------------------

class DeviceArray(np.ndarray):
    """A NumPy array playing a cupy.ndarray (with its .get() and .set())."""

    def set(self, host):
        assert isinstance(host, np.ndarray) and not isinstance(host, DeviceArray)
        assert host.shape == self.shape and host.dtype == self.dtype
        np.copyto(self, host)

    def get(self):
        return np.array(self).view(np.ndarray)


def _on_device(a):
    return a.view(DeviceArray) if isinstance(a, np.ndarray) else a


def stand_in(kernel_class, gemm=True):
    """A module named `cupy` (backend.is_cupy is True) whose creators make
    DeviceArrays and whose ElementwiseKernel is `kernel_class`; without
    `gemm`, dot leaves its output alone (compiling needs no values)."""
    m = types.ModuleType("cupy")
    m.__getattr__ = lambda name: getattr(np, name)
    for name in ("empty", "ones", "zeros", "asarray", "eye", "take", "arange", "zeros_like",
                 "ones_like", "empty_like"):
        setattr(m, name, (lambda fn: lambda *a, **k: _on_device(fn(*a, **k)))(getattr(np, name)))
    m.ElementwiseKernel = kernel_class
    if not gemm:
        m.dot = lambda a, b, out=None: out
    stream = types.SimpleNamespace(synchronize=lambda: None)
    m.cuda = types.SimpleNamespace(get_current_stream=lambda: stream)
    return m


# -- what CuPy 14's ElementwiseKernel.__call__ does before a launch -----------

def _reduced(params, views, shape):
    """CuPy 14's _reduce_dims (_reduced_view_core) on the broadcast views."""
    arrays = [i for i, p in enumerate(params) if not p.raw and isinstance(views[i], np.ndarray)]
    if len(shape) <= 1 or not arrays:
        return views, shape
    strided = [i for i in arrays if not views[i].flags.c_contiguous]
    if strided and len(shape) == 2:  # CuPy's short cut
        return views, shape
    out = list(views)
    if not strided:
        size = int(np.prod(shape))
        for i in arrays:
            out[i] = np.lib.stride_tricks.as_strided(views[i], (size,), (views[i].itemsize,))
        return out, (size,)
    vec, axes, last = list(shape), [], -1
    for ax in range(len(shape)):
        if vec[ax] == 1:
            continue
        if last < 0:
            last = ax
            continue
        if any(views[i].strides[ax] * vec[ax] != views[i].strides[last] for i in strided):
            axes.append(last)
        else:
            vec[ax] *= vec[last]
        last = ax
    if last >= 0:
        axes.append(last)
    if len(axes) == len(shape):
        return out, shape
    newshape = tuple(vec[a] for a in axes)
    for i in arrays:
        out[i] = np.lib.stride_tricks.as_strided(
            views[i], newshape, tuple(views[i].strides[a] for a in axes))
    return out, newshape


class Launch:
    """One call of a cupy.ElementwiseKernel as CuPy 14 would launch it:
    `infos` and `type_map` (what the generated source depends on), the
    reduced `views` the kernel indexes, scalars typed, and the loop `shape`."""

    def __init__(self, kernel, args, index_32_bits=True):
        ns = internals()
        k = self.kernel = kernel
        if len(args) != k.nargs:  # CupyKernels always passes its outputs
            raise TypeError(f"{k.name}: {len(args)} arguments for {k.nargs} parameters")
        params = k.params[:-1]
        for a in args:
            if isinstance(a, np.ndarray) and not isinstance(a, DeviceArray):
                raise TypeError(f"{k.name}: a host array passed to a kernel (CuPy: "
                                f"Unsupported type {type(a)})")
        in_types = tuple(a.dtype if isinstance(a, np.ndarray) else None for a in args[:k.nin])
        in_t, out_t, self.type_map = k._decide_params_type(
            in_types, tuple(a.dtype for a in args[k.nin:]))
        arrays = [a for p, a in zip(params, args) if not p.raw and isinstance(a, np.ndarray)]
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        for p, a in zip(params[k.nin:], args[k.nin:]):
            if not p.raw and a.shape != shape:
                raise ValueError(f"{k.name}: Out shape is mismatched")
        for p, a in zip(params[:k.nin], args[:k.nin]):  # a race on a GPU
            if p.raw and any(np.shares_memory(a, o) for o in args[k.nin:]):
                raise ValueError(f"{k.name}: raw input {p.name} overlaps an output")
        views = [np.broadcast_to(a, shape) if not p.raw and isinstance(a, np.ndarray) else a
                 for p, a in zip(params, args)]
        contiguous = [v.flags.c_contiguous if isinstance(v, np.ndarray) else True for v in views]
        views, self.shape = _reduced(params, views, shape)
        self.views = list(views)
        types_ = list(in_t) + list(out_t)
        infos = []
        for i, v in enumerate(self.views):
            if isinstance(v, np.ndarray):
                infos.append(ns.ArgInfo(ND, ns.cupy.ndarray, v.dtype, v.ndim, contiguous[i],
                                        index_32_bits))
            else:
                dtype = np.dtype(types_[i])
                infos.append(ns.ArgInfo(SCALAR, ns.CScalar, dtype, 0, True, True))
                self.views[i] = np.asarray(v, dtype=dtype)  # CScalar.apply_dtype
        infos.append(ns.ArgInfo(INDEXER, ns.Indexer, None, len(self.shape), True, index_32_bits))
        self.infos = tuple(infos)
        self.contiguous = contiguous
        self.index_32_bits = index_32_bits

    def source(self):
        """The kernel's CUDA source, exactly as CuPy generates it (no headers)."""
        k = self.kernel
        return internals().code(self.infos, self.type_map, k.params, k.operation, k.name,
                                k.preamble, **k.kwargs)

    def c_types(self):
        """Each argument's C type in the kernel's signature."""
        typename = internals().typename
        out = []
        for info, v, c in zip(self.infos, self.views, self.contiguous):
            if isinstance(v, np.ndarray) and info.ndim:
                out.append(f"CArray<{typename(v.dtype)}, {v.ndim}, {int(c)}, "
                           f"{int(self.index_32_bits)}>")
            else:
                out.append(typename(v.dtype))
        return out + [f"CIndexer<{len(self.shape)}, {int(self.index_32_bits)}>"]


# -- NVRTC ----------------------------------------------------------------------

def nvrtc_compile(kernel, source, arch, ptx=False, options=None):
    """Compile a generated kernel source as CuPy 14 would for sm_`arch`
    (its headers, its options and the kernel's own, or `options`, and
    -ftz=true); returns the cubin, or PTX text.  Raises CuPy's
    CompileException with NVRTC's log."""
    ns = internals()
    full = "".join(f"#include <{h}>\n" for h in ns.headers) + source
    if options is None:
        options = tuple(kernel.kwargs.get("options", ()))
    options = ns.options(options)
    options += ("-ftz=true", f"-arch={'compute' if ptx else 'sm'}_{arch}",
                "--device-as-default-execution-space")
    program = ns.Program(full, kernel.name + ".cu", method="ptx" if ptx else "cubin")
    binary, _ = program.compile(options)
    return binary.decode() if ptx else binary


def nvrtc_version():
    """NVRTC's (major, minor), or a skip/fail saying it is missing."""
    try:
        return tuple(internals().nvrtc.getVersion())
    except Exception as exc:
        unavailable(f"NVRTC could not be loaded ({exc.__class__.__name__}: {exc}); {INSTALL}")


# -- the generated source on the host ------------------------------------------

PRELUDE = r"""// CuPy's carray.cuh, compiled for the host: device qualifiers empty, the
// CUDA intrinsics it uses from the compiler, its grid-stride loop one loop.
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <initializer_list>
using std::exp; using std::tanh; using std::log; using std::sqrt;
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
static inline unsigned int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline unsigned int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static long long _oob = 0;  // raw indexes out of range (on a GPU: garbage or a fault)
template <typename T> static T& _dummy() { static T d; return d; }
"""
# A bounds check in CArray's flat (raw) indexing, where a wrong index lands.
BOUNDS_AT = "__device__ const T& operator[](ptrdiff_t idx) const {"
BOUNDS = " if (idx < 0 || idx >= size_) { ++_oob; return _dummy<T>(); }"
LOOP = "\n#undef CUPY_FOR\n#define CUPY_FOR(i, n) for (ptrdiff_t i = 0; i < (n); ++i)\n"


def carray_for_host():
    """The installed CuPy's carray.cuh with the host prelude and bounds check."""
    path = Path(internals().cupy.__file__).parent / "_core/include/cupy/carray.cuh"
    text = path.read_text()
    if text.count(BOUNDS_AT) != 1 or "#define CUPY_FOR(i, n)" not in text:
        moved(f"{path} no longer has {BOUNDS_AT!r} once, or CUPY_FOR")
    return PRELUDE + text.replace("#pragma once", "").replace(BOUNDS_AT, BOUNDS_AT + BOUNDS) + LOOP


def host_compiler():
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        unavailable(f"no C++ compiler ({cxx}) to run the generated kernels on the host; "
                    "apt-get install g++")
    return cxx


class HostKernel:
    """A cupy.ElementwiseKernel whose generated source runs on the host,
    compiled with -ffp-contract=off (no fused multiply-add, as NVRTC with
    --fmad=false) and called on the reduced NumPy views.  `prebuild` makes
    one library of many variants; others compile one by one as they come."""

    build = None        # the folder for sources and libraries (set by the test)
    variants = {}       # source -> launch function
    mutate = None       # (name, old, new): plant a bug in one kernel's body

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        if HostKernel.mutate and HostKernel.mutate[0] == name:
            _, old, new = HostKernel.mutate
            assert old in operation, (name, old, operation)
            operation = operation.replace(old, new)
        self.real = internals().cupy.ElementwiseKernel(in_params, out_params, operation, name,
                                                      **kwargs)

    def __call__(self, *args):
        launch = Launch(self.real, args)
        source = launch.source()
        fn = HostKernel.variants.get(source) or HostKernel.prebuild([launch])[source]
        buffers = []
        for v, info in zip(launch.views, launch.infos):
            if info.ndim:
                buffers.append(np.array([v.ctypes.data, v.size, *v.shape, *v.strides], np.int64))
            else:
                buffers.append(v)
        size = int(np.prod(launch.shape))
        buffers.append(np.array([size, *launch.shape, *([0] * len(launch.shape))], np.int64))
        argv = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
        if fn(argv):
            raise IndexError(f"{self.real.name}: a raw index out of range")

    @staticmethod
    def prebuild(launches):
        """Compile the launches' sources into one library (each in its own
        namespace, its kernel renamed) and register their entry points."""
        chunks, entries = [carray_for_host()], {}
        for j, launch in enumerate(launches):
            name, source = launch.kernel.name, launch.source()
            if source in entries or source in HostKernel.variants:
                continue
            call = ", ".join(f"*({t}*)argv[{i}]" for i, t in enumerate(launch.c_types()))
            chunks.append(f"namespace v{j} {{\n#define {name} {name}_v{j}\n{source}\n"
                          f"#undef {name}\n}}\nextern \"C\" long long launch_v{j}(void** argv) "
                          f"{{ _oob = 0; v{j}::{name}_v{j}({call}); return _oob; }}\n")
            entries[source] = f"launch_v{j}"
        if entries:
            text = "".join(chunks)
            key = hashlib.sha1(text.encode()).hexdigest()[:20]
            build = Path(HostKernel.build)
            cpp, lib = build / f"{key}.cpp", build / f"{key}.so"
            cpp.write_text(text)
            done = subprocess.run([host_compiler(), "-std=c++17", "-O1", "-ffp-contract=off",
                                   "-fPIC", "-shared", "-w", "-o", str(lib), str(cpp)],
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the host compiler failed on {cpp}:\n{done.stderr[-3000:]}")
            library = ctypes.CDLL(str(lib))
            for source, symbol in entries.items():
                fn = getattr(library, symbol)
                fn.argtypes, fn.restype = [ctypes.POINTER(ctypes.c_void_p)], ctypes.c_longlong
                HostKernel.variants[source] = fn
        return HostKernel.variants


class Recorder:
    """A cupy.ElementwiseKernel that records its distinct launches (by the
    source they generate) and computes nothing."""

    launches = {}

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.real = internals().cupy.ElementwiseKernel(in_params, out_params, operation, name,
                                                      **kwargs)

    def __call__(self, *args):
        launch = Launch(self.real, args)
        key = (self.real.name, self.real.operation, launch.infos, launch.type_map)
        Recorder.launches.setdefault(key, launch)


# -- every network the fast path trains ------------------------------------------

def configurations():
    """(name, make(xp, dtype), run options) for every kind of network the
    fast path accepts: the chapter-1 Network (negated weights without
    momentum or L2) and Models of every hidden activation, output and cost,
    with and without dropout, one layer or three; each with and without L2
    and momentum."""
    from digitnet import Model, Network
    nets = [("network", lambda xp, dtype: Network([12, 5, 4], seed=4, device=xp, dtype=dtype))]
    tops = (("fc", "quadratic"), ("fc", "cross-entropy"), ("softmax", "log-likelihood"))
    for top, cost in tops:
        nets.append((f"{top}:4 {cost}", (lambda top, cost: lambda xp, dtype: Model(
            f"{top}:4", cost=cost, seed=4, device=xp, dtype=dtype, input_shape=(12,)))(top, cost)))
        for activation in ("sigmoid", "relu", "tanh"):
            for dropout in (0.0, 0.3):
                layers = f"fc:7,fc:5,{top}:4"
                options = dict(cost=cost, activation=activation, dropout=dropout,
                               init="scaled" if activation == "relu" else "large")
                nets.append((f"{layers} {activation} {cost} dropout={dropout}",
                             (lambda layers, options: lambda xp, dtype: Model(
                                 layers, **options, seed=4, device=xp, dtype=dtype,
                                 input_shape=(12,)))(layers, options)))
    for name, make in nets:
        for lmbda, momentum in ((0.0, 0.0), (3.0, 0.0), (0.0, 0.7), (3.0, 0.7)):
            yield (f"{name} lmbda={lmbda} momentum={momentum}", make,
                   dict(lmbda=lmbda, momentum=momentum))
    # the levers beyond the book: per-step rates and smoothing on the
    # chapter-1 chain (its quadratic output), Nesterov and Adam on a softmax
    # net; between them every kernel they add is launched
    levers = {"network": [dict(schedule="one-cycle", warmup=0.3, label_smoothing=0.1),
                          dict(lmbda=3.0, schedule="cosine")],
              "fc:7,fc:5,softmax:4 relu log-likelihood dropout=0.3": [
                  dict(lmbda=3.0, momentum=0.7, nesterov=True, schedule="one-cycle", warmup=0.3,
                       label_smoothing=0.1),
                  dict(momentum=0.7, nesterov=True, label_smoothing=0.2),
                  dict(optimizer="adam", lmbda=3.0, schedule="one-cycle", warmup=0.3),
                  dict(optimizer="adam", beta1=0.3, beta2=0.9)]}
    for name, make in nets:
        for options in levers.get(name, ()):
            yield f"{name} {options}", make, options


def dataset(n, rows, seed=0):
    """n learnable blobs of 12 features and 4 classes, as floats in [0, 1]
    or as bytes (`rows` "uint8")."""
    from digitnet.data import Dataset
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = np.clip(rng.random((4, 12))[labels] + 0.15 * rng.standard_normal((n, 12)), 0, 1)
    if rows == "uint8":
        return Dataset(np.rint(images.T * 255).astype(np.uint8), labels)
    return Dataset(images.T.astype(rows), labels)
