#!/usr/bin/env bash
# Reruns every benchmark quoted in docs/BENCHMARKS.md and regenerates docs/benchmarks.svg.
# Results go to bench/results/*.json (one `cts-seg bench --json` object each).
#
#   bench/run-docs.sh            # all of it (~40 min on a 2-core machine)
#   PRIO=1 bench/run-docs.sh     # on a shared machine: own scheduler autogroup at nice -20
#
# PRIO=1 exists because Linux autogroups make plain `nice` useless against other sessions' jobs;
# it needs root (or CAP_SYS_NICE). PyTorch runs as a child of the benchmark and inherits it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
CLI=(node dist/src/cli/main.js bench --batch 8)

run() { # run NAME ARGS...: one benchmark, JSON to $out/NAME.json, the table to stderr
  local name=$1
  shift
  local cmd=("${CLI[@]}" "$@")
  echo "== $name: ${cmd[*]}" >&2
  if [[ "${PRIO:-0}" == 1 ]]; then
    setsid -w bash -c 'echo -20 > /proc/self/autogroup; exec nice -n -20 "$@"' _ "${cmd[@]}" --json >"$out/$name.json.tmp"
  else
    "${cmd[@]}" --json >"$out/$name.json.tmp"
  fi
  mv "$out/$name.json.tmp" "$out/$name.json"
}

# the whole batch in one piece (the tables measured before micro-batching)
run sweep-vit-ti-512 --backbone vit-ti --sweep --compare-pytorch --warmup 2 --iters 5 --micro-batch 8
run sweep-vit-s-512 --backbone vit-s --sweep --compare-pytorch --warmup 2 --iters 5 --micro-batch 8
run sweep-vit-b-512 --backbone vit-b --sweep --compare-pytorch --warmup 1 --iters 3 --micro-batch 8
run sweep-vit-s-768 --backbone vit-s --image-size 768 --classes 19 --sweep --compare-pytorch --warmup 1 --iters 3 --micro-batch 8
run sweep-vit-s-512-policy-0.5 --backbone vit-s --sweep --policy-width 0.5 --warmup 2 --iters 5 --micro-batch 8
run sweep-vit-s-512-fetch --backbone vit-s --sweep --fetch-logits --warmup 2 --iters 5 --micro-batch 8
# micro-batches of 2 (the default since session 3) against the whole batch in one piece
run sweep-vit-s-512-mb2 --backbone vit-s --sweep --warmup 2 --iters 5
run sweep-vit-s-768-mb2 --backbone vit-s --image-size 768 --classes 19 --sweep --warmup 1 --iters 3
run vit-s-512-s0-pytorch-mb2 --backbone vit-s --num-shared 0 --compare-pytorch --warmup 2 --iters 8
run vit-s-512-s103-pytorch-mb2 --backbone vit-s --num-shared 103 --compare-pytorch --warmup 2 --iters 8
# against PyTorch with a tuned allocator (docs/BENCHMARKS.md, "PyTorch's memory allocator")
run vit-s-512-s0-pytorch-tuned-malloc --backbone vit-s --num-shared 0 --compare-pytorch --pytorch-malloc tuned --warmup 2 --iters 8
run vit-s-512-s103-pytorch-tuned-malloc --backbone vit-s --num-shared 103 --compare-pytorch --pytorch-malloc tuned --warmup 2 --iters 8
# the training step against PyTorch's, steps alternated
for i in 1 2; do
  node dist/src/cli/main.js bench-train --backbone vit-s --image-size 512 --classes 150 --batch 2 --warmup 2 --steps 10 \
    --threads 2 --no-stochastic --compare-pytorch --json >"$out/train-step-vit-s-512-$i.json.tmp"
  mv "$out/train-step-vit-s-512-$i.json.tmp" "$out/train-step-vit-s-512-$i.json"
done
node dist/src/cli/main.js bench-train --backbone vit-s --image-size 512 --classes 150 --batch 2 --warmup 2 --steps 10 \
  --threads 2 --no-stochastic --compare-pytorch --pytorch-malloc tuned --json >"$out/train-step-vit-s-512-tuned-malloc.json.tmp"
mv "$out/train-step-vit-s-512-tuned-malloc.json.tmp" "$out/train-step-vit-s-512-tuned-malloc.json"
node bench/plot-sweep.mjs docs/benchmarks.svg "$out"/sweep-vit-ti-512.json "$out"/sweep-vit-s-512.json \
  "$out"/sweep-vit-b-512.json "$out"/sweep-vit-s-768.json "$out"/sweep-vit-s-512-policy-0.5.json
