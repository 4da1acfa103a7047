#!/usr/bin/env bash
# Remake the pictures in docs/ (the README's and docs/pictures.md's): the
# chapter's [784, 30, 10] network trained at three learning rates (30 epochs,
# seed 0), and the pictures of it.
# Needs the plot and image extras and the data (DIGITNET_DATA); ~1 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
for eta in 0.001 3.0 100; do
    digitnet train --epochs 30 --eta "$eta" --seed 0 --metrics "runs/eta$eta.json" \
        --save "runs/eta$eta.npz" | tail -1
done
digitnet plot curves runs/eta0.001.json runs/eta3.0.json runs/eta100.json \
    --labels "eta = 0.001" "eta = 3.0" "eta = 100" --out docs/curves.png
digitnet plot errors runs/eta3.0.npz --out docs/errors.png
digitnet plot confusion runs/eta3.0.npz --out docs/confusion.png
digitnet plot weights runs/eta3.0.npz --out docs/weights.png
digitnet plot samples --out docs/samples-mnist.png
digitnet plot samples --dataset fashion-mnist --out docs/samples-fashion.png
# The conv recipe's curve and kernels, when its run is there (README, "Beyond
# chapter 1": about 7 minutes on 2 cores; run it with --metrics runs/conv.json
# --save runs/conv.npz first).
if [ -f runs/conv.json ]; then
    digitnet plot curves runs/conv.json --labels "conv recipe, seed 0" --out docs/conv-curve.png
fi
if [ -f runs/conv.npz ]; then
    digitnet plot weights runs/conv.npz --out docs/conv-kernels.png
fi
