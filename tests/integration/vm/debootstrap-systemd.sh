#!/bin/bash
# Build the tree of the systemd test image: Debian minbase with systemd >= 254 and python3.
# Usage: debootstrap-systemd.sh SUITE MIRROR TARGET   (SUITE: bookworm or trixie)
# bookworm's systemd is 252 (no soft-reboot), so bookworm takes systemd from bookworm-backports.
# Run by tests/integration/vm/images.py, which caches the result; slow (minutes), needs the mirror.
set -euo pipefail
suite=$1 mirror=$2 target=$3
packages=systemd-sysv,python3,kmod,udev,dbus
debootstrap --variant=minbase --include="$packages" "$suite" "$target" "$mirror" >&2
if [ "$suite" = bookworm ]; then
  echo "deb $mirror bookworm-backports main" > "$target/etc/apt/sources.list.d/backports.list"
  chroot "$target" apt-get -qq update >&2
  DEBIAN_FRONTEND=noninteractive chroot "$target" apt-get -qq install -y --no-install-recommends \
    -t bookworm-backports systemd systemd-sysv udev libsystemd0 libudev1 >&2
fi
version=$(chroot "$target" dpkg-query -W -f='${Version}' systemd)
major=${version%%.*}
if [ "$major" -lt 254 ]; then
  echo "systemd $version in $target is older than 254 (no soft-reboot)" >&2
  exit 1
fi
chroot "$target" apt-get clean
rm -rf "$target"/var/lib/apt/lists/* "$target"/usr/share/doc/* "$target"/usr/share/man/* \
  "$target"/usr/share/locale/* "$target"/usr/share/info/* "$target"/var/cache/debconf/*-old
echo "$version"
