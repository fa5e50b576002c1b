# shellcheck shell=bash
# Sourced by demo.sh and load.sh: services started in the background (their pids in `pids`) are stopped
# with SIGTERM when the script exits, however it exits.
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# Waits (up to 30 s) for a service's "msg=serving" log line and prints it; on failure shows the log and exits.
serving_line() {  # log pid
  for _ in $(seq 300); do
    if grep -q "msg=serving" "$1"; then grep -m1 "msg=serving" "$1"; return; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  cat "$1" >&2
  exit 1
}
