#!/usr/bin/env bash
# Issue 20's speedrun measurements, one after another (about 30 minutes on
# 2 cores; run it alone): the speed recipe for seeds 0-2, each followed by
# its PyTorch peer; the lever table (seed 0, one lever out per run); then
# vs_torch.py and, given an older tree, ab_speed.py.
#   DIGITNET_DATA=../shared/data bash benchmarks/speedrun.sh [OLD/src]
# Logs and metrics go to runs/ (ignored by git).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
lscpu | grep -i "model name"
python -c "import numpy; numpy.show_runtime()" 2>/dev/null | grep -E "internal_api|version|architecture"
BASE="--layers conv:16x5x5,pool:2,conv:32x5x5,pool:2,fc:128,softmax:10 --activation relu --init scaled"
RECIPE="$BASE --batch-size 64 --eta 0.1 --momentum 0.9 --nesterov --lmbda 25 --schedule one-cycle --warmup 0.2 --label-smoothing 0.1 --expand --epochs 3"
L="$BASE --batch-size 64 --eta 0.1 --momentum 0.9 --lmbda 25 --seed 0"
run() {  # name, then the command after `digitnet`
    local name=$1; shift
    /usr/bin/time -f "%e" -o "runs/$name.wall" "$@" > "runs/$name.log" 2>&1
    echo "$name: $(grep 'best validation' "runs/$name.log") $(cat "runs/$name.wall") s wall"
}
for s in 0 1 2; do
    run speed-s$s digitnet train $RECIPE --seed $s --save runs/speed-s$s.npz --metrics runs/speed-s$s.json
    (cd benchmarks && python time_to_accuracy.py speed --torch --peers-only --seed $s \
        --curve ../runs/torch-speed-s$s.json | tail -2)
done
run lever-no-nesterov digitnet train $L --schedule one-cycle --warmup 0.2 --label-smoothing 0.1 --expand --epochs 3
run lever-no-smoothing digitnet train $L --nesterov --schedule one-cycle --warmup 0.2 --expand --epochs 3
run lever-no-warmup digitnet train $L --nesterov --schedule one-cycle --label-smoothing 0.1 --expand --epochs 3
run lever-constant-eta digitnet train $L --nesterov --label-smoothing 0.1 --expand --epochs 3
run lever-no-expand digitnet train $L --nesterov --schedule one-cycle --warmup 0.2 --label-smoothing 0.1 --epochs 15
run lever-test-at-end digitnet train $RECIPE --seed 0 --test-at-end
run lever-m20 digitnet train $BASE --batch-size 20 --eta 0.03 --momentum 0.9 --lmbda 25 --seed 0 --nesterov --schedule one-cycle --warmup 0.2 --label-smoothing 0.1 --expand --epochs 3
run lever-no-memory python -c "import sys; from digitnet import backend, cli
backend.keep_freed_memory = lambda xp: False
sys.exit(cli.main(sys.argv[1:]))" train $RECIPE --seed 0
(cd benchmarks && python vs_torch.py dense conv --rounds 7 | tail -8)
if [ $# -ge 1 ]; then (cd benchmarks && python ab_speed.py "$1" ../src 7 | tail -7); fi
