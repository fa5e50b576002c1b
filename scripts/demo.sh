#!/usr/bin/env bash
# `make demo`: the two services on loopback. Generates CURVE keys, starts tandem-cloud (blocks [k, L), the
# head and sampling) and tandem-edge (the REST API, the embedding and blocks [0, k)), waits until the edge
# is ready, streams one completion with curl (the text prints as it arrives), shows a summary, asks one
# chat completion (the built-in ChatML template), and stops both with SIGTERM.
set -euo pipefail
bin="$1"; model="$2"; tokenizer="$3"
work="$(dirname "$bin")/demo"
mkdir -p "$work"
# Edge and tail share this machine: OpenMP threads sleep rather than spin while waiting (docs/operations.md).
export OMP_WAIT_POLICY=passive

if [ ! -f "$model" ] || [ ! -f "$tokenizer" ]; then
  echo "The demo needs a llama2.c model and its tokenizer: $model, $tokenizer (set TANDEM_MODEL and" >&2
  echo "TANDEM_TOKENIZER, or put ../shared beside the checkout)." >&2
  exit 1
fi

for name in cloud edge; do
  [ -f "$work/$name.key" ] || "$bin/tandem" keygen --out "$work/$name" >/dev/null
done
cp "$work/edge.pub" "$work/clients.txt"

# shellcheck source=scripts/services.sh
source "$(dirname "$0")/services.sh"

"$bin/tandem-cloud" --model "$model" --tokenizer "$tokenizer" --bind tcp://127.0.0.1:0 --http 127.0.0.1:0 \
  --server-key "$work/cloud.key" --allow-clients "$work/clients.txt" 2>"$work/cloud.log" &
pids+=($!)
cloud_line="$(serving_line "$work/cloud.log" "${pids[0]}")"
endpoint="$(sed -n 's/.* endpoint=\([^ ]*\).*/\1/p' <<<"$cloud_line")"

"$bin/tandem-edge" --model "$model" --tokenizer "$tokenizer" --cloud "$endpoint" \
  --cloud-key "$work/cloud.pub" --client-key "$work/edge.key" --listen 127.0.0.1:0 --split auto \
  --max-edge-blocks 2 --allowed-codecs fp32,int8+zstd --chat-template chatml 2>"$work/edge.log" &
pids+=($!)
edge_line="$(serving_line "$work/edge.log" "${pids[1]}")"
api="http://$(sed -n 's/.* listen=\([^ ]*\).*/\1/p' <<<"$edge_line")"
# Ready, and the tail's STATS (its block times and load) have reached the planner.
for _ in $(seq 100); do
  [ "$(curl -s "$api/v1/plan" | jq -r '[.planner.tails[] | .stats != null] | any')" = true ] && break
  sleep 0.1
done
echo "== tandem-cloud on $endpoint (CURVE), tandem-edge on $api: --split auto, the edge may hold 2 blocks"
echo "   of 5; the planner picks the cut (1 or 2) and the codec (fp32 or int8+zstd) from measured times"
echo

prompt="${TANDEM_PROMPT:-Once upon a time}"
request="$(jq -cn --arg prompt "$prompt" \
  '{model: "stories260K", prompt: $prompt, max_tokens: 200, temperature: 0.8, top_p: 0.9, seed: 42, stream: true}')"
echo "\$ curl -N $api/v1/completions -d '$request'"
echo
printf '%s' "$prompt"
last=""
while IFS= read -r line; do
  case "$line" in
    "data: [DONE]") break ;;
    "data: "*)
      last="${line#data: }"
      jq -j '.choices[0].text // ""' <<<"$last"
      ;;
  esac
done < <(curl -sN "$api/v1/completions" -H 'Content-Type: application/json' -d "$request")
echo
echo
jq -r '"== \(.usage.prompt_tokens) prompt + \(.usage.completion_tokens) generated tokens (\(.choices[0].finish_reason)); cut \(.tandem.cut), codec \(.tandem.codec); \(.tandem.activation_bytes_float32) activation bytes as float32, \(.tandem.activation_bytes_payload) sent; TTFT \(.tandem.ttft_ms * 100 | floor / 100) ms (predicted \(.tandem.plan.predicted_ttft_ms * 100 | floor / 100)), \(.tandem.tokens_per_second | floor) tokens/s"' <<<"$last"
echo "== GET /v1/plan: the link as the edge sees it, and the candidates it weighed"
curl -s "$api/v1/plan" | jq -c '{estimates, current: .planner.current.choice, top: [.planner.top_candidates[] | {choice, predicted_ttft_ms, predicted_token_ms}]}' 
echo
chat='{"messages":[{"role":"user","content":"Tell me a story about a cat."}],"max_tokens":40,"temperature":0}'
echo "== POST /v1/chat/completions: the messages through the built-in ChatML template (stories260K was trained"
echo "   on stories, not chat: the template works, the model does not chat)"
echo "\$ curl $api/v1/chat/completions -d '$chat'"
curl -s "$api/v1/chat/completions" -H 'Content-Type: application/json' -d "$chat" |
  jq -c '{message: .choices[0].message, finish_reason: .choices[0].finish_reason, usage}'
