"""The array module `xp`: chosen once, then every numerical function uses it.

The core is written against the Python array API, so the same code runs on
NumPy (CPU), CuPy (CUDA) and, in the tests, `array_api_strict`, which rejects
any NumPy-only call.  Anything that only NumPy and CuPy can do (``out=``
arguments, for speed) lives here behind a portable fallback.
"""

import contextlib
import types

import numpy as np

DEVICES = ("auto", "cpu", "gpu")
DTYPES = ("float32", "float64")


class BackendError(ValueError):
    """The requested device or dtype cannot be used here."""


def _cupy_or_reason():
    """Return (cupy, None) when a CUDA device is usable, else (None, why)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return None, f"CuPy is not installed ({exc.__class__.__name__}); pip install 'digitnet[gpu]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy found no usable CUDA device ({exc})"
    if count < 1:
        return None, "CuPy found no CUDA device"
    return cupy, None


def namespace(device="auto"):
    """The array module for `device`: "auto", "cpu", "gpu", or a module itself.

    "auto" prefers CuPy when it imports and sees a CUDA device, because the
    same code is then much faster; "gpu" insists on it, so a user who asked
    for the GPU never silently trains on the CPU.
    """
    if isinstance(device, types.ModuleType):
        return device
    if device == "cpu":
        return np
    if device not in ("auto", "gpu"):
        raise BackendError(f"unknown device {device!r}: choose from {', '.join(DEVICES)}")
    cupy, why = _cupy_or_reason()
    if cupy is not None:
        return cupy
    if device == "gpu":
        raise BackendError(f"--device gpu is not available: {why}")
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
    """A host NumPy copy (or view) of any backend's array."""
    if hasattr(a, "get"):  # CuPy: one explicit device-to-host copy
        return a.get()
    return np.asarray(a)


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


def take_rows_kwargs(xp):
    """Keyword arguments for the fastest in-place row gather ``xp.take(a, idx, out=)``.

    NumPy buffers `take` unless told the indices are in range (mode="clip");
    ours always are, being a permutation of the rows.  CuPy has no `mode`.
    """
    return {"axis": 0, "mode": "clip"} if xp is np else {"axis": 0}


def quiet_overflow(xp):
    """A context where exp overflowing to inf is expected, not warned about."""
    if xp is np:
        return np.errstate(over="ignore")
    return contextlib.nullcontext()
