"""Shared fixtures: array namespaces and the real MNIST (see ../conftest.py
for the guard that fails CI when real-data tests were skipped)."""

import numpy as np
import pytest


def _namespaces():
    spaces = [pytest.param("numpy", id="numpy"), pytest.param("strict", id="strict")]
    spaces.append(pytest.param("cupy", id="cupy", marks=pytest.mark.gpu))
    return spaces


def load_namespace(name):
    if name == "numpy":
        return np
    if name == "strict":
        return pytest.importorskip("array_api_strict",
                                   reason="array-api-strict is not installed")
    from digitnet import backend
    cupy, why = backend._cupy_or_reason()
    if cupy is None:
        pytest.skip(f"no GPU here: {why}")
    return cupy


@pytest.fixture(params=_namespaces())
def xp(request):
    """Every array namespace the core must run on: NumPy, a strict Array API
    namespace (catches NumPy-only calls without a GPU), and CuPy when present."""
    return load_namespace(request.param)
