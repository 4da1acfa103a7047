"""Issue 28's measuring scripts (profile_step.py, conv_backward.py), run
once with --quick so that they cannot rot.

They are scripts whose output is a table to paste, not timed tests; each
runs here in a subprocess, as a reader runs it.  The `benchmark` fixture
puts these with the other benchmarks: the normal test run skips them
(--benchmark-skip) and CI's smoke run of benchmarks/ (--benchmark-disable)
runs each once.  Each script checks its own re-issued operations against
the library's (profile_step: the traced and rebuilt steps give the real
step's numbers; conv_backward: today's dC/dx is Conv.backward's) and fails
if they drift apart.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_script(name, env=None):
    return subprocess.run([sys.executable, str(HERE / name), "--quick"], cwd=HERE,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def test_profile_step_quick(benchmark, mnist_dir):
    """Every network is profiled, and the summary table names what bounds each."""
    done = benchmark.pedantic(run_script, args=("profile_step.py",
                                                {"DIGITNET_DATA": str(mnist_dir)}))
    assert done.returncode == 0, done.stderr
    summary = done.stdout.split("### Summary")[1]
    for net in ("chapter1", "dense", "conv-20", "conv-64", "speed-20", "speed-64"):
        assert f"| {net} |" in summary
    assert "GEMM (1024^3)" in done.stdout and "memory bandwidth" in done.stdout


def test_conv_backward_quick(benchmark):
    """Both tables are printed, and every method agrees with today's dx in
    float64 (the study's premise: they compute the same thing)."""
    done = benchmark.pedantic(run_script, args=("conv_backward.py",))
    assert done.returncode == 0, done.stderr
    assert "### dC/dx" in done.stdout and "### One conv layer" in done.stdout
    f64 = [cell for line in done.stdout.splitlines() if line.startswith("| ")
           for cell in [line.split("|")[-2].strip()] if cell[:1].isdigit()]
    assert len(f64) == 9 * 4 + 3 * 8  # every dx method and layout, per layer and m
    assert all(float(diff) < 1e-10 for diff in f64)
