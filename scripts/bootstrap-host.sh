#!/usr/bin/env bash
# Install and start what `make demo` and `make test` need on a fresh Debian 12 controller:
# docker (molecule's containers), debootstrap (their images), and for the tests the libvirt
# pieces (lab VM role), the headers libvirt-python builds against, and nginx with njs (the front
# door's routing test runs its templates in a private nginx), node and npm (Continue's config
# schema package). Idempotent: installs only what is missing and starts dockerd only when it
# is not answering.
# Usage: scripts/bootstrap-host.sh [demo|test]
set -euo pipefail
purpose=${1:-test}
export DEBIAN_FRONTEND=noninteractive

packages=(docker.io debootstrap)
if [ "$purpose" = test ]; then
  packages+=(libvirt-daemon libvirt-clients libxml2-utils qemu-utils genisoimage cloud-init
             libvirt-dev pkg-config gcc nginx libnginx-mod-http-js bubblewrap nodejs)
  # npm runs Continue's schema package (scripts/tests/test_clients_schema.py); a nodejs that
  # brings its own npm (NodeSource's) conflicts with Debian's npm package.
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # cloud-init is here only for its schema checker: keep it from acting at the next boot.
  if [[ " ${missing[*]} " == *" cloud-init "* ]]; then touch /etc/cloud/cloud-init.disabled; fi
  # nginx is here only for the tests, which start their own: not the distribution's site on :80.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi

if ! docker info >/dev/null 2>&1; then
  echo "bootstrap: starting dockerd"
  (dockerd >/var/log/aimachine-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 30 /var/log/aimachine-dockerd.log >&2; exit 1; }
fi
