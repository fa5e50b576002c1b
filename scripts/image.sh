#!/usr/bin/env bash
# Builds the images the compose stack runs: tandem:local (the repository's Dockerfile: the four binaries
# built from source) and tandem-prometheus:local (deploy/prometheus/Dockerfile: Debian's Prometheus).
#
# With podman (preferred: no daemon), on a Debian base image made here by scripts/base-image.sh, since no
# registry may be reachable; TANDEM_DEBIAN_IMAGE=docker.io/library/debian:12 uses the registry's instead.
# With docker where a daemon answers and podman is missing, on the Dockerfile's default bases.
#
# usage: scripts/image.sh        prints each image's size and the time it took
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container-engine.sh
source scripts/container-engine.sh

build_args=()
if [ "$ENGINE" = podman ]; then
  base=${TANDEM_DEBIAN_IMAGE:-$(scripts/base-image.sh)}
  # docker format: OCI images drop HEALTHCHECK.
  build_args=(--format docker --network=host --build-arg "DEBIAN_IMAGE=$base" --build-arg "DEBIAN_SLIM_IMAGE=$base")
fi

build() {  # IMAGE CONTEXT
  local image=$1 context=$2 started
  started=$(date +%s)
  echo "image: building $image ($ENGINE build $context)"
  "$ENGINE" build "${build_args[@]}" -t "$image" "$context"
  local size
  size=$("$ENGINE" image inspect --format '{{.Size}}' "$image")
  echo "image: $image built in $(($(date +%s) - started)) s, $((size / 1000000)) MB"
}

build tandem:local .
build tandem-prometheus:local deploy/prometheus
