import numpy as np
import pytest

from digitnet import backend


def test_cpu_is_numpy():
    assert backend.namespace("cpu") is np


def test_auto_falls_back_to_numpy_without_a_gpu():
    cupy, _ = backend._cupy_or_reason()
    assert backend.namespace("auto") is (cupy if cupy is not None else np)


def test_gpu_without_cupy_is_a_clear_error():
    cupy, _ = backend._cupy_or_reason()
    if cupy is not None:
        pytest.skip("a GPU is present here")
    with pytest.raises(backend.BackendError, match="--device gpu is not available"):
        backend.namespace("gpu")


def test_unknown_device_and_dtype():
    with pytest.raises(backend.BackendError, match="unknown device"):
        backend.namespace("tpu")
    with pytest.raises(backend.BackendError, match="unsupported dtype"):
        backend.dtype_of(np, "float16")


def test_dtypes_and_module_passthrough(xp):
    assert backend.namespace(xp) is xp
    assert backend.dtype_of(xp, "float32") == xp.float32
    assert backend.dtype_of(xp, "float64") == xp.float64
