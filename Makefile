# Quick start: `make demo` and `make test`. Each installs missing Debian packages, configures and builds
# (Release, one build directory, ccache when present), then runs.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
SHARED ?= $(abspath ../shared)
TANDEM_MODEL ?= $(SHARED)/models/stories260K/stories260K.bin
TANDEM_TOKENIZER ?= $(SHARED)/models/stories260K/tok512.bin

.PHONY: all deps configure build test demo bench fuzz image deploy-smoke clean

all: build

# What `deps` installs: everything (test, fuzz, load, the deployment checks), or for `make demo` only what
# the demo needs (a target-specific value, which the prerequisites it builds inherit).
# Packages added after the build was configured (make test after make demo) may enable parts of it (the
# ARM64 kernels under qemu, the chart's renderer): install-deps.sh then leaves a mark, and configure runs
# CMake again.
DEPS_SET ?=
DEPS_ADDED = $(BUILD_DIR)/.packages-added
deps:
	@TANDEM_DEPS_ADDED=$(DEPS_ADDED) scripts/install-deps.sh $(DEPS_SET)

$(BUILD_DIR)/build.ninja: CMakeLists.txt | deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

configure: deps $(BUILD_DIR)/build.ninja
	@if [ -f $(DEPS_ADDED) ]; then cmake -S . -B $(BUILD_DIR) >/dev/null && rm -f $(DEPS_ADDED); fi

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@cd $(BUILD_DIR) && TANDEM_SHARED=$(SHARED) ctest --output-on-failure -j $(JOBS)

# tandem-cloud and tandem-edge on loopback; one streamed completion and one chat completion through the
# REST API. Installs only the demo's packages.
# Builds only the three binaries the demo runs, not the tests.
demo: DEPS_SET = --demo
demo: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target tandem tandem-cloud tandem-edge
	@scripts/demo.sh $(BUILD_DIR)/bin "$(TANDEM_MODEL)" "$(TANDEM_TOKENIZER)"

# Benchmarks with their baselines in the same run: the engine on the stories110M shape (float32, int8),
# and the split on loopback against all-local (tiny and stories110M shapes).
bench: build
	@scripts/bench.sh $(BUILD_DIR)

# Every throughput figure in one run (about 90 s on 2 cores; docs/performance.md):
# $(BUILD_DIR)/bench-results/bench-suite.{json,md}.
.PHONY: bench-suite
bench-suite: build
	@$(BUILD_DIR)/bin/tandem bench-suite --out-dir $(BUILD_DIR)/bench-results

# A tail's memory with the whole model against block-range checkpoints (docs/privacy.md; about a minute).
.PHONY: tail-memory
tail-memory: build
	@scripts/tail-memory.sh $(BUILD_DIR)

# What a tail recovers from the boundary rows, per cut, codec and noise (docs/privacy.md; about 4 minutes).
.PHONY: privacy
privacy: build
	@scripts/privacy-eval.sh $(BUILD_DIR)

# Load on loopback: tandem loadgen 64x20 with RSS watched, wrk on /healthz; `make load SOAK_MINUTES=30` soaks too.
.PHONY: load
SOAK_MINUTES ?= 0
load: build
	@scripts/load.sh --bin $(BUILD_DIR)/bin --soak $(SOAK_MINUTES)

# libFuzzer targets (fuzz/, clang-14 with ASan + UBSan, built in build-fuzz/): replay the seed corpora, then
# fuzz each target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# The images (tandem:local from the Dockerfile, tandem-prometheus:local) with podman, or docker where a
# daemon runs; without a registry, on a Debian base made with debootstrap (scripts/base-image.sh).
image: DEPS_SET = --deploy
image: deps
	@scripts/image.sh

# The deployment files run for real with podman: the compose stack (HTTPS edge, two tails, scheduler,
# Prometheus; chat, completion, targets up, a tail killed) and the Helm chart under `podman kube play`.
# DEPLOY_SMOKE_FLAGS (.ci/run): --skip-without-podman says so and passes where podman cannot run
# containers; --prebuilt DIR packages binaries already built on this Debian 12 host instead of compiling.
DEPLOY_SMOKE_FLAGS ?=
deploy-smoke: DEPS_SET = --deploy
deploy-smoke: deps
	@TANDEM_SHARED=$(SHARED) scripts/deploy-smoke.sh $(DEPLOY_SMOKE_FLAGS)

clean:
	@rm -rf $(BUILD_DIR)
