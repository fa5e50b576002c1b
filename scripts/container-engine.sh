# Sourced by scripts/image.sh and scripts/deploy-smoke.sh: picks the container engine into ENGINE (podman,
# else docker with a running daemon) and, for podman, the project's settings (deploy/podman/containers.conf:
# runc, cgroupfs, ulimits a VM accepts) unless CONTAINERS_CONF names others. Exits 1 with the reason when
# there is no engine.
if command -v podman >/dev/null; then
  ENGINE=podman
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  echo "no container engine: install podman (apt-get install podman runc), or run a Docker daemon" >&2
  exit 1
fi
