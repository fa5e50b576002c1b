#!/usr/bin/env bash
# Speculative decoding on an emulated link (issue 24's evaluation): the static split k=2 (fp32) with each
# drafter against the same split without drafting, at 100 Mbit/s with an RTT of 10, 50 and 150 ms, greedy.
#   default (stories260K, about 9 minutes): the golden prompts, 128 tokens each, drafters none, ngram,
#     self-int8, self-int4, early-exit and model:stories260K.bin (the model drafting for itself: the
#     ceiling of acceptance);
#   --shape 110m (about 6 minutes): the stories110M shape with random weights and the 512-token vocabulary,
#     64 tokens, drafters none, self-int8, ngram and early-exit: the cost side, what drafting costs on a
#     model whose steps are not nearly free, and whether the draft planner (--draft-tokens auto) stops
#     drafting when it does not pay. (Greedy on random weights repeats one token, which ngram and self-int8
#     predict well; early-exit, blocks [0, 2) and the head, does not.)
# A tail (2 threads) and an edge (1 thread, --split auto, every drafter loaded, the first the default) on
# this machine, with `tandem bench-split`'s link emulator between them: it forces the split and the drafter
# on each static request, and sends adaptive requests too (the edge's plan and default drafter, none).
# Writes DIR/requests.csv, estimates.csv, summary.json, plans.csv, summary.md (bench-split's tables),
# drafting.md (per RTT: tokens/s, tokens per round trip, acceptance, speed-up against no drafting) and
# DIR/draft-eval.png (scripts/plot-draft.sh, when gnuplot is installed). Builds nothing: BUILD_DIR/bin.
#
# usage: scripts/draft-eval.sh [--shape 260k|110m] BUILD_DIR [OUT_DIR]
#   (environment: SCHEDULE, MAX_TOKENS, DRAFTERS, EDGE_SLOWDOWN, TAIL_PORT, LINK_PORT, EDGE_PORT)
set -euo pipefail
shape=260k
if [ "${1:-}" = "--shape" ]; then
  shape="$2"
  shift 2
fi
build="$1"
out="${2:-$build/draft-eval-$shape}"
bin="$build/bin"
scripts="$(cd "$(dirname "$0")" && pwd)"
shared="${TANDEM_SHARED:-$(cd "$scripts/../.." && pwd)/shared}"
tokenizer="$shared/models/stories260K/tok512.bin"
prompts="$shared/golden/stories260K-greedy.jsonl"
# Phase lengths: each must hold three requests of every drafter after the lead (the static plans take
# turns, two of every three requests; the third is adaptive), plus the one cut off by the phase's end.
case "$shape" in
  260k)
    model="$shared/models/stories260K/stories260K.bin"
    drafters="${DRAFTERS:-none,ngram,self-int8,self-int4,early-exit,model:$model}"
    max_tokens="${MAX_TOKENS:-128}"
    schedule="${SCHEDULE:-60s:100mbit:10ms,120s:100mbit:50ms,330s:100mbit:150ms}"
    ;;
  110m)
    # The stories110M shape with the 512-token vocabulary of the shared tokenizer (random weights).
    model="$build/stories110M-v512-random.bin"
    [ -f "$model" ] ||
      "$bin/tandem" make-model --shape stories110M --vocab 512 --seed 1 --out "$model" >/dev/null
    drafters="${DRAFTERS:-none,self-int8,ngram,early-exit}"
    max_tokens="${MAX_TOKENS:-64}"
    schedule="${SCHEDULE:-60s:100mbit:10ms,90s:100mbit:50ms,150s:100mbit:150ms}"
    ;;
  *)
    echo "draft-eval: --shape is 260k or 110m, not '$shape'" >&2
    exit 2
    ;;
esac
slowdown="${EDGE_SLOWDOWN:-1}"
command -v gnuplot >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null; } || true

tail_port="${TAIL_PORT:-47321}"
link_port="${LINK_PORT:-47322}"
edge_port="${EDGE_PORT:-47323}"
mkdir -p "$out"
# Both processes share this machine's two cores: OpenMP threads must sleep, not spin, while they wait.
export OMP_WAIT_POLICY=passive
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/services.sh"
start_eval_tail "$bin" "$model" "$out" "$tail_port"
"$bin/tandem-edge" --model "$model" --tokenizer "$tokenizer" --threads 1 --emulate-slowdown "$slowdown" \
  --split auto --draft "$drafters" --draft-tokens auto \
  --cloud "tcp://127.0.0.1:$link_port" --cloud-key "$out/cloud.pub" --client-key "$out/edge.key" \
  --listen "127.0.0.1:$edge_port" --allowed-codecs fp32,int8 --timeout-ms 5000 2>"$out/edge.log" &
pids+=($!)

"$bin/tandem" bench-split --edge "127.0.0.1:$edge_port" --link-listen "127.0.0.1:$link_port" \
  --link-target "127.0.0.1:$tail_port" --schedule "$schedule" --static 2 --draft "$drafters" \
  --draft-tokens auto --prompts "$prompts" --max-tokens "$max_tokens" --lead-s 2 --timeout-s 300 \
  --out "$out" >"$out/summary.md" 2> >(tee "$out/bench-split.log" | grep --line-buffered '^bench-split' >&2)

# Per RTT, the split k=2 with each drafter (plans.csv's static rows): median tokens/s, tokens per round
# trip, drafts per request, acceptance, and tokens/s against no drafting.
awk -F, -v shape="$shape" -v tokens="$max_tokens" '
  NR == 1 || $6 == "" { next }
  $3 != rtt {
    rtt = $3
    printf "\n%s, k=2 fp32, %s tokens, %s:\n\n", shape, tokens, $2
    print "| drafter | requests | tokens/s | tokens / round trip | drafts / request | acceptance | vs none |"
    print "|---|---|---|---|---|---|---|"
  }
  {
    acceptance = $11 < 0 ? "-" : sprintf("%.2f", $11)
    speedup = $6 == "none" ? "1.00x" : ($12 > 0 ? sprintf("%.2fx", $12) : "-")
    printf "| %s | %d | %.1f | %.2f | %.0f | %s | %s |\n", $6, $7, $8, $9, $10, acceptance, speedup
  }' "$out/plans.csv" | tee "$out/drafting.md"

"$scripts/plot-draft.sh" "$out" "$shape, k=2 fp32, $max_tokens tokens, edge 1 thread (slowdown $slowdown), tail 2 threads"
