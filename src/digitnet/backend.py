"""The array module `xp`: chosen once, then every numerical function uses it.

The core is written against the Python array API, so the same code runs on
NumPy (CPU), CuPy (CUDA) and, in the tests, `array_api_strict`, which rejects
any NumPy-only call.  Anything that only NumPy and CuPy can do (``out=``
arguments, for speed) lives here behind a portable fallback.
"""

import contextlib
import functools
import os
import types

import numpy as np

DEVICES = ("auto", "cpu", "gpu")
DTYPES = ("float32", "float64")


class BackendError(ValueError):
    """The requested device or dtype cannot be used here."""


_NOT_INSTALLED = "CuPy is not installed"
# No NVIDIA driver at all: a machine without an NVIDIA GPU (a laptop, a
# cluster's CPU node sharing the GPU nodes' environment), where a notice on
# every run would be noise, as it would be without CuPy.
_NO_DRIVER = "CuPy is installed, but there is no NVIDIA driver"


def _one_line(exc):
    """An exception as one short line (CuPy's import errors run to paragraphs)."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _unusable(why):
    return f"CuPy is installed but not usable ({why})"


@functools.lru_cache(maxsize=None)
def cupy_or_reason():
    """Return (cupy, None) when CuPy can compute on a CUDA device, else (None, why).

    Seeing a device is not enough: a CuPy wheel without the CUDA libraries
    it loads lazily (NVRTC, cuBLAS) imports, counts the devices, and fails
    at the first kernel.  So the probe runs one elementwise kernel and one
    matrix product.  It runs once per process (cached); `why` is one line,
    and starts with "CuPy is not installed" only when there is no CuPy.
    """
    try:
        import cupy
    except Exception as exc:  # not there, or a CuPy that cannot load CUDA
        if isinstance(exc, ModuleNotFoundError) and exc.name == "cupy":
            return None, f"{_NOT_INSTALLED} ({exc.__class__.__name__}); pip install 'digitnet[gpu]'"
        return None, _unusable(f"import failed: {_one_line(exc)}")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        if _no_driver(cupy):
            return None, f"{_NO_DRIVER} (so no GPU to use)"
        driver = "; the NVIDIA driver may be too old" if "Driver" in str(exc) else ""
        return None, _unusable(f"getDeviceCount failed: {_one_line(exc)}{driver}")
    if count < 1:
        return None, _unusable("no CUDA device found")
    try:  # float() waits for the device, so asynchronous errors surface here
        a = cupy.arange(4, dtype=cupy.float32).reshape(2, 2)
        got = float((a + 1).sum())
    except Exception as exc:
        missing = [part for part, found in cuda_toolkit(cupy).items() if found is None]
        hint = (f"; {' and '.join(missing)} not found: pip install 'digitnet[gpu]' "
                "(CuPy's [ctk] extra)" if missing else "")
        return None, _unusable(f"a test kernel failed: {_one_line(exc)}{hint}")
    try:
        got += float((a @ a).sum())
    except Exception as exc:
        return None, _unusable(f"a test matrix product failed: {_one_line(exc)}")
    if got != 32.0:  # (1 + 2 + 3 + 4) + (2 + 3 + 6 + 11)
        return None, _unusable(f"a test computed {got}, not 32.0")
    return cupy, None


def _no_driver(cupy):
    """True when CUDA reports no driver installed (cudaDriverGetVersion: 0)."""
    try:
        return cupy.cuda.runtime.driverGetVersion() == 0
    except Exception:  # cannot tell: assume a driver, and say what failed
        return False


def cuda_toolkit(cupy):
    """{"NVRTC": version, "the CUDA headers": "version (folder)"}, None for
    each part not found: CuPy 14 compiles every kernel at first use with
    NVRTC, against the CUDA headers, and finds both as it is done here.
    Neither needs a driver or a device."""
    found = {"NVRTC": None, "the CUDA headers": None}
    try:
        found["NVRTC"] = "%d.%d" % tuple(cupy.cuda.nvrtc.getVersion())
    except Exception:  # no libnvrtc (or a CuPy without the module)
        pass
    try:
        from cuda.pathfinder import find_nvidia_header_directory
        folder = find_nvidia_header_directory("cudart")
    except Exception:
        folder = None
    if folder is not None:
        found["the CUDA headers"] = f"{_cudart_version(folder)} ({folder})"
    return found


def _cudart_version(folder):
    """"13.5" from cuda_runtime_api.h's CUDART_VERSION 13050, else "unknown"."""
    try:
        with open(os.path.join(folder, "cuda_runtime_api.h"), encoding="latin-1") as header:
            for line in header:
                words = line.split()
                if words[:2] == ["#define", "CUDART_VERSION"]:
                    code = int(words[2])
                    return f"{code // 1000}.{code % 1000 // 10}"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def namespace(device="auto", notice=None):
    """The array module for `device`: "auto", "cpu", "gpu", or a module itself.

    "auto" prefers CuPy when it can compute on a CUDA device, because the
    same code is then much faster; "gpu" insists on it, so a user who asked
    for the GPU never silently trains on the CPU.  When "auto" falls back
    although CuPy is installed, `notice` (a callable taking one line, or
    None) is told why; without CuPy, or without any NVIDIA driver (no GPU
    to expect), the fallback is silent.  This module
    never prints: the caller decides where the notice goes.
    """
    if isinstance(device, types.ModuleType):
        return device
    if device == "cpu":
        return np
    if device not in ("auto", "gpu"):
        raise BackendError(f"unknown device {device!r}: choose from {', '.join(DEVICES)}")
    cupy, why = cupy_or_reason()
    if cupy is not None:
        return cupy
    if device == "gpu":
        raise BackendError(f"--device gpu is not available: {why}")
    if notice is not None and not why.startswith((_NOT_INSTALLED, _NO_DRIVER)):
        notice(f"digitnet: notice: {why}; training on the CPU with NumPy")
    return np


