#!/usr/bin/env bash
# Builds the images the compose stack runs: tandem:local (the repository's Dockerfile: the four binaries
# built from source) and tandem-prometheus:local (deploy/prometheus/Dockerfile: Debian's Prometheus).
#
# With podman (preferred: no daemon), on a Debian base image made here by scripts/base-image.sh, since no
# registry may be reachable; TANDEM_DEBIAN_IMAGE=docker.io/library/debian:12 uses the registry's instead.
# With docker where a daemon answers and podman is missing, on the Dockerfile's default bases.
#
# usage: scripts/image.sh [--prebuilt DIR]   prints each image's size and the time it took
#   --prebuilt DIR  package the binaries in DIR (built on this Debian 12 host, e.g. build/bin after make
#                   test) instead of compiling them in the build stage: the Dockerfile's `prebuilt` stage
set -euo pipefail
cd "$(dirname "$0")/.."
prebuilt=""
if [ "${1:-}" = "--prebuilt" ]; then
  prebuilt=${2:?usage: scripts/image.sh [--prebuilt DIR]}
fi
# shellcheck source=scripts/container-engine.sh
source scripts/container-engine.sh

build_args=()
if [ "$ENGINE" = podman ]; then
  base=${TANDEM_DEBIAN_IMAGE:-$(scripts/base-image.sh)}
  # docker format: OCI images drop HEALTHCHECK.
  build_args=(--format docker --network=host --build-arg "DEBIAN_IMAGE=$base" --build-arg "DEBIAN_SLIM_IMAGE=$base")
fi

build() {  # IMAGE CONTEXT [MORE BUILD ARGUMENTS]
  local image=$1 context=$2 started
  shift 2
  started=$(date +%s)
  echo "image: building $image ($ENGINE build $* $context)"
  "$ENGINE" build "${build_args[@]}" "$@" -t "$image" "$context"
  local size
  size=$("$ENGINE" image inspect --format '{{.Size}}' "$image")
  echo "image: $image built in $(($(date +%s) - started)) s, $((size / 1000000)) MB"
}

tandem_args=()
if [ -n "$prebuilt" ]; then
  # The runtime stage is Debian 12's libraries: binaries built against another release would not load.
  grep -q '^12\.' /etc/debian_version 2>/dev/null ||
    { echo "image.sh: --prebuilt needs binaries built on Debian 12, the image's release" >&2; exit 1; }
  for binary in tandem tandem-cloud tandem-edge tandem-scheduler; do
    [ -x "$prebuilt/$binary" ] || { echo "image.sh: $prebuilt/$binary is not built" >&2; exit 1; }
  done
  tandem_args=(--target prebuilt --build-context "prebuilt-bin=$prebuilt")
fi

build tandem:local . "${tandem_args[@]}"
build tandem-prometheus:local deploy/prometheus
