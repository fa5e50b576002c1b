#!/usr/bin/env bash
# `make demo`: a cloud tail and an edge on loopback. Generates CURVE keys, starts tandem-cloud with the
# model, then generates one story all local and one split at block 2 over ZeroMQ (CURVE on), which must
# match token for token; shows what crossed the cut and the tail's metrics. (The REST edge agent comes
# with the services issue.)
set -euo pipefail
bin="$1"; model="$2"; tokenizer="$3"
work="$(dirname "$bin")/demo"
# Edge and tail share this machine: OpenMP threads sleep rather than spin while waiting (docs/operations.md).
export OMP_WAIT_POLICY=passive
mkdir -p "$work"

if [ ! -f "$model" ] || [ ! -f "$tokenizer" ]; then
  made="$work/tiny.bin"
  echo "No model at $model: making a random tiny model ($made)."
  echo "Its text will be meaningless: random weights, no training."
  "$bin/tandem" make-model --shape tiny --seed 7 --out "$made" >/dev/null
  model="$made"
  if [ ! -f "$tokenizer" ]; then
    echo "No tokenizer at $tokenizer either: set TANDEM_TOKENIZER to a llama2.c tokenizer with 512 tokens." >&2
    exit 1
  fi
fi

# Keys: the tail's pair, and an edge pair the tail allow-lists.
for name in cloud edge; do
  [ -f "$work/$name.key" ] || "$bin/tandem" keygen --out "$work/$name" >/dev/null
done
cp "$work/edge.pub" "$work/clients.txt"

"$bin/tandem-cloud" --model "$model" --tokenizer "$tokenizer" --bind tcp://127.0.0.1:0 --http 127.0.0.1:0 \
  --server-key "$work/cloud.key" --allow-clients "$work/clients.txt" 2>"$work/cloud.log" &
tail_pid=$!
trap 'kill $tail_pid 2>/dev/null; wait $tail_pid 2>/dev/null || true' EXIT
serving=""
for _ in $(seq 100); do
  serving="$(grep -m1 "msg=serving" "$work/cloud.log" || true)"
  [ -n "$serving" ] && break
  kill -0 "$tail_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$serving" ] || { cat "$work/cloud.log" >&2; exit 1; }
endpoint="$(sed -n 's/.* endpoint=\([^ ]*\).*/\1/p' <<<"$serving")"
http="$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$serving")"
echo "== tandem-cloud is serving on $endpoint (CURVE on), health and metrics on http://$http"

prompt="${TANDEM_PROMPT:-Once upon a time}"
common=(--model "$model" --tokenizer "$tokenizer" --prompt "$prompt" --steps 200 --temperature 0.8
  --top-p 0.9 --seed 42)
echo
echo "== all local (prompt \"$prompt\", temperature 0.8, seed 42)"
"$bin/tandem" generate "${common[@]}"
echo
echo "== split at block 2: blocks [0,2) here, [2,L) and sampling on the cloud tail, fp32 activations"
"$bin/tandem" generate "${common[@]}" --split 2 --codec fp32 --cloud "$endpoint" \
  --cloud-key "$work/cloud.pub" --client-key "$work/edge.key"
local_ids="$("$bin/tandem" generate "${common[@]}" --json | sed -n 's/.*"ids":\(\[[^]]*\]\).*/\1/p')"
split_json="$("$bin/tandem" generate "${common[@]}" --json --split 2 --codec int8+zstd --cloud "$endpoint" \
  --cloud-key "$work/cloud.pub" --client-key "$work/edge.key")"
fp32_ids="$("$bin/tandem" generate "${common[@]}" --json --split 2 --codec fp32 --cloud "$endpoint" \
  --cloud-key "$work/cloud.pub" --client-key "$work/edge.key" | sed -n 's/.*"ids":\(\[[^]]*\]\).*/\1/p')"
echo
if [ "$local_ids" = "$fp32_ids" ]; then
  echo "== the split run's tokens equal the local run's, token for token"
else
  echo "== MISMATCH between the split and the local run" >&2
  exit 1
fi
echo "== with --codec int8+zstd, bytes per decode step: $(sed -n 's/.*"decode_payload_bytes":\([0-9.]*\).*/\1/p' <<<"$split_json") (fp32: $(sed -n 's/.*"decode_raw_bytes":\([0-9]*\).*/\1/p' <<<"$split_json"))"
echo
echo "== the tail's metrics (curl http://$http/metrics)"
curl -s "http://$http/metrics" | grep -E "^tandem_cloud_(tokens_total|activation_bytes_total|messages_total\{direction=\"in\",type=\"ACTIVATIONS\"\}|auth_total)"
