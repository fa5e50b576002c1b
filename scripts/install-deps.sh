#!/usr/bin/env bash
# Installs the Debian packages Tandem builds and runs with, only those missing; silent when none are.
#   scripts/install-deps.sh              everything make test, make fuzz, make load and the deployment
#                                        checks use
#   scripts/install-deps.sh --demo       what make demo needs: the build (with its tests' libraries, which
#                                        the configure step finds), curl and jq; no Go, Prometheus, Node.js,
#                                        clang, qemu or deployment checkers
#   scripts/install-deps.sh --build-only what building the four binaries needs (the Dockerfile's build stage)
#   scripts/install-deps.sh --deploy     what make image and make deploy-smoke need: podman (with runc,
#                                        podman-compose, debootstrap), the chart's renderer (Go), curl, jq
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread libdnnl-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libzmq3-dev cppzmq-dev libzstd-dev liblz4-dev prometheus-cpp-dev libboost-dev libssl-dev
  libsentencepiece-dev libpcre2-dev libunistring-dev  # tokenizer.model; tokenizer.json regexes, NFC
)
tool_packages=(
  # The kernels' neon table, cross-built and run under qemu in ctest (GoogleTest built from googletest's
  # sources for ARM64).
  g++-aarch64-linux-gnu qemu-user-static googletest
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer, ASan, UBSan
  clang-format clang-tidy universal-ctags  # format_check, tidy_check, size_check (scripts/check_*.py)
  wrk  # scripts/load.sh
  # deploy/: the compose file's schema (docker-compose config), the Helm renderer (Go, sprig), the
  # manifests' Kubernetes schemas (python3-kubernetes), and a real Prometheus for prometheus_test.
  docker-compose golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
  python3 python3-yaml python3-kubernetes python3-jsonschema prometheus
  python3-jinja2  # chat_template_oracle_test: jinja2 renders the chat templates tandem must match
)
# openai_sdk_test: the official OpenAI Node SDK (npm installs it into the build folder). A Node.js from
# elsewhere (NodeSource's bundles npm) is kept: Debian's packages are added only when the commands lack.
command -v node >/dev/null || tool_packages+=(nodejs)
command -v npm >/dev/null || tool_packages+=(npm)

# What the demo runs beyond the build: scripts/demo.sh's curl and jq; python3 for the configure step.
demo_packages=(curl jq python3)

# What make image and make deploy-smoke run on the host (the build itself happens in the image).
deploy_packages=(
  podman runc podman-compose debootstrap curl jq python3 python3-yaml
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev  # helm-render, for kube play
)

packages=("${build_packages[@]}")
case "${1:-}" in
  --build-only) ;;
  --demo) packages+=("${demo_packages[@]}") ;;
  --deploy) packages=("${deploy_packages[@]}") ;;
  "") packages+=("${demo_packages[@]}" "${tool_packages[@]}") ;;
  *) echo "usage: $0 [--demo | --build-only | --deploy]" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing packages: ${missing[*]}"
# The Makefile's mark: a build configured before these packages were there is configured again.
if [ -n "${TANDEM_DEPS_ADDED:-}" ]; then mkdir -p "$(dirname "$TANDEM_DEPS_ADDED")" && touch "$TANDEM_DEPS_ADDED"; fi
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
