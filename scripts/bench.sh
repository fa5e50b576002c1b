#!/usr/bin/env bash
# Benchmarks, each with its baseline measured in the same run (medians over repeats):
#  1. the engine on the stories110M shape (random weights, made once), 2 threads: float32, int8 blocks,
#     int8 blocks + head;
#  2. the split on loopback: tandem-cloud (CURVE on) serving blocks [1, L) to `tandem bench --cloud`,
#     against the all-local run, on the tiny and stories110M shapes.
set -euo pipefail
build="$1"
bin="$build/bin"
model110="$build/stories110M-random.bin"
tiny="$build/tiny-random.bin"
[ -f "$model110" ] || "$bin/tandem" make-model --shape stories110M --seed 1 --out "$model110" >/dev/null
[ -f "$tiny" ] || "$bin/tandem" make-model --shape tiny --seed 1 --out "$tiny" >/dev/null

for config in "" "--int8-blocks 0:12" "--int8-blocks 0:12 --int8-head"; do
  echo "== tandem bench ${config:-(float32)}"
  # shellcheck disable=SC2086
  "$bin/tandem" bench --model "$model110" --threads 2 --repeat 5 --prompt-tokens 128 --gen-tokens 128 $config | tail -3
done

# Edge and tail share this machine's cores here: OpenMP threads that spin while waiting would take the
# other process's cores, so both sides (and the baseline) sleep instead (see docs/operations.md).
export OMP_WAIT_POLICY=passive
keys="$(mktemp -d)"
tail_pid=""
cleanup() {
  [ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null && wait "$tail_pid" 2>/dev/null
  rm -rf "$keys"
}
trap cleanup EXIT
"$bin/tandem" keygen --out "$keys/cloud" >/dev/null
"$bin/tandem" keygen --out "$keys/edge" >/dev/null
cp "$keys/edge.pub" "$keys/clients.txt"

split_bench() {  # model threads repeat prompt_tokens gen_tokens codec
  local model="$1" threads="$2" repeat="$3" prompt="$4" gen="$5" codec="$6"
  "$bin/tandem-cloud" --model "$model" --threads "$threads" --bind tcp://127.0.0.1:0 --http "" \
    --server-key "$keys/cloud.key" --allow-clients "$keys/clients.txt" 2>"$keys/tail.log" &
  tail_pid=$!
  local endpoint=""
  for _ in $(seq 100); do
    endpoint="$(sed -n 's/.*msg=serving endpoint=\([^ ]*\).*/\1/p' "$keys/tail.log")"
    [ -n "$endpoint" ] && break
    sleep 0.1
  done
  [ -n "$endpoint" ] || { cat "$keys/tail.log" >&2; exit 1; }
  echo "== split on loopback: $(basename "$model"), $threads thread(s) each side, codec $codec"
  "$bin/tandem" bench --model "$model" --threads "$threads" --repeat "$repeat" --prompt-tokens "$prompt" \
    --gen-tokens "$gen" --split 1 --codec "$codec" --cloud "$endpoint" --cloud-key "$keys/cloud.pub" \
    --client-key "$keys/edge.key" | grep -E "^(split at|payload per decode step)"
  kill "$tail_pid"
  wait "$tail_pid" || true
  tail_pid=""
}
split_bench "$tiny" 1 9 32 128 fp32
split_bench "$model110" 2 9 64 64 fp32
split_bench "$model110" 2 5 64 64 int8+zstd
