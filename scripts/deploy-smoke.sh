#!/usr/bin/env bash
# make deploy-smoke: the deployment files run for real, on this machine, with podman.
#   1. builds the images (scripts/image.sh);
#   2. starts docker-compose.yml with podman-compose: keygen, two tails, the scheduler, the edge serving
#      HTTPS, Prometheus;
#   3. through the edge container's published port, over TLS: a streamed chat completion and a completion
#      split with a tail; plain HTTP to that port is refused;
#   4. Prometheus has every target up;
#   5. kills the tail that served, and a streamed completion still completes;
#   6. tears the stack down, then plays the Helm chart's manifests with `podman kube play`
#      (scripts/kube-smoke.sh).
# Exits non-zero on any failure, naming the step and printing the containers' logs.
#
# usage: scripts/deploy-smoke.sh [--skip-without-podman] [--prebuilt DIR]
#   --skip-without-podman  where podman cannot run a container here, say so and exit 0 (.ci/run)
#   --prebuilt DIR         package the binaries in DIR rather than compiling them in the image (.ci/run,
#                          right after make test built and tested them: scripts/image.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(cd "${TANDEM_SHARED:-../shared}" && pwd)
PROJECT=tandem-smoke
EDGE_PORT=${TANDEM_EDGE_PORT:-18443}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090}
export TANDEM_EDGE_PORT=$EDGE_PORT PROMETHEUS_PORT TANDEM_MODEL_DIR=$SHARED/models/stories260K

skip_without_podman=0
image_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-without-podman) skip_without_podman=1; shift ;;
    --prebuilt) image_args=(--prebuilt "${2:?--prebuilt needs a folder}"); shift 2 ;;
    *) echo "usage: $0 [--skip-without-podman] [--prebuilt DIR]" >&2; exit 2 ;;
  esac
done

# Where podman is missing or cannot start a container, the smoke cannot run: an error, or with
# --skip-without-podman a plain statement that it did not run.
cannot_run() {
  if [ "$skip_without_podman" = 1 ]; then
    echo "deploy-smoke: NOT RUN: $* (the deployment files were checked statically only)"
    exit 0
  fi
  echo "deploy-smoke: FAILED: $*" >&2
  exit 1
}
command -v podman >/dev/null || cannot_run "podman is not installed"
command -v podman-compose >/dev/null || cannot_run "podman-compose is not installed"
# shellcheck source=scripts/container-engine.sh
source scripts/container-engine.sh
probe_log=$(mktemp)
if ! base=$(scripts/base-image.sh 2>"$probe_log") || ! podman run --rm "$base" true 2>>"$probe_log"; then
  cannot_run "podman cannot run a container on this machine: $(tail -3 "$probe_log" | tr '\n' ' ')"
fi
rm -f "$probe_log"

work=$(mktemp -d /tmp/tandem-smoke.XXXXXX)
SMOKE_NAME=deploy-smoke
# shellcheck source=scripts/smoke-steps.sh
source scripts/smoke-steps.sh
# podman-compose prints each podman command it runs, and podman warns that healthchecks need systemd
# timers (the checks still run on `podman healthcheck run`): kept in a log, shown on failure.
compose() { podman-compose -p "$PROJECT" -f docker-compose.yml "$@" >>"$work/compose.log" 2>&1; }
container() { echo "${PROJECT}_$1_1"; }
teardown() { compose down -v -t 5 >/dev/null 2>&1 || true; }
finish() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    echo "deploy-smoke: FAILED at step: ${step:-start}" >&2
    [ -f "$work/compose.log" ] && { echo "----- podman-compose (last 20 lines) -----"; tail -20 "$work/compose.log"; } >&2
    for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
      echo "----- logs of $name (last 30 lines) -----" >&2
      podman logs --tail 30 "$name" >&2 2>&1 || true
    done
  fi
  teardown
  rm -rf "$work"
  exit "$status"
}
trap finish EXIT

fail() { echo "deploy-smoke: $*" >&2; exit 1; }
https() { curl -fsS --max-time 60 --cacert "$work/ca.pem" "$@"; }
edge_url="https://127.0.0.1:$EDGE_PORT"

step_begin "build the images"
scripts/image.sh "${image_args[@]}"

