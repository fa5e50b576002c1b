#!/usr/bin/env bash
# Load and soak test on loopback: starts tandem-cloud and tandem-edge (127.0.0.1 only, fresh CURVE keys),
# then (a) `tandem loadgen` with many concurrent clients, watching both processes' RSS after a warm-up,
# (b) wrk against GET /healthz for the HTTP server's own throughput, and (c) with --soak MINUTES, loadgen
# at moderate load for that long with RSS sampled throughout. JSON reports and logs go to the results
# directory; everything started here is stopped on exit. Exit status: non-zero when a loadgen run failed.
#
#   scripts/load.sh [--bin build/bin] [--results DIR] [--clients 64] [--requests 20] [--wrk-seconds 10]
#                   [--soak MINUTES] [--soak-clients 8] [--skip-load]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin"
shared="${TANDEM_SHARED:-$root/../shared}"
model="${TANDEM_MODEL:-$shared/models/stories260K/stories260K.bin}"
tokenizer="${TANDEM_TOKENIZER:-$shared/models/stories260K/tok512.bin}"
results=""
clients=64 requests=20 warmup=2 max_tokens=32 wrk_seconds=10 wrk_connections=4
soak_minutes=0 soak_clients=8 skip_load=false
# Enough admission for 64 clients: 4 generating, the rest queued rather than refused with 503.
max_concurrent=4 max_queue=64

while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --wrk-seconds) wrk_seconds="$2"; shift 2 ;;
    --soak) soak_minutes="$2"; shift 2 ;;
    --soak-clients) soak_clients="$2"; shift 2 ;;
    --skip-load) skip_load=true; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$results" ] || results="$(dirname "$bin")/load-results/$(date -u +%Y%m%dT%H%M%SZ)"
for file in "$bin/tandem" "$bin/tandem-cloud" "$bin/tandem-edge" "$model" "$tokenizer"; do
  [ -e "$file" ] || { echo "load.sh: $file not found (build first; models from ../shared)" >&2; exit 1; }
done
mkdir -p "$results"
# Edge and tail share this machine: OpenMP threads sleep rather than spin while waiting (operations.md).
export OMP_WAIT_POLICY=passive

# shellcheck source=scripts/services.sh
source "$(dirname "$0")/services.sh"
trap 'exit 130' INT TERM

for name in cloud edge; do "$bin/tandem" keygen --out "$results/$name" --force >/dev/null; done
cp "$results/edge.pub" "$results/clients.txt"

"$bin/tandem-cloud" --model "$model" --tokenizer "$tokenizer" --bind tcp://127.0.0.1:0 --http 127.0.0.1:0 \
  --server-key "$results/cloud.key" --allow-clients "$results/clients.txt" 2>"$results/cloud.log" &
cloud_pid=$!
pids+=("$cloud_pid")
endpoint="$(serving_line "$results/cloud.log" "$cloud_pid" | sed -n 's/.* endpoint=\([^ ]*\).*/\1/p')"

"$bin/tandem-edge" --model "$model" --tokenizer "$tokenizer" --cloud "$endpoint" \
  --cloud-key "$results/cloud.pub" --client-key "$results/edge.key" --listen 127.0.0.1:0 --split 2 \
  --max-concurrent "$max_concurrent" --max-queue "$max_queue" 2>"$results/edge.log" &
edge_pid=$!
pids+=("$edge_pid")
address="$(serving_line "$results/edge.log" "$edge_pid" | sed -n 's/.* listen=\([^ ]*\).*/\1/p')"
api="http://$address"
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$api/readyz")" = 200 ] && break
  sleep 0.1
done
echo "== tandem-cloud (pid $cloud_pid) on $endpoint, tandem-edge (pid $edge_pid) on $api:"
echo "   split 2, --max-concurrent $max_concurrent --max-queue $max_queue; results in $results"

watch=(--watch "edge=$edge_pid" --watch "cloud=$cloud_pid")
status=0

if ! $skip_load; then
  echo
  echo "== (a) tandem loadgen: $clients clients x $requests requests (after $warmup warm-up requests each)"
  "$bin/tandem" loadgen --url "$api" --clients "$clients" --requests "$requests" --warmup "$warmup" \
    --max-tokens "$max_tokens" "${watch[@]}" --report "$results/load.json" | tee "$results/load.txt" ||
    status=1

  echo
  echo "== (b) wrk: GET /healthz, $wrk_connections connections, 2 threads, ${wrk_seconds} s"
  wrk -t2 -c"$wrk_connections" -d"${wrk_seconds}s" --latency "$api/healthz" | tee "$results/wrk.txt"
fi

if [ "$soak_minutes" != 0 ]; then
  echo
  echo "== (c) soak: $soak_clients clients for $soak_minutes min, RSS sampled every 10 s"
  "$bin/tandem" loadgen --url "$api" --clients "$soak_clients" --duration "$((soak_minutes * 60))" \
    --warmup "$warmup" --max-tokens "$max_tokens" --sample-s 10 "${watch[@]}" \
    --report "$results/soak.json" | tee "$results/soak.txt" || status=1
fi

echo
echo "== summary ($results)"
for report in "$results"/load.json "$results"/soak.json; do
  [ -f "$report" ] || continue
  jq -r --arg name "$(basename "$report" .json)" '"\($name): \(.requests) requests, ok \(.ok), deliberate 503 \(.deliberate_503.total), errors \(.errors.total); latency p50 \(.latency_ms.total.p50 | floor) ms p99 \(.latency_ms.total.p99 | floor) ms; TTFT p50 \(.latency_ms.ttft.p50 | floor) ms; \(.tokens_per_second | floor) tokens/s; RSS growth " + ([.rss | to_entries[] | "\(.key) \(.value.growth_mb * 10 | round / 10) MB"] | join(", ")) + (if .passed then "; PASS" else "; FAIL" end)' "$report"
done
[ -f "$results/wrk.txt" ] && grep -E "Requests/sec|Latency  " "$results/wrk.txt" | sed 's/^ */wrk: /'
exit "$status"
