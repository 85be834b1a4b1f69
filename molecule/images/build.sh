#!/usr/bin/env bash
# Build the systemd base images that molecule scenarios run on, from Debian packages only
# (debootstrap + docker import): no container registry is needed or reachable.
# An image is rebuilt only when its recipe changes (packages.txt, or recipe_version below, bumped
# whenever the build steps change): the tag carries the recipe's hash, and
# `aimachine-molecule:<suite>` points at the current one.
# Usage: molecule/images/build.sh [suite ...]   (default: bookworm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mirror=${AIMACHINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Downloaded .debs are kept, so a rebuild after a recipe change downloads only what is new.
cache=${AIMACHINE_DEBOOTSTRAP_CACHE:-/var/cache/aimachine-molecule/debootstrap}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm)

for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install debootstrap docker.io)" >&2; exit 2; }
done

recipe_version=3
recipe_hash=$( (echo "$recipe_version"; cat "$here/packages.txt") | sha256sum | cut -c1-12)
packages=$(grep -v '^#' "$here/packages.txt" | xargs | tr ' ' ,)

for suite in "${suites[@]}"; do
  tag="aimachine-molecule:${suite}-${recipe_hash}"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "image $tag is up to date"
  else
    rootfs=$(mktemp -d "/var/tmp/aimachine-rootfs-${suite}.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "building $tag with debootstrap from $mirror (a few minutes)"
    mkdir -p "$cache/$suite"
    debootstrap --cache-dir="$cache/$suite" --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
      > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    # A container has no consoles or udev; an empty machine-id is filled at first boot.
    for unit in getty@tty1.service console-getty.service systemd-udevd.service \
                systemd-udev-trigger.service systemd-firstboot.service; do
      ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
    done
    : > "$rootfs/etc/machine-id"
    # Package lists stay: apt must see them as present (cache_valid_time) and find packages.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import \
      --change 'ENV container=docker' \
      --change 'CMD ["/lib/systemd/systemd"]' \
      - "$tag" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    echo "built $tag"
  fi
  docker tag "$tag" "aimachine-molecule:${suite}"
done
