"""Issue 28's measuring scripts (profile_step.py, conv_backward.py,
engines_ratio.py), run once with --quick so that they cannot rot, and epochs_table.py on a real
run's metrics file.

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
    for net in ("chapter1", "dense", "dense-levers", "conv-20", "conv-64", "speed-20",
                "speed-64", "speed-bn-64"):
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


def test_engines_ratio_quick(benchmark, mnist_dir):
    """Both dtypes get a line with the batched engine's speed and the
    median and range of the per-round ratios, in that order."""
    import re
    done = benchmark.pedantic(run_script, args=("engines_ratio.py",
                                                {"DIGITNET_DATA": str(mnist_dir)}))
    assert done.returncode == 0, done.stderr
    for dtype in ("float32", "float64"):
        found = re.search(rf"{dtype}: batched ([\d,]+) examples/s; batched / per-example "
                          r"median ([\d.]+)x \[([\d.]+)-([\d.]+)\]", done.stdout)
        assert found, done.stdout
        low, median, high = map(float, found.groups()[1:])
        assert 0 < low <= median <= high


def test_epochs_table_of_a_real_run(benchmark, mnist, tmp_path):
    """One row per epoch from a run's metrics file, the best validation epoch
    marked, the seconds summed; --every keeps the first, last and best rows."""
    import json

    from digitnet import Network, training
    net = Network([784, 10, 10], seed=1, device="cpu")
    run = training.Run(net, eta=3.0, mini_batch_size=10, epochs=4)
    training.fit(run, mnist[0][:1000], validation_data=mnist[1][:500], test_data=mnist[2][:500])
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"config": {}, "epochs": run.history}))
    done = benchmark.pedantic(subprocess.run, args=(
        [sys.executable, str(HERE / "epochs_table.py"), str(path)],),
        kwargs=dict(capture_output=True, text=True))
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 5  # four epochs and the sum
    valid = [r["validation_accuracy"] for r in run.history]
    best = valid.index(max(valid))
    for i, (row, record) in enumerate(zip(rows, run.history)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == (f"**{i + 1}**" if i == best else str(i + 1))
        assert cells[4] == f"{100 * record['validation_accuracy']:.2f}%"
        assert cells[5] == f"{100 * record['test_accuracy']:.2f}%"
    total = float([c.strip() for c in rows[-1].strip("|").split("|")][2])
    assert abs(total - sum(r["seconds"] for r in run.history)) < 0.1
    every = subprocess.run([sys.executable, str(HERE / "epochs_table.py"), "--every", "9",
                            str(path)], capture_output=True, text=True)
    kept = [line.split("|")[1].strip() for line in every.stdout.splitlines()
            if line.startswith("| ")][2:-1]
    label = lambda i: f"**{i + 1}**" if i == best else str(i + 1)  # noqa: E731
    assert kept == [label(i) for i in sorted({0, 3, best})]
    bad = subprocess.run([sys.executable, str(HERE / "epochs_table.py"), str(tmp_path / "no")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "file not found" in bad.stderr
