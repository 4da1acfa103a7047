"""Which test files run which source files: a pytest plugin that records it.

    DIGITNET_TRACE=FOLDER python -m pytest -p tracing ...

writes FOLDER/trace-WORKER.json, {test file: {"sources": the source files
of digitnet whose functions ran during its tests, "seconds": how long they
took}}, one per pytest-xdist worker.  tests/mutants.py runs the suite so
once and aims each mutant at the test files that run its source file,
quickest first (tests_for), rather than at a list typed by hand, which
missed files (a bug in base.py caught only by test_serve.py
and test_cli_show.py).

A test's setup, call and teardown count, its fixtures included (a session
fixture counts for the test that first asked for it), and threads it
starts (serve's).  Code run in a child process (`python -m digitnet` in
test_runs.py) is not seen: those files run a command in-process too.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src" / "digitnet") + os.sep


class Recorder:
    """The source files of digitnet whose functions run between start() and
    stop(): one cheap call per Python frame, no line events."""

    def __init__(self):
        self.files = set()

    def tracer(self, frame, event, arg):
        self.files.add(frame.f_code.co_filename)
        return None  # no line events for this frame

    def start(self):
        self.files = set()
        self.before = sys.gettrace()  # a debugger's or coverage's, given back after
        threading.settrace(self.tracer)
        sys.settrace(self.tracer)

    def stop(self):
        sys.settrace(self.before)
        threading.settrace(self.before)
        return sorted(Path(f).name for f in self.files if f.startswith(SRC))


class Plugin:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.recorder = Recorder()
        self.found, self.seconds = {}, {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        start = time.perf_counter()
        self.recorder.start()
        try:
            yield
        finally:
            files = self.recorder.stop()
            name = Path(item.location[0]).name
            self.found.setdefault(name, set()).update(files)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def pytest_sessionfinish(self, session):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"trace-{worker}.json").write_text(
            json.dumps({k: {"sources": sorted(v), "seconds": round(self.seconds[k], 3)}
                        for k, v in self.found.items()}, indent=1))


def pytest_configure(config):
    folder = os.environ.get("DIGITNET_TRACE")
    if folder:
        config.pluginmanager.register(Plugin(folder), "digitnet-tracing")


def tests_for(folder):
    """{source file: the test files that ran it}, from every worker's trace,
    the quickest first (a caught mutant stops at its first failing file)."""
    runs, seconds = {}, {}
    for path in sorted(Path(folder).glob("trace-*.json")):
        for test, found in json.loads(path.read_text()).items():
            runs.setdefault(test, set()).update(found["sources"])
            seconds[test] = seconds.get(test, 0.0) + found["seconds"]
    tests_of = {}
    for test in sorted(runs, key=lambda t: (seconds[t], t)):
        for source in runs[test]:
            tests_of.setdefault(source, []).append(test)
    return tests_of
