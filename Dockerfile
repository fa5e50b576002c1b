# One image with Tandem's four binaries (tandem, tandem-cloud, tandem-edge, tandem-scheduler), for
# docker-compose.yml and the Helm chart: `make image` (podman, or docker where a daemon runs), or
# docker build -t tandem:local .
# The build stage installs the -dev packages with the same script as `make`; the runtime stage has only
# the shared libraries the binaries load (deploy/tools/check_dockerfile.py checks that list against the
# binaries' DT_NEEDED entries), runs as the unprivileged user tandem, and works with a read-only root.
# The last stage, the default, takes the binaries from the build stage. The `prebuilt` stage takes them
# instead from the build context `prebuilt-bin`, binaries already built and tested on a Debian 12 host
# (scripts/image.sh --prebuilt build/bin: CI packages what `make test` built rather than compiling it again).

# Both stages are Debian 12. Without a registry, scripts/base-image.sh makes the same distribution with
# debootstrap and `make image` passes it here.
ARG DEBIAN_IMAGE=docker.io/library/debian:12
ARG DEBIAN_SLIM_IMAGE=docker.io/library/debian:12-slim

FROM ${DEBIAN_IMAGE} AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . /src
# The compiler cache outlives the build (a cache mount, not a layer): a rebuild after a small change
# compiles only what changed.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCHMARKS=OFF \
 && cmake --build /build --target tandem tandem-cloud tandem-edge tandem-scheduler

FROM ${DEBIAN_SLIM_IMAGE} AS runtime-base
# libopenblas0-pthread: LibTorch's BLAS (without it, the reference BLAS, several times slower);
# curl: the health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libtorch1.13 libdnnl2 libgomp1 libstdc++6 libzmq5 libzstd1 liblz4-1 libprometheus-cpp-core1.0 \
      libssl3 libopenblas0-pthread curl libsentencepiece0 libpcre2-8-0 libunistring2 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tandem --shell /usr/sbin/nologin tandem \
 && mkdir -p /var/lib/tandem /keys /models \
 && chown tandem:tandem /var/lib/tandem /keys
USER 10001:10001
WORKDIR /var/lib/tandem
# The tail's ZeroMQ port and HTTP port, the edge's API, the scheduler's API.
EXPOSE 5555 9100 8080 9300
# The service's /healthz; compose and the chart set the port of each service (HEALTHCHECK_URL here).
ENV HEALTHCHECK_URL=http://127.0.0.1:9100/healthz
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "$HEALTHCHECK_URL" || exit 1
CMD ["tandem", "--help"]

FROM runtime-base AS prebuilt
COPY --from=prebuilt-bin tandem tandem-cloud tandem-edge tandem-scheduler /usr/local/bin/

FROM runtime-base AS runtime
COPY --from=build /build/bin/tandem /build/bin/tandem-cloud /build/bin/tandem-edge /build/bin/tandem-scheduler \
     /usr/local/bin/
