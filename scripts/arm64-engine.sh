#!/usr/bin/env bash
# The engine and `tandem` cross-built for ARM64 and the stories260K goldens run under qemu, with the neon
# and neon_dotprod kernel tables: monolithic and split at every cut, plus int8/int4 agreement.
#
#   scripts/arm64-engine.sh [WORK_DIR]     (default /tmp/tandem-arm64; needs root for apt, ~300 MB download)
#
# Debian cannot install libtorch-dev for arm64 beside the amd64 one (libtorch-dev is not Multi-Arch: same),
# so this downloads the arm64 packages with apt (the arm64 architecture added only for that and removed
# again) and extracts them into WORK_DIR/sysroot, which cmake/aarch64-linux-gnu-sysroot.cmake builds
# against and qemu-aarch64 runs from (-L). Not part of `make test`: the download and a 10-minute build do
# not fit CI; the kernels' ARM64 tests are (kernels_test_neon, kernels_test_neon_dotprod).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/tandem-arm64}
shared=${TANDEM_SHARED:-../shared}
sysroot=$work/sysroot
packages=(libtorch-dev libopenblas0-pthread libdnnl-dev libzmq3-dev cppzmq-dev libzstd-dev liblz4-dev
          prometheus-cpp-dev libboost-dev libssl-dev libsentencepiece-dev libpcre2-dev libunistring-dev)

if [[ ! -d $sysroot/usr/lib/aarch64-linux-gnu ]]; then
  echo "arm64-engine: downloading Debian's arm64 packages into $work/debs"
  mkdir -p "$work/debs/partial"
  added=0
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    added=1
  fi
  trap '[[ $added == 1 ]] && dpkg --remove-architecture arm64 && apt-get update -qq || true' EXIT
  apt-get update -qq
  apt-get install --download-only -y -qq --no-install-recommends -o Dir::Cache::archives="$work/debs" \
    "${packages[@]/%/:arm64}" >/dev/null
  (cd "$work/debs" && apt-get download -qq nlohmann-json3-dev)  # header-only, architecture all
  echo "arm64-engine: extracting them into $sysroot"
  mkdir -p "$sysroot"
  for deb in "$work"/debs/*_arm64.deb "$work"/debs/*_all.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  # BLAS and LAPACK are update-alternatives links, made by maintainer scripts that extraction skips.
  (cd "$sysroot/usr/lib/aarch64-linux-gnu" &&
     for lib in openblas-pthread/*.so*; do [[ -e $(basename "$lib") ]] || ln -s "$lib" .; done)
fi

echo "arm64-engine: building tandem for arm64 in $work/build"
cmake -S . -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu-sysroot.cmake" -DTANDEM_ARM64_SYSROOT="$sysroot" \
  -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$work/build" --target tandem -j "$(nproc)"

echo "arm64-engine: stories260K goldens under qemu-aarch64 -cpu max"
python3 - "$work/build/bin/tandem" "$sysroot" "$shared" <<'PY'
import json, os, subprocess, sys
tandem, sysroot, shared = sys.argv[1:]
model = f"{shared}/models/stories260K"
run = ["qemu-aarch64-static", "-cpu", "max", "-L", sysroot, tandem]
common = ["--model", f"{model}/stories260K.bin", "--tokenizer", f"{model}/tok512.bin"]
goldens = [json.loads(line) for line in open(f"{shared}/golden/stories260K-greedy.jsonl")]
failed = False
for table in ("neon", "neon_dotprod"):
    env = dict(os.environ, TANDEM_KERNELS=table)
    for split in (-1, 1, 2, 3, 4):
        exact = 0
        for g in goldens:
            out = subprocess.run(run + ["generate", *common, "--prompt", g["prompt"], "--steps", str(g["steps"]),
                                        "--temperature", "0", "--split", str(split), "--json"],
                                 capture_output=True, text=True, env=env, check=True).stdout
            result = json.loads(out.splitlines()[-1])
            exact += result["ids"] == g["ids"] and result["kernels"] == table
        print(f"{table} split {split}: {exact}/{len(goldens)} goldens exact")
        failed |= exact != len(goldens)
    for flags in (["--int8-blocks", "0:2"], ["--int4-blocks", "0:2"]):
        out = subprocess.run(run + ["eval-agreement", *common, "--golden", f"{shared}/golden/stories260K-greedy.jsonl",
                                    *flags], capture_output=True, text=True, env=env, check=True).stdout
        print(f"{table} {' '.join(flags)}: {out.strip().splitlines()[-1]}")
sys.exit(1 if failed else 0)
PY
