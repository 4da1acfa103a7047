"""The tracer that tells tests/mutants.py which test files run which
source files (tests/tracing.py): it sees the code a test runs, in the
test's thread and in threads it starts, and nothing else."""

import json
import sys
import threading

import numpy as np

import tracing
from digitnet import ink, schedules


def test_the_recorder_sees_the_source_files_run_and_no_other():
    recorder = tracing.Recorder()
    recorder.start()
    try:
        schedules.fraction("cosine", 0.2, 3, 10)
        worker = threading.Thread(target=ink.noise, args=(np.zeros((8, 8)),))
        worker.start()
        worker.join()
    finally:
        files = recorder.stop()
    assert files == ["ink.py", "schedules.py"]
    assert sys.gettrace() is recorder.before


def test_tests_for_puts_the_quickest_test_file_first(tmp_path):
    (tmp_path / "trace-gw0.json").write_text(json.dumps({
        "test_slow.py": {"sources": ["a.py", "b.py"], "seconds": 9.0},
        "test_quick.py": {"sources": ["a.py"], "seconds": 0.5}}))
    (tmp_path / "trace-gw1.json").write_text(json.dumps({
        "test_slow.py": {"sources": ["c.py"], "seconds": 1.0},
        "test_mid.py": {"sources": ["a.py", "c.py"], "seconds": 2.0}}))
    assert tracing.tests_for(tmp_path) == {"a.py": ["test_quick.py", "test_mid.py", "test_slow.py"],
                                           "b.py": ["test_slow.py"],
                                           "c.py": ["test_mid.py", "test_slow.py"]}
