#!/usr/bin/env bash
# Builds helm-render fully offline from Debian's Go packages, or runs its tests (render_test.go).
#   build.sh OUTPUT_BINARY [WORK_DIR]
#   build.sh --test WORK_DIR
# WORK_DIR (default: $(dirname OUTPUT_BINARY)/helm-render-gopath) holds a private GOPATH and the build
# cache. Go 1.19 GOPATH mode finds Debian's sources under /usr/share/gocode; the private GOPATH only adds
# symlinks for the module-suffixed import paths (.../sprig/v3, .../semver/v3) that GOPATH mode cannot map.
set -euo pipefail

usage() {
  echo "usage: $0 OUTPUT_BINARY [WORK_DIR] | $0 --test WORK_DIR" >&2
  exit 2
}
tool_dir="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = --test ]; then
  [ $# -eq 2 ] || usage
  output=
  work_dir="$2"
else
  { [ $# -ge 1 ] && [ $# -le 2 ]; } || usage
  out_dir="$(mkdir -p "$(dirname "$1")" && cd "$(dirname "$1")" && pwd)"
  output="$out_dir/$(basename "$1")"
  work_dir="${2:-$out_dir/helm-render-gopath}"
fi
mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"
gocode=/usr/share/gocode/src
packages="golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev"

command -v go >/dev/null 2>&1 || {
  echo "build.sh: 'go' not found; install the Debian packages: $packages" >&2
  exit 1
}
for dir in github.com/Masterminds/sprig github.com/Masterminds/semver sigs.k8s.io/yaml; do
  [ -d "$gocode/$dir" ] || {
    echo "build.sh: Go sources $gocode/$dir are missing; install the Debian packages: $packages" >&2
    exit 1
  }
done

for lib in sprig semver; do
  mkdir -p "$work_dir/src/github.com/Masterminds/$lib"
  ln -sfn "$gocode/github.com/Masterminds/$lib" "$work_dir/src/github.com/Masterminds/$lib/v3"
done

cd "$tool_dir"
export GO111MODULE=off GOPATH="$work_dir:/usr/share/gocode" GOFLAGS= GOCACHE="$work_dir/cache" GOPROXY=off
if [ -z "$output" ]; then
  exec go test -count=1 .
fi
go build -o "$output" .
echo "built $output"
