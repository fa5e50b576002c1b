#!/usr/bin/env bash
# Makes the Debian 12 base image the Dockerfile builds on, without a registry: debootstrap (minbase) from
# this machine's own apt source, imported into podman's local storage as localhost/tandem-debian:bookworm.
# `make image` passes it to the Dockerfile (DEBIAN_IMAGE) when no registry can be reached; where Docker Hub
# can be, the Dockerfile's default debian:12 is the same distribution.
#
# usage: scripts/base-image.sh [--force]   (root: debootstrap needs it; about 30 s, 200 MB)
# Prints the image name. Does nothing when the image exists and was made by this version of the script,
# unless --force.
set -euo pipefail

IMAGE=localhost/tandem-debian:bookworm
SUITE=bookworm

force=0
[ "${1:-}" = "--force" ] && force=1
# The image carries the hash of the script that made it: an edited script makes it again.
script_hash=$(sha256sum "$0" | cut -c1-16)
made_by=$(podman image inspect --format '{{index .Labels "tandem.base-script"}}' "$IMAGE" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$made_by" = "$script_hash" ]; then
  echo "$IMAGE"
  exit 0
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "base-image.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "base-image.sh: debootstrap needs root" >&2; exit 1; }

# The first Debian mirror this machine's apt uses (deb822 .sources or one-line lists), so that the image
# reaches the same mirror (and the same proxy rules) as the host.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v '^ *#' |
  grep -o 'http[^ ]*debian-security' | head -1 || true)
security=${security:-http://deb.debian.org/debian-security}

rootfs=$(mktemp -d /tmp/tandem-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
started=$(date +%s)
if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
  tail -20 "$rootfs.log" >&2
  echo "base-image.sh: debootstrap from $mirror failed (log above)" >&2
  exit 1
fi
rm -f "$rootfs.log"
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
# As Debian's slim images: packages installed later leave out manuals, info pages, translations and
# documentation but their copyright files.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
# As Debian's own images: no package cache or lists in the layer, and apt keeps none after installs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
echo 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };' >"$rootfs/etc/apt/apt.conf.d/docker-clean"
tar -C "$rootfs" -c . | podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' --change "LABEL tandem.base-script=$script_hash" - "$IMAGE" >/dev/null
echo "base-image.sh: $IMAGE from $mirror in $(($(date +%s) - started)) s" >&2
echo "$IMAGE"
