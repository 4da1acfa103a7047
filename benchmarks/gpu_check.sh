#!/usr/bin/env bash
# The GPU check: everything a machine with a CUDA GPU can tell us, in one
# unattended run of under 10 minutes, with no network.
#
#   benchmarks/gpu_check.sh [DIR]
#
# DIR (else $OUT, else ./gpu-check-<date>) receives every figure: a log per
# step, info.json, the benchmark JSONs, the training metrics and summary.txt.
# It needs a Python (default `python`; set PYTHON) with CuPy, pytest and
# pytest-benchmark already installed, and real MNIST in $DIGITNET_DATA
# (default ../shared/data beside the checkout, else ./data).
#
# Steps: digitnet from this checkout, `digitnet info`, the no-GPU checks of
# the CuPy kernels (tests/test_gpu_codegen.py, tests/test_cupy_api.py: they
# need NVRTC, which CuPy's [ctk] extra brings, and g++; they skip without
# them), the CuPy probe; then, only where CuPy is usable: the gpu-marked
# tests, a 30-epoch chapter-1 run, one epoch of the conv recipe, the
# benchmarks' CuPy rows and, for comparison, the NumPy rows of the same
# groups.  Each step has a time limit and all of them together stay under
# BUDGET seconds; a failed step does not stop the others, but the exit
# status is 1 if any failed.  On a machine without a usable GPU it says so
# in one line and exits 0 after the no-GPU checks.
#
# What a first run on a device must confirm (docs/gpu.md, "What only a
# device can confirm"): the probe finds the device and `info` NVRTC and the
# CUDA headers; every fused kernel compiles and launches there (gpu-tests:
# the fast path against the plain engine on CuPy, every network kind, within
# the CPU's tolerance); CuPy's reductions, ufuncs and cuBLAS behind the plain
# engine, conv layers, augmentation and serving (gpu-tests); the chapter-1
# run's accuracy matches the CPU's to about a tenth of a percent; and the
# speed (bench-cupy against bench-numpy; a step at m = 10 should be launch-
# bound, ~12 launches).
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${OUT:-gpu-check-$(date +%Y%m%d-%H%M%S)}}
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd) || exit 1
PYTHON=${PYTHON:-python}
BUDGET=${BUDGET:-540}  # seconds for all steps; each may overrun by its 10 s kill grace
# The per-example engine on CuPy launches ~30 tiny kernels per example (a few
# seconds a pass, 16 rows): left out unless asked for with BENCH_K=cupy.
BENCH_K=${BENCH_K:-cupy and not per-example}
if [[ -z ${DIGITNET_DATA:-} ]]; then
    if [[ -d $REPO/../shared/data ]]; then DIGITNET_DATA=$(cd "$REPO/../shared/data" && pwd)
    else DIGITNET_DATA=$REPO/data; fi
fi
export DIGITNET_DATA
cd "$REPO" || exit 1

SUMMARY=$DIR/summary.txt
failed=0
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD 2>/dev/null || commit+=", modified"
else
    commit="not a git checkout"
fi
{
    echo "digitnet GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    echo "checkout  $REPO ($commit)"
    echo "data      $DIGITNET_DATA"
    echo "output    $DIR"
    echo
} > "$SUMMARY"

record() {  # record NAME STATUS [SECONDS]: one line of the summary
    printf '%-12s %-36s %s\n' "$1" "$2" "${3:+${3}s}" >> "$SUMMARY"
    [[ $2 == ok* ]] || failed=1
}

step() {  # step NAME LIMIT COMMAND...: run it, tee'd to DIR/NAME.log, within LIMIT and BUDGET
    local name=$1 limit=$2 start=$SECONDS rc status
    shift 2
    (( limit > BUDGET - SECONDS )) && limit=$(( BUDGET - SECONDS ))
    if (( limit < 20 )); then
        record "$name" "NOT RUN (out of time)"
        return 1
    fi
    echo "== $name (at most ${limit}s): $*"
    # SIGINT first, so pytest still writes its JSON and training its metrics.
    timeout -s INT -k 10 "$limit" "$@" 2>&1 | tee "$DIR/$name.log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status=ok ;;
        124|137) status="FAILED (timed out after ${limit}s)" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    record "$name" "$status" $(( SECONDS - start ))
    return "$rc"
}

