#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-14 with ASan + UBSan) in build-fuzz/, then for each target
# replays its seed corpus and fuzzes it for SECONDS (default 60), two targets at a time. New inputs go to
# build-fuzz/corpus-work/<target> (the repo's fuzz/corpus is only read), crashes to
# build-fuzz/artifacts/<target>/, logs to build-fuzz/logs/<target>.log. Exits non-zero on any crash.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wire activation_codec completion_request chat_request chat_template checkpoint tokenizer
  tokenizer_json safetensors)
build_dir="${FUZZ_BUILD_DIR:-build-fuzz}"
parallel="${FUZZ_PARALLEL:-2}"

# Longest input per target: past a few KB the parsers only do more of the same.
declare -A max_len=([wire]=4096 [activation_codec]=8192 [completion_request]=4096 [chat_request]=4096
  [chat_template]=8192 [checkpoint]=16384
  [tokenizer]=8192 [tokenizer_json]=8192 [safetensors]=4096)

started=$(date +%s)
if [ ! -f "$build_dir/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S fuzz -B "$build_dir" -G Ninja >/dev/null
fi
cmake --build "$build_dir" -j "$(nproc)"
echo "fuzz: built in $(($(date +%s) - started)) s"
mkdir -p "$build_dir/logs"

# Replays the corpus, then fuzzes; the exit status is libFuzzer's (non-zero on a crash or failed check).
fuzz_target() {
  local target="$1" binary="$build_dir/bin/fuzz_$1" log="$build_dir/logs/$1.log"
  local work="$build_dir/corpus-work/$target" artifacts="$build_dir/artifacts/$target/"
  local dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="fuzz/dict/$target.dict")
  mkdir -p "$work" "$artifacts"
  if ! "$binary" -runs=0 -artifact_prefix="$artifacts" "fuzz/corpus/$target" >"$log" 2>&1; then
    echo "fuzz: $target: replaying fuzz/corpus/$target failed, see $log"
    return 1
  fi
  # The first corpus directory receives new inputs; the repo's is read from second.
  "$binary" -max_total_time="$seconds" -max_len="${max_len[$target]:-4096}" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts" "${dict[@]}" "$work" "fuzz/corpus/$target" \
    >>"$log" 2>&1
}

declare -A pids=()
failed=0
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_target "$target" &
  pids[$target]=$!
done
for target in "${targets[@]}"; do
  status=0
  wait "${pids[$target]}" || status=$?
  log="$build_dir/logs/$target.log"
  executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  corpus=$(find "$build_dir/corpus-work/$target" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $target: ok, ${executions:-?} executions in ${seconds} s, $corpus new corpus inputs"
  else
    failed=1
    echo "fuzz: $target: FAILED (exit $status), see $log; inputs in $build_dir/artifacts/$target/"
    grep -E 'ERROR: |FUZZ_CHECK|runtime error|threw|Test unit written' "$log" | head -5 | sed 's/^/  /'
  fi
done
echo "fuzz: total $(($(date +%s) - started)) s"
exit "$failed"
