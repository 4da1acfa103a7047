"""The real-data guard, for tests/ and benchmarks/ alike.

Any test that uses the real files (fixtures named below) is marked
`realdata`.  With DIGITNET_REQUIRE_REAL_DATA=1 (set by .ci/run) the session
fails when such a test was skipped or none ran, so CI can never pass
without having trained on the real MNIST.

The browser guard does the same for tests marked `browser` (the page of
`digitnet serve` in a real Chromium): with DIGITNET_REQUIRE_BROWSER=1 (set
by .ci/run) a skipped browser test fails the session, so CI cannot pass
without having drawn on the page.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from digitnet import data

SHARED = Path(__file__).resolve().parent.parent / "shared" / "data"
NO_DATA = "real MNIST not found"

REAL_DATA_FIXTURES = {"mnist", "mnist_dir", "mnist_slice", "fashion_dir"}
# Real-data tests that may skip for another reason, GPU rows on a machine
# without one and benchmarks under --benchmark-skip, are marked `may_skip`.
# Every other skip of a real-data test counts as missing data, whatever its
# message says.  The marks travel with each test's report, so the counts
# below are right under pytest-xdist too, where the workers collect and
# the controller counts.


def pytest_configure(config):
    # No test may read or fill the user's own cache (~/.cache/digitnet):
    # a test that expects no data must not find it there, nor download into it.
    if "DIGITNET_TEST_CACHE" not in os.environ:  # the controller, or a run without xdist
        os.environ["DIGITNET_TEST_CACHE"] = tempfile.mkdtemp(prefix="digitnet-test-cache-")
        os.environ["DIGITNET_TEST_USER_CACHE_HOME"] = _USER_CACHE_HOME
        config._digitnet_cache = os.environ["DIGITNET_TEST_CACHE"]
    os.environ["XDG_CACHE_HOME"] = os.environ["DIGITNET_TEST_CACHE"]
    config.addinivalue_line("markers", "browser: drives the serve page in headless Chromium; "
                                       "CI (DIGITNET_REQUIRE_BROWSER=1) fails if these are skipped")
    config.addinivalue_line("markers", "may_skip: a real-data test that may skip for a reason "
                                       "other than missing data (no GPU, --benchmark-skip)")


def pytest_unconfigure(config):
    made = getattr(config, "_digitnet_cache", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
        for name in ("DIGITNET_TEST_CACHE", "DIGITNET_TEST_USER_CACHE_HOME"):
            os.environ.pop(name, None)


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if REAL_DATA_FIXTURES & names:
            item.add_marker(pytest.mark.realdata)
            if "benchmark" in names or item.get_closest_marker("gpu"):
                item.add_marker(pytest.mark.may_skip)


def real_data_dir():
    """The folder with mnist/ in it: where the commands look (data.place:
    $DIGITNET_DATA, the checkout's data/, the per-user cache), else
    ../shared/data beside the checkout.  Read once, before the session
    points the user cache elsewhere (pytest_configure)."""
    return _REAL_DATA


# The user's cache home as it was before pytest_configure moved it (an
# xdist worker, or a pytest run by a test, inherits the moved one).
_USER_CACHE_HOME = os.environ.get("DIGITNET_TEST_USER_CACHE_HOME",
                                  os.environ.get("XDG_CACHE_HOME", ""))


def _find_real_data():
    moved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = _USER_CACHE_HOME
    if not _USER_CACHE_HOME:
        del os.environ["XDG_CACHE_HOME"]
    try:
        found = data.place("mnist").path
    finally:
        if moved is not None:
            os.environ["XDG_CACHE_HOME"] = moved
    for folder in (found, SHARED / "mnist"):
        if data.has_files(folder):
            return folder.parent
    return None


_REAL_DATA = _find_real_data()


@pytest.fixture(scope="session")
def mnist_dir():
    directory = real_data_dir()
    if directory is None:
        pytest.skip(f"{NO_DATA}: set DIGITNET_DATA to a folder with mnist/ in it")
    return directory


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """(training, validation, test) of the real MNIST, loaded once per session."""
    return data.load_dataset("mnist", mnist_dir, download_missing=False)


_realdata = {"passed": 0, "skipped": 0}
_browser = {"passed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if "realdata" in report.keywords and (report.when == "call" or report.skipped):
        if report.skipped and "may_skip" not in report.keywords:
            _realdata["skipped"] += 1
        elif report.passed:
            _realdata["passed"] += 1
    if "browser" in report.keywords and (report.when == "call" or report.skipped):
        if report.skipped:
            _browser["skipped"] += 1
        elif report.passed:
            _browser["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus != 0:
        return
    if os.environ.get("DIGITNET_REQUIRE_BROWSER") == "1" and _browser["skipped"]:
        # Only skips count: runs without the browser tests (benchmarks, -k) pass.
        print(f"\nbrowser tests: {_browser['passed']} passed, {_browser['skipped']} "
              "skipped; DIGITNET_REQUIRE_BROWSER=1 requires none skipped")
        session.exitstatus = 1
    if os.environ.get("DIGITNET_REQUIRE_REAL_DATA") != "1":
        return
    if _realdata["skipped"] or not _realdata["passed"]:
        print(f"\nreal-data tests: {_realdata['passed']} passed, {_realdata['skipped']} "
              "skipped; DIGITNET_REQUIRE_REAL_DATA=1 requires none skipped")
        session.exitstatus = 1
