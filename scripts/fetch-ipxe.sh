#!/usr/bin/env bash
# Provide iPXE >= 1.21 for UEFI boot media (reconciler media build) in
# /usr/local/share/reconciler/ipxe. Debian 13 ships it; Debian 12's ipxe is a 2019
# snapshot that ignores autoexec.ipxe on UEFI. Debian 13's package is
# architecture-independent, so it is downloaded with a private apt configuration
# (its own sources list and cache in a folder; the system's package sources and
# installed packages are not touched) and unpacked with dpkg-deb.
set -euo pipefail
dest=/usr/local/share/reconciler/ipxe
if [[ -f $dest/VERSION ]]; then
  echo "fetch-ipxe: iPXE $(cat "$dest/VERSION") already in $dest"
  exit 0
fi
work=$(mktemp -d /var/tmp/reconciler-ipxe.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work" -o "Dir::Cache::archives=$work/archives"
  -o "Acquire::Languages=none" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download ipxe)
deb=$(echo "$work"/ipxe_*_all.deb)
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$dest"
cp "$work/root/usr/lib/ipxe/ipxe.lkrn" "$dest/ipxe.lkrn"
cp "$work/root/usr/lib/ipxe/ipxe-amd64.efi" "$dest/ipxe.efi"
cp "$work/root/usr/share/doc/ipxe/copyright" "$dest/copyright"
dpkg-deb -f "$deb" Version >"$dest/VERSION"
echo "fetch-ipxe: iPXE $(cat "$dest/VERSION") in $dest"
