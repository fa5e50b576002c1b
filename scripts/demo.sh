#!/usr/bin/env bash
# `make demo` for now: one story from the default model, all local and then split at block 2 in one
# process. The next issues turn this into an edge agent and a cloud tail talking over ZeroMQ.
set -euo pipefail
tandem="$1"; model="$2"; tokenizer="$3"

if [ ! -f "$model" ] || [ ! -f "$tokenizer" ]; then
  made="$(dirname "$tandem")/../demo-tiny.bin"
  echo "No model at $model: making a random tiny model ($made)."
  echo "Its text will be meaningless: random weights, no training."
  "$tandem" make-model --shape tiny --seed 7 --out "$made" >/dev/null
  model="$made"
  if [ ! -f "$tokenizer" ]; then
    echo "No tokenizer at $tokenizer either: set TANDEM_TOKENIZER to a llama2.c tokenizer with 512 tokens." >&2
    exit 1
  fi
fi

prompt="${TANDEM_PROMPT:-Once upon a time}"
echo "== tandem generate (model $model, prompt \"$prompt\", temperature 0.8, seed 42)"
"$tandem" generate --model "$model" --tokenizer "$tokenizer" --prompt "$prompt" --steps 200 \
  --temperature 0.8 --top-p 0.9 --seed 42
echo
echo "== the same, cut at block 2: blocks [0,2) as edge, [2,L) as cloud, hidden state passed across"
"$tandem" generate --model "$model" --tokenizer "$tokenizer" --prompt "$prompt" --steps 200 \
  --temperature 0.8 --top-p 0.9 --seed 42 --split 2
