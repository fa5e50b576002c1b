# Sourced by scripts/deploy-smoke.sh and scripts/kube-smoke.sh: named steps, each timed, and a bounded
# wait. Set SMOKE_NAME first (it prefixes every line).
#   step_begin NAME      ends the step before (its time is recorded) and starts NAME
#   step_done            ends the current step, printing "ok: NAME (T s)"
#   step_times           prints every ended step's time
#   wait_for SECONDS CMD retries CMD every second until it succeeds or SECONDS pass (then returns 1)
#   elapsed START        seconds since START (from `date +%s.%N`), one decimal
# $step names the current step (for a failure message); $smoke_started is when the script started.

step=""
step_started=$(date +%s.%N)
smoke_started=$step_started
step_timings=()

elapsed() { awk -v start="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }'; }

step_done() {
  [ -n "$step" ] || return 0
  local took
  took=$(elapsed "$step_started")
  step_timings+=("$step: $took s")
  echo "   ok: $step ($took s)"
  step=""
}

step_begin() {
  step_done
  step=$1
  step_started=$(date +%s.%N)
  echo "== $SMOKE_NAME: $step"
}

step_times() {
  local timing
  for timing in "${step_timings[@]}"; do echo "$SMOKE_NAME:   $timing"; done
}

wait_for() {
  local seconds=$1 deadline
  shift
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}