finish() {
    echo >> "$SUMMARY"
    if (( failed )); then echo "result: FAILED, see the logs in $DIR" >> "$SUMMARY"
    else echo "result: ok" >> "$SUMMARY"; fi
    echo
    cat "$SUMMARY"
    exit "$failed"
}

# 1. digitnet from this checkout: an offline editable install, or else
#    PYTHONPATH (pure Python, and every command runs as `python -m digitnet`).
from_checkout() {
    "$PYTHON" -c 'import importlib.util as u, sys
sys.exit(not u.find_spec("digitnet").origin.startswith(sys.argv[1]))' "$REPO/src/" 2>/dev/null
}
if from_checkout; then
    record install "ok (already from this checkout)"
elif timeout 120 "$PYTHON" -m pip install -q --no-deps --no-index --no-build-isolation -e . \
        > "$DIR/install.log" 2>&1 && from_checkout; then
    record install ok
else
    export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
    record install "ok (PYTHONPATH=src; see install.log)"
fi

# 2. What this machine is; JSON too, for the record.
step info 60 "$PYTHON" -m digitnet info
timeout 30 "$PYTHON" -m digitnet info --json > "$DIR/info.json" 2>&1

# 2b. The checks CI runs without a GPU, on this machine's CuPy and NVRTC
#     (~30 s on CI's two cores; NVRTC compiles in parallel on more).
step gpucheck 90 "$PYTHON" -m pytest -q -rs -p no:cacheprovider \
    tests/test_gpu_codegen.py tests/test_cupy_api.py

# 3. Can CuPy compute here?  The same probe, run once, that `--device auto` uses.
if timeout 60 "$PYTHON" -c 'import sys
from digitnet import backend
cupy, why = backend.cupy_or_reason()
print(backend.describe(cupy) if cupy is not None else why)
sys.exit(cupy is None)' > "$DIR/probe.log" 2>&1; then
    record probe "ok ($(tail -n 1 "$DIR/probe.log"))"
else
    echo "no usable GPU here ($(tail -n 1 "$DIR/probe.log")): skipping the GPU steps" \
        | tee -a "$SUMMARY"
    finish
fi

# 4. The GPU steps, on real MNIST: without it they would fail or skip one by one.
if [[ ! -f $DIGITNET_DATA/mnist/train-images-idx3-ubyte.gz ]]; then
    record data "FAILED (no MNIST in $DIGITNET_DATA/mnist)"
    finish
fi
step gpu-tests 150 "$PYTHON" -m pytest -m gpu -rs -q -p no:cacheprovider tests
step ch1-gpu 120 "$PYTHON" -m digitnet train --device gpu --epochs 30 --seed 0 \
    --metrics "$DIR/ch1-gpu.json"
step conv-gpu 150 "$PYTHON" -m digitnet train --device gpu \
    --layers conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10 --activation relu \
    --init scaled --eta 0.01 --momentum 0.9 --batch-size 20 --lmbda 5 --dropout 0.5 \
    --expand --epochs 1 --seed 0 --metrics "$DIR/conv-gpu.json"
step bench-cupy 180 "$PYTHON" -m pytest benchmarks --benchmark-only -p no:cacheprovider \
    -k "$BENCH_K" --benchmark-warmup=on --benchmark-json="$DIR/bench-cupy.json"
step bench-numpy 90 "$PYTHON" -m pytest benchmarks --benchmark-only -p no:cacheprovider \
    -k "${BENCH_K//cupy/numpy}" --benchmark-warmup=on --benchmark-json="$DIR/bench-numpy.json"
finish
