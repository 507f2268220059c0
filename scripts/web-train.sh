#!/usr/bin/env bash
# Trains the small model that ships with the web page (web/public/), for use until `cts-seg demo`
# provides runs/demo/cts/model.safetensors: synthetic street scenes, a width-0.25 policy network,
# then a 128-wide, 4-layer Segmenter with CTS (32 of 64 superpatches shared at 256x256). It is the
# demo's recipe at a smaller width and depth so that the two exported graphs stay well under 15 MB.
# Usage: bash scripts/web-train.sh [out-dir]   (default runs/web); then npm run web:model -- runs/web/cts/model.safetensors
# (the shipped files came from runs/web/cts/checkpoints/step-00000300/model.safetensors, the same weights).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/web}
CLI="node dist/src/cli/main.js"
node --input-type=module -e "
import { generateSynthetic } from './dist/src/data/synthetic.js';
await generateSynthetic('$OUT/data', { train: 192, val: 32, height: 256, width: 256, seed: 0 });"
$CLI train-policy --dataset folder --data-root "$OUT/data" --iterations 150 --batch-size 8 --learning-rate 2e-3 \
  --weight-decay 1e-3 --width 0.25 --crop-size 256 --eval-every 150 --log-every 25 --out-dir "$OUT/policy"
$CLI train --dataset folder --data-root "$OUT/data" --backbone custom --model d_model=128,n_layers=4,n_heads=2 \
  --decoder mask_transformer --crop-size 256 --batch-size 8 --iterations 300 --optimizer adamw --learning-rate 1e-3 \
  --min-lr 1e-5 --weight-decay 0.01 --warmup-iter 30 --drop-path 0 --log-every 25 --checkpoint-every 300 \
  --policy-method policy_net --num-tokens-shared 32 --policynet-ckpt "$OUT/policy/policy_best.safetensors" --out-dir "$OUT/cts"
