"""Shared fixtures: array namespaces, real MNIST, and the real-data guard.

With DIGITNET_REQUIRE_REAL_DATA=1 (set by .ci/run) the session fails when
any test marked `realdata` was skipped or none ran, so a CI run can never
pass without having trained on the real files.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from digitnet import data

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


def real_data_dir():
    """$DIGITNET_DATA, else ../shared/data beside the checkout, if it has MNIST."""
    for candidate in (os.environ.get("DIGITNET_DATA"), SHARED):
        if candidate and all((Path(candidate) / "mnist" / f).is_file()
                             for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_dir():
    directory = real_data_dir()
    if directory is None:
        pytest.skip("real MNIST not found: set DIGITNET_DATA to a folder with mnist/ in it")
    return directory


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """(training, validation, test) of the real MNIST, loaded once per session."""
    return data.load_dataset("mnist", mnist_dir, download_missing=False)


_realdata = {"passed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if "realdata" in report.keywords and (report.when == "call" or report.skipped):
        if report.skipped:
            _realdata["skipped"] += 1
        elif report.passed:
            _realdata["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("DIGITNET_REQUIRE_REAL_DATA") != "1" or exitstatus != 0:
        return
    if _realdata["skipped"] or not _realdata["passed"]:
        print(f"\nreal-data tests: {_realdata['passed']} passed, {_realdata['skipped']} "
              "skipped; DIGITNET_REQUIRE_REAL_DATA=1 requires none skipped")
        session.exitstatus = 1


def pytest_collection_modifyitems(config, items):
    """Anything that uses the real files is a real-data test, marked or not."""
    for item in items:
        if {"mnist", "mnist_dir"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)
