#!/usr/bin/env bash
# The adaptive split on an emulated network (issue 5's evaluation), about 5 minutes:
#   a tail (2 threads) and an edge (the weaker device: 1 thread and --emulate-slowdown 3; --split auto)
#   on this machine, with
#   `tandem bench-split`'s link emulator between them playing
#   100 Mbit/s 5 ms -> 10 Mbit/s 40 ms -> 1 Mbit/s 150 ms -> link down -> 100 Mbit/s 5 ms,
#   while it sends completions to the edge: adaptive ones, and each static split of --static (the oracle).
# Writes DIR/requests.csv, DIR/estimates.csv, DIR/summary.json and DIR/adaptive.png (gnuplot), and prints
# the per-phase table.
#
# usage: scripts/adaptive-eval.sh BUILD_DIR [OUT_DIR]   (environment: SCHEDULE, STATIC, MODEL_SHAPE)
set -euo pipefail
build="$1"
out="${2:-$build/adaptive-eval}"
bin="$build/bin"
shared="${TANDEM_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
tokenizer="$shared/models/stories260K/tok512.bin"
schedule="${SCHEDULE:-40s:100mbit:5ms,40s:10mbit:40ms,50s:1mbit:150ms,20s:down,30s:100mbit:5ms}"
static="${STATIC:-1,3,6,9,1:int8,local}"
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
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
"$bin/tandem" keygen --out "$out/cloud" >/dev/null
"$bin/tandem" keygen --out "$out/edge" >/dev/null
cp "$out/edge.pub" "$out/clients.txt"

"$bin/tandem-cloud" --model "$model" --threads 2 --bind "tcp://127.0.0.1:$tail_port" --http "" \
  --server-key "$out/cloud.key" --allow-clients "$out/clients.txt" 2>"$out/tail.log" &
pids+=($!)
"$bin/tandem-edge" --model "$model" --tokenizer "$tokenizer" --threads 1 --emulate-slowdown "$slowdown" --split auto \
  --cloud "tcp://127.0.0.1:$link_port" --cloud-key "$out/cloud.pub" --client-key "$out/edge.key" \
  --listen "127.0.0.1:$edge_port" --allowed-codecs fp32,int8 --timeout-ms 3000 --replan-tokens 4 \
  2>"$out/edge.log" &
pids+=($!)

"$bin/tandem" bench-split --edge "127.0.0.1:$edge_port" --link-listen "127.0.0.1:$link_port" \
  --link-target "127.0.0.1:$tail_port" --schedule "$schedule" --static "$static" --out "$out" \
  | tee "$out/summary.md"

if command -v gnuplot >/dev/null; then
  # Top: the cut each request ran at (adaptive in colour, the layers count = all-local). Bottom: the
  # request latency, adaptive against the static splits.
  gnuplot <<EOF
set terminal pngcairo size 1200,800 noenhanced
set output "$out/adaptive.png"
set datafile separator ","
set multiplot layout 2,1 title "Tandem adaptive split on an emulated link: $schedule"
set ylabel "cut k (adaptive, at its first step)"
set xlabel "time (s)"
set key outside right
plot "$out/requests.csv" using (strcol(5) eq "adaptive" ? \$1 : 1/0):(\$8) with points pt 7 ps 0.8 title "adaptive: final cut", \
     "$out/estimates.csv" using 1:(\$3/10) with lines title "RTT estimate / 10 (ms)", \
     "$out/estimates.csv" using 1:(\$2*2) with steps title "link up x 2"
set ylabel "request latency (ms)"
set logscale y
plot "$out/requests.csv" using (strcol(5) eq "adaptive" ? \$1 : 1/0):(\$6 == 200 ? \$14 : 1/0) with points pt 7 ps 0.8 title "adaptive", \
     "$out/requests.csv" using (strcol(5) ne "adaptive" ? \$1 : 1/0):(\$6 == 200 ? \$14 : 1/0) with points pt 1 ps 0.8 title "static splits"
unset multiplot
EOF
  echo "plot: $out/adaptive.png"
fi
