#!/usr/bin/env bash
# Installs the Debian packages Tandem builds and runs with, only those missing; silent when none are.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config curl jq
  libtorch-dev libopenblas0-pthread libdnnl-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libzmq3-dev cppzmq-dev libzstd-dev liblz4-dev prometheus-cpp-dev libboost-dev libssl-dev
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer, ASan, UBSan
  wrk  # scripts/load.sh
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing packages: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
