# shellcheck shell=bash
# Sourced by demo.sh, load.sh and the evaluation scripts: services started in the background (their pids in
# `pids`) are stopped with SIGTERM when the script exits, however it exits.
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# Waits (up to 30 s, or the given seconds) for a service's "msg=serving" log line and prints it; on failure
# shows the log and exits.
serving_line() {  # log pid [seconds]
  for _ in $(seq "$(( ${3:-30} * 10 ))"); do
    if grep -q "msg=serving" "$1"; then grep -m1 "msg=serving" "$1"; return; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  cat "$1" >&2
  exit 1
}

# An evaluation's tail on this machine: fresh cloud and edge key pairs in DIR (the edge's allow-listed),
# then tandem-cloud with MODEL on 2 threads at tcp://127.0.0.1:PORT (its log DIR/tail.log), waited for until
# it serves: it times its blocks first, and the edge started next times its own, so the two profiles are
# not taken on cores they share at the same moment.
start_eval_tail() {  # bin model dir port
  "$1/tandem" keygen --out "$3/cloud" >/dev/null
  "$1/tandem" keygen --out "$3/edge" >/dev/null
  cp "$3/edge.pub" "$3/clients.txt"
  "$1/tandem-cloud" --model "$2" --threads 2 --bind "tcp://127.0.0.1:$4" --http "" \
    --server-key "$3/cloud.key" --allow-clients "$3/clients.txt" 2>"$3/tail.log" &
  pids+=($!)
  serving_line "$3/tail.log" "$!" 60 >/dev/null
}
