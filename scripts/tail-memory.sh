#!/usr/bin/env bash
# Memory a cloud tail holds with the whole model against a block-range checkpoint (tandem convert --blocks,
# docs/privacy.md): a random stories110M-shaped model (or MODEL), converted to each range, each served by
# tandem-cloud on loopback in turn; the resident size it logs once started (weights paged in by the
# fingerprint and the start-up profile) and its peak from /proc.
# usage: scripts/tail-memory.sh BUILD_DIR [MODEL [RANGES]]   (about a minute; RANGES default "1:6 1:11 6:12")
set -euo pipefail
build="$1"
work="$(mktemp -d)"
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/services.sh"
trap 'stop_all; rm -rf "$work"' EXIT
model="${2:-}"
if [[ -z "$model" ]]; then
  model="$work/stories110M-shape.bin"
  "$build/bin/tandem" make-model --shape stories110M --seed 7 --out "$model" >/dev/null
fi
ranges="${3:-1:6 1:11 6:12}"
echo "| checkpoint | blocks held | on disk (MiB) | resident after start (MiB) | peak (MiB) |"
echo "|---|---|---:|---:|---:|"
for range in all $ranges; do
  served="$model"
  if [[ "$range" != all ]]; then
    served="$work/blocks-${range/:/-}"
    "$build/bin/tandem" convert --model "$model" --blocks "$range" --out "$served" >/dev/null
  fi
  log="$work/cloud-${range/:/-}.log"
  "$build/bin/tandem-cloud" --model "$served" --insecure --bind tcp://127.0.0.1:0 --http "" 2>"$log" &
  pid=$!
  pids=("$pid")
  line="$(serving_line "$log" "$pid")"
  resident="$(sed -E 's/.*resident_mb=([0-9]+).*/\1/' <<<"$line")"
  peak_kb="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  disk_mb="$(du -sm "$served" | cut -f1)"
  name="$([[ "$range" == all ]] && echo "whole model" || echo "--blocks $range")"
  held="$(sed -E 's/.*blocks=([0-9:]+) head=([a-z]+).*/\1, head \2/' <<<"$line")"
  echo "| $name | $held | $disk_mb | $resident | $((peak_kb / 1024)) |"
done
