#!/usr/bin/env bash
# The `podman kube play` half of `make deploy-smoke`: renders helm/tandem with helm-render and
# tests/deploy/values-kube-smoke.yaml, patches the manifests for podman 4.3 (deploy/tools/kube_play_patch.py
# says what and why), adds an edge Pod (tests/deploy/kube-smoke-edge.yaml), plays them, waits for the tail,
# the scheduler and the edge to be ready and runs one completion through the edge that must be split across
# the tail. Tears everything down on exit; on a failure prints the failed step and the containers' logs.
#   scripts/kube-smoke.sh            (needs the image tandem:local: make image)
# TANDEM_SHARED (default ../shared beside the checkout) holds models/stories260K; KUBE_SMOKE_TIMEOUT_S
# (default 180) bounds the wait for readiness; KUBE_SMOKE_KEEP=1 keeps the work directory.
set -euo pipefail

source_dir="$(cd "$(dirname "$0")/.." && pwd)"
cd "$source_dir"
source scripts/container-engine.sh
if [ "$ENGINE" != podman ]; then
  echo "kube-smoke: needs podman (podman kube play); found only $ENGINE" >&2
  exit 1
fi
image=tandem:local
shared="${TANDEM_SHARED:-$source_dir/../shared}"
model_dir="$(cd "$shared/models/stories260K" && pwd)"
timeout_s="${KUBE_SMOKE_TIMEOUT_S:-180}"
work="$(mktemp -d /tmp/kube-smoke.XXXXXX)"
manifests="$work/kube-play.yaml"
played=0
SMOKE_NAME=kube-smoke
# shellcheck source=scripts/smoke-steps.sh
source scripts/smoke-steps.sh

# The release's name prefixes every pod and volume the play makes: nothing shared with other tests.
release=tandem-kube-smoke
pods="$release-cloud-pod-0 $release-scheduler-pod-0 $release-edge"
pod_containers() {
  for pod in $pods; do
    podman ps -a --filter "pod=$pod" --format '{{.Names}}' 2>/dev/null | grep -v -- '-infra$' || true
  done
}

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    echo "kube-smoke: FAILED at step '${step:-setup}' (exit $rc)" >&2
    for c in $(pod_containers); do
      echo "---- podman logs $c (last 60 lines) ----" >&2
      podman logs --tail 60 "$c" >&2 2>&1
    done
  fi
  if [ "$played" = 1 ]; then
    teardown || rc=1
  fi
  if [ "${KUBE_SMOKE_KEEP:-0}" = 1 ]; then echo "kube-smoke: kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
# podman kube down removes the pods; the volumes the play made (emptyDirs, ConfigMaps: the patcher lists
# them) stay behind unless removed. Also run before playing, for what an interrupted run left.
teardown() {
  local t0 left
  t0=$(date +%s.%N)
  podman kube down "$manifests" >/dev/null 2>&1 || true
  for pod in $pods; do podman pod rm -f "$pod" >/dev/null 2>&1 || true; done
  while read -r v; do
    [ -z "$v" ] || podman volume rm -f "$v" >/dev/null 2>&1 || true
  done < "$work/volumes.txt"
  left="$(podman pod ls --format '{{.Name}}' | grep -Fx -f <(printf '%s\n' $pods) || true)"
  left+="$(podman volume ls --format '{{.Name}}' | grep -Fx -f "$work/volumes.txt" || true)"
  if [ -n "$left" ]; then echo "kube-smoke: left after teardown: $left" >&2; return 1; fi
  echo "   teardown: pods and volumes removed ($(elapsed "$t0") s)"
}
trap cleanup EXIT

podman image exists "$image" || { echo "kube-smoke: no image $image (make image)" >&2; exit 1; }

step_begin "build helm-render"
deploy/tools/helm-render/build.sh "$work/helm-render" "$work/gopath" >/dev/null

step_begin "keys (tandem keygen in the image)"
mkdir -p "$work/keys"
chmod 0777 "$work/keys"   # the image runs as uid 10001
podman run --rm --read-only --cap-drop ALL -v "$work/keys:/out:Z" "$image" /bin/sh -ec \
  'tandem keygen --out /out/cloud >/dev/null; tandem keygen --out /out/edge >/dev/null;
   tandem control-secret --out /out/control.secret >/dev/null'