step_begin "start the compose stack"
teardown  # a stack left by an interrupted run
compose up -d keygen
# podman-compose starts services in order but does not wait on depends_on conditions: wait for keygen.
[ "$(podman wait "$(container keygen)")" = 0 ] || fail "keygen exited non-zero: $(podman logs "$(container keygen)" 2>&1)"
compose up -d
podman cp "$(container edge-agent):/keys/tls-ca.pem" "$work/ca.pem"
wait_for 180 https -o /dev/null "$edge_url/readyz" || fail "the edge was not ready over HTTPS within 180 s"
for service in cloud-tail-a cloud-tail-b scheduler edge-agent; do
  user=$(podman exec "$(container "$service")" id -u)
  [ "$user" != 0 ] || fail "$service runs as root"
  [ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$(container "$service")")" = true ] ||
    fail "$service's root filesystem is writable"
  # podman-compose exits 0 even when a container could not start: look at each.
  [ "$(podman inspect --format '{{.State.Running}}' "$(container "$service")")" = true ] || fail "$service is not running"
done
echo "deploy-smoke: the services run as uid $user with a read-only root filesystem"

step_begin "streamed chat completion over HTTPS"
https -N "$edge_url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":24,"stream":true}' >"$work/chat.sse"
grep -q '^data: \[DONE\]' "$work/chat.sse" || fail "the chat stream did not end with [DONE]: $(tail -3 "$work/chat.sse")"
chat=$(grep '^data: {' "$work/chat.sse" | sed 's/^data: //' | jq -rj '.choices[0].delta.content // empty')
[ -n "$chat" ] || fail "the chat stream carried no content"
echo "deploy-smoke: chat: ${chat:0:80}"

step_begin "completion over HTTPS"
https "$edge_url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt":"Once upon a time","max_tokens":16,"temperature":0}' >"$work/completion.json"
served_by=$(jq -r '.tandem.cloud' "$work/completion.json")
case "$served_by" in
  tcp://cloud-tail-a:* | tcp://cloud-tail-b:*) ;;
  *) fail "the completion was not split with a tail (tandem.cloud='$served_by'): $(cat "$work/completion.json")" ;;
esac
echo "deploy-smoke: completion: $(jq -r '.choices[0].text' "$work/completion.json" | head -c 80) (tail $served_by)"
if curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$EDGE_PORT/healthz" 2>/dev/null; then
  fail "plain HTTP to the edge's TLS port was answered"
fi

step_begin "Prometheus scrapes every target"
all_up() {
  curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" >"$work/targets.json" &&
    jq -e '[.data.activeTargets[] | select(.health == "up")] | length == 4' "$work/targets.json"
}
wait_for 60 all_up || fail "not every target is up: $(jq -c '[.data.activeTargets[] | {job: .labels.job, health, lastError}]' "$work/targets.json")"
jq -r '.data.activeTargets[] | "deploy-smoke: target \(.labels.job) \(.scrapeUrl) \(.health)"' "$work/targets.json"

step_begin "kill the tail that served; the next stream completes"
killed=$(echo "$served_by" | sed -E 's|tcp://([^:]+):.*|\1|')
podman kill "$(container "$killed")" >/dev/null
https -N "$edge_url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt":"The little dog","max_tokens":24,"stream":true}' >"$work/after.sse"
grep -q '^data: \[DONE\]' "$work/after.sse" || fail "the stream after the kill did not complete: $(tail -3 "$work/after.sse")"
finish_reason=$(grep '^data: {' "$work/after.sse" | tail -1 | sed 's/^data: //' | jq -r '.choices[0].finish_reason')
[ "$finish_reason" = length ] || fail "the stream after the kill finished with '$finish_reason'"
after=$(grep '^data: {' "$work/after.sse" | tail -1 | sed 's/^data: //' | jq -r '.tandem.cloud')
echo "deploy-smoke: killed $killed; the next stream completed (tail '${after:-local}')"

step_begin "tear the compose stack down"
teardown

step_begin "podman kube play of the Helm chart"
scripts/kube-smoke.sh

step_done
echo "deploy-smoke: passed in $(elapsed "$smoke_started") s"
image_size=$(podman image inspect --format '{{.Size}}' tandem:local)
echo "deploy-smoke: image tandem:local is $((image_size / 1000000)) MB"
step_times