def dtype_of(xp, dtype):
    """The `xp` dtype object for "float32" or "float64"."""
    name = str(getattr(dtype, "name", dtype))
    if name not in DTYPES:
        raise BackendError(f"unsupported dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    return getattr(xp, name)


def is_cupy(xp):
    return xp.__name__ == "cupy"


def has_out(xp):
    """True where ufuncs and matmul accept ``out=``: NumPy and CuPy."""
    return xp is np or is_cupy(xp)


def to_numpy(a):
    """A host NumPy copy (or view) of any backend's array, C-ordered (so a
    fast-path block's view of its weights is saved as any array is)."""
    if hasattr(a, "get"):  # CuPy: one explicit device-to-host copy
        a = a.get()
    return np.asarray(a, order="C")


def copy(xp, a):
    """A copy of `a` on its device (CuPy's asarray has no ``copy=``)."""
    return a.copy() if hasattr(a, "copy") else xp.asarray(a, copy=True)


def synchronize(xp):
    """Wait for queued device work, so timings measure work, not launches."""
    if is_cupy(xp):
        xp.cuda.get_current_stream().synchronize()


def describe(xp):
    """A short human name for the backend."""
    if is_cupy(xp):
        try:
            props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
            return f"cupy ({props['name'].decode()})"
        except Exception:
            return "cupy"
    return xp.__name__


def windows(xp, x, k, out_h, out_w):
    """The k x k windows of feature maps x (C, H, W, m) as one view
    (C, k, k, out_h, out_w, m) (of x, or of its C-order copy), or None
    where the namespace has no strides
    (the caller stacks the k*k shifted slices instead).  Reshaping the view
    then copies it once, several times faster than stacking the slices
    (benchmarks/RESULTS.md, "Why the code is shaped so")."""
    if not has_out(xp):
        return None
    # The first layer's input is the batch's (m, 784) rows transposed:
    # copied to C order first (m contiguous), the copy of the windows ran
    # 2.7x faster (benchmarks/RESULTS.md); other inputs are C order already.
    x = xp.ascontiguousarray(x)
    c, _, _, m = x.shape
    s = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, (c, k, k, out_h, out_w, m), (s[0], s[1], s[2], s[1], s[2], s[3]))


def where_zero(xp, cond, d):
    """d where cond holds, else 0.  NumPy's where is slower than a product
    with the boolean mask (benchmarks/RESULTS.md, "Why the code is shaped
    so"); the strict namespace has no bool * float, so it keeps where."""
    if has_out(xp):
        return xp.multiply(cond, d)
    return xp.where(cond, d, xp.zeros((), dtype=d.dtype))


def bytes_to_float(xp, x, dtype):
    """uint8 pixels (0-255) as the floats k/255, computed in float32 as the
    IDX reader computes them, so bytes and floats train identically; other
    arrays pass through."""
    if x.dtype != xp.uint8:
        return x
    f = xp.astype(x, xp.float32) / 255.0
    return f if dtype == xp.float32 else xp.astype(f, dtype)


def quiet_overflow(xp):
    """A context where exp overflowing to inf is expected, not warned about,
    and so is the NaN of a diverging run, which the trainer reports itself."""
    if xp is np:
        return np.errstate(over="ignore", invalid="ignore")
    return contextlib.nullcontext()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4


@functools.lru_cache(maxsize=None)
def keep_freed_memory(xp):
    """On NumPy under glibc, let freed blocks stay in the process.

    A conv step allocates and frees the same large temporaries (im2col
    matrices of 4-7 MB at m = 64, 42 MB in the record recipe's second
    layer) every mini-batch.  Depending on what the process allocated
    before, glibc may map each from the kernel and unmap it on free, so
    that every step pays page faults for fresh zeroed pages, which can cost
    a conv network a third of its epoch (benchmarks/RESULTS.md, "Why the
    code is shaped so").  Blocks up to 32 MB (glibc's highest threshold)
    come from the heap; larger ones too, with mapping switched off (glibc
    still maps when the heap cannot grow).  The process keeps up to 256 MB
    of freed memory.  Elsewhere (CuPy, which pools its own; macOS; musl) it
    does nothing.  Returns whether it applied.
    """
    if is_cupy(xp) or not has_out(xp):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
                    and libc.mallopt(_M_MMAP_MAX, 0))
    except (OSError, AttributeError):
        return False
