#!/usr/bin/env bash
# Engine benchmark on the stories110M shape with random weights (made once), 2 threads, 5 repeats:
# float32, int8 blocks, int8 blocks + head. Prints each configuration's summary and JSON line.
set -euo pipefail
build="$1"
model="$build/stories110M-random.bin"
[ -f "$model" ] || "$build/bin/tandem" make-model --shape stories110M --seed 1 --out "$model"
for config in "" "--int8-blocks 0:12" "--int8-blocks 0:12 --int8-head"; do
  echo "== tandem bench ${config:-(float32)}"
  # shellcheck disable=SC2086
  "$build/bin/tandem" bench --model "$model" --threads 2 --repeat 5 --prompt-tokens 128 --gen-tokens 128 $config | tail -3
done
