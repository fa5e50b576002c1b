#!/usr/bin/env bash
# The adaptive split on an emulated network (issue 5's evaluation), about 6 minutes:
#   a tail (2 threads) and an edge (the weaker device: 1 thread and --emulate-slowdown 3; --split auto)
#   on this machine, with
#   `tandem bench-split`'s link emulator between them playing
#   100 Mbit/s 5 ms -> 10 Mbit/s 40 ms -> 1 Mbit/s 150 ms -> link down -> 100 Mbit/s 5 ms,
#   while it sends completions to the edge: adaptive ones, and every static split (the oracle: each cut with
#   fp32, cut 1 with int8, all-local).
# Writes DIR/requests.csv, DIR/estimates.csv, DIR/summary.json and DIR/adaptive.png (scripts/plot-adaptive.sh,
# gnuplot), and prints the per-phase table.
#
# usage: scripts/adaptive-eval.sh BUILD_DIR [OUT_DIR]   (environment: SCHEDULE, STATIC, MODEL_SHAPE)
set -euo pipefail
build="$1"
out="${2:-$build/adaptive-eval}"
bin="$build/bin"
shared="${TANDEM_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
tokenizer="$shared/models/stories260K/tok512.bin"
schedule="${SCHEDULE:-60s:100mbit:5ms,60s:10mbit:40ms,80s:1mbit:150ms,20s:down,50s:100mbit:5ms}"
static="${STATIC:-all}"
shape="${MODEL_SHAPE:-stories110M}"
# The edge is the weaker device: one thread, and every computation stretched this many times (emulated).
slowdown="${EDGE_SLOWDOWN:-3}"
# The stories110M shape with the 512-token vocabulary of the shared tokenizer (random weights).
model="$build/$shape-v512-random.bin"
[ -f "$model" ] || "$bin/tandem" make-model --shape "$shape" --vocab 512 --seed 1 --out "$model" >/dev/null
command -v gnuplot >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null; } || true

tail_port="${TAIL_PORT:-47311}"
link_port="${LINK_PORT:-47312}"
edge_port="${EDGE_PORT:-47313}"
mkdir -p "$out"
# Both processes share this machine's two cores: OpenMP threads must sleep, not spin, while they wait.
export OMP_WAIT_POLICY=passive
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/services.sh"
start_eval_tail "$bin" "$model" "$out" "$tail_port"
"$bin/tandem-edge" --model "$model" --tokenizer "$tokenizer" --threads 1 --emulate-slowdown "$slowdown" --split auto \
  --cloud "tcp://127.0.0.1:$link_port" --cloud-key "$out/cloud.pub" --client-key "$out/edge.key" \
  --listen "127.0.0.1:$edge_port" --allowed-codecs fp32,int8 --timeout-ms 3000 --replan-tokens 4 \
  2>"$out/edge.log" &
pids+=($!)

"$bin/tandem" bench-split --edge "127.0.0.1:$edge_port" --link-listen "127.0.0.1:$link_port" \
  --link-target "127.0.0.1:$tail_port" --schedule "$schedule" --static "$static" --out "$out" \
  | tee "$out/summary.md"

"$(dirname "$0")/plot-adaptive.sh" "$out" "$schedule" "$slowdown"
