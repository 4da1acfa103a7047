#!/usr/bin/env bash
# The README's recipe table and picture: the record recipe for seeds 0-2 and
# their ensemble, then seed 0 of the speed recipe and its PyTorch peer, and
# of the chapter-1, dense and conv recipes, with --metrics (about 90 minutes
# on 2 cores; run it alone), then the picture from these.  SEEDS="0" runs
# the record for seed 0 only: the picture alone, in about 40 minutes.
#   DIGITNET_DATA=../shared/data bash benchmarks/recipes.sh
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
run() {  # name, then the command after `digitnet`
    local name=$1; shift
    /usr/bin/time -f "%e s wall, %M KB peak" -o "runs/$name.wall" "$@" > "runs/$name.log" 2>&1
    echo "$name: $(grep 'best validation' "runs/$name.log") $(cat "runs/$name.wall")"
}
for s in ${SEEDS:-0 1 2}; do
    run record-s$s digitnet train --layers conv:32x3x3,bn,conv:32x3x3,bn,pool:2,conv:64x3x3,bn,conv:64x3x3,bn,pool:2,fc:256,bn,softmax:10 \
        --activation relu --init scaled --batch-size 64 --eta 0.2 --momentum 0.9 --nesterov \
        --lmbda 5 --schedule one-cycle --warmup 0.2 --label-smoothing 0.1 --augment \
        --augment-strength 0.4 --test-at-end --epochs 20 --seed $s --save runs/record-s$s.npz \
        --metrics runs/record-s$s.json
done
[ "${SEEDS:-0 1 2}" = "0 1 2" ] && digitnet evaluate runs/record-s0.npz runs/record-s1.npz runs/record-s2.npz
run speed-s0 digitnet train --layers conv:16x5x5,bn,pool:2,conv:32x5x5,bn,pool:2,fc:128,bn,softmax:10 \
    --activation relu --init scaled --batch-size 64 --eta 0.2 --momentum 0.9 --nesterov \
    --lmbda 25 --schedule one-cycle --warmup 0.2 --label-smoothing 0.1 --expand \
    --epochs 1 --seed 0 --save runs/speed-s0.npz --metrics runs/speed-s0.json
(cd benchmarks && python time_to_accuracy.py speed-bn --torch --peers-only --seed 0 \
    --curve ../runs/torch-speed-s0.json | tail -2)
run chapter1 digitnet train --seed 0 --metrics runs/chapter1.json
run dense digitnet train --layers fc:300,softmax:10 --activation relu --init scaled --eta 0.05 \
    --momentum 0.9 --batch-size 20 --lmbda 5 --dropout 0.3 --epochs 40 --patience 3 \
    --eta-decay 16 --seed 0 --metrics runs/dense.json
run conv digitnet train --layers conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10 \
    --activation relu --init scaled --eta 0.01 --momentum 0.9 --batch-size 20 --lmbda 5 \
    --dropout 0.5 --expand --epochs 12 --patience 1 --eta-decay 32 --seed 0 --metrics runs/conv.json
digitnet plot time runs/chapter1.json runs/dense.json runs/conv.json runs/speed-s0.json \
    runs/torch-speed-s0.json runs/record-s0.json --target 99.5 --out docs/time-to-accuracy.png \
    --labels "chapter 1" "dense recipe" "conv recipe" "speed recipe" "speed recipe in PyTorch" \
    "record recipe"