# A values file, not --set: Z85 keys may hold characters --set parses ({, [, backslash).
/usr/bin/python3 - "$work/keys" > "$work/values-keys.yaml" <<'EOF'
import sys, yaml
read = lambda name: open(f"{sys.argv[1]}/{name}").read().strip()
print(yaml.safe_dump({"keys": {"serverSecretKey": read("cloud.key"), "serverPublicKey": read("cloud.pub"),
                               "allowedClients": [read("edge.pub")]}}))
EOF

step_begin "render the chart"
# Free loopback ports: every pod shares the host's network.
read -r zmq_port http_port scheduler_port edge_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
"$work/helm-render" --release-name "$release" --namespace tandem-smoke --kube-version 1.29.0 \
  --values tests/deploy/values-kube-smoke.yaml \
  --set "model.volume.hostPath.path=$model_dir" \
  --values "$work/values-keys.yaml" \
  --set "cloud.service.zmqPort=$zmq_port" --set "cloud.service.httpPort=$http_port" \
  --set "scheduler.service.port=$scheduler_port" \
  helm/tandem > "$work/rendered.yaml"
/usr/bin/python3 deploy/tools/kube_play_patch.py "$work/rendered.yaml" "$manifests" --host 127.0.0.1 \
  --extra tests/deploy/kube-smoke-edge.yaml \
  --var "MODEL_DIR=$model_dir" --var "ZMQ_PORT=$zmq_port" --var "SCHEDULER_PORT=$scheduler_port" \
  --var "EDGE_PORT=$edge_port" \
  --secret "$release-edge-secret:edge.key=$work/keys/edge.key" \
  --secret "$release-edge-secret:cloud.pub=$work/keys/cloud.pub" \
  --secret "$release-control:control.secret=$work/keys/control.secret" \
  --volumes-out "$work/volumes.txt"
echo "   ports: tail zmq $zmq_port, tail http $http_port, scheduler $scheduler_port, edge $edge_port"

step_begin "podman kube play"
played=1
teardown >/dev/null 2>&1 || true
podman kube play "$manifests" >"$work/play.log" 2>&1 || { cat "$work/play.log" >&2; exit 1; }

step_begin "wait for /readyz (tail, scheduler, edge; up to ${timeout_s} s)"
deadline=$(( $(date +%s) + timeout_s ))
for target in "tail 127.0.0.1:$http_port" "scheduler 127.0.0.1:$scheduler_port" "edge 127.0.0.1:$edge_port"; do
  set -- $target
  if ! wait_for $((deadline - $(date +%s))) curl -fs -o /dev/null --max-time 2 "http://$2/readyz"; then
    echo "kube-smoke: the $1 ($2) is not ready after ${timeout_s} s" >&2
    podman pod ps --format '{{.Name}} {{.Status}}' >&2
    exit 1
  fi
  echo "   $1 ready ($(elapsed "$step_started") s)"
done

step_begin "completion through the edge"
curl -fsS --max-time 60 "http://127.0.0.1:$edge_port/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt":"Once upon a time","max_tokens":24}' > "$work/completion.json"
/usr/bin/python3 - "$work/completion.json" "tcp://127.0.0.1:$zmq_port" <<'EOF'
import json, sys
body = json.load(open(sys.argv[1]))
text = body["choices"][0]["text"]
tandem = body.get("tandem", {})
assert text.strip(), f"empty completion: {body}"
# The split ran on the tail the chart deployed (not all-local): the response names its advertised address.
assert tandem.get("cloud") == sys.argv[2], f"tandem.cloud is {tandem.get('cloud')!r}, not {sys.argv[2]}: {body}"
print(f"   text: {text[:60]!r}...; cut {tandem.get('cut')}, codec {tandem.get('codec')}, cloud {tandem['cloud']}")
EOF

step_done
step="teardown"
echo "kube-smoke: passed in $(elapsed "$smoke_started") s (teardown follows)"
