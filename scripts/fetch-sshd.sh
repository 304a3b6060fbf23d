#!/usr/bin/env bash
# Provide an OpenSSH server for the tests that fetch git over ssh
# (reconciler/sandbox/sshd.py), in /usr/local/lib/reconciler/openssh-server, WITHOUT
# installing the openssh-server package: installing it would start and enable a system
# sshd on every CI machine. The package of this machine's own release is downloaded
# (apt-get download: nothing is installed, no service starts), unpacked with dpkg-deb,
# and only what the binaries need is added: the shared libraries the package depends on
# and its privilege-separation user `sshd` (what the package's postinst would create).
# Works on Debian 12 (monolithic sshd) and 13 (sshd + sshd-session + sshd-auth).
set -euo pipefail
dest=/usr/local/lib/reconciler/openssh-server
apt_get=(apt-get -o DPkg::Lock::Timeout=900 -o APT::Sandbox::User=root)
if [[ ! -x $dest/usr/sbin/sshd ]]; then
  work=$(mktemp -d /var/tmp/reconciler-sshd.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  # A machine whose package lists are old may no longer find that version: update once.
  (cd "$work" && { "${apt_get[@]}" -qq download openssh-server 2>/dev/null ||
    { "${apt_get[@]}" -qq update && "${apt_get[@]}" -qq download openssh-server; }; })
  deb=$(echo "$work"/openssh-server_*.deb)
  # Shared libraries only (lib*, not libpam-modules/-runtime: the test server runs without
  # PAM); the first of alternatives, without version constraints.
  mapfile -t libraries < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' |
    grep '^lib' | grep -v '^libpam-')
  missing=()
  for pkg in "${libraries[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "fetch-sshd: installing libraries: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  rm -rf "$dest.new"
  mkdir -p "$dest.new"
  dpkg-deb -x "$deb" "$dest.new"
  dpkg-deb -f "$deb" Version >"$dest.new/VERSION"
  rm -rf "$dest"
  mv "$dest.new" "$dest"
fi
# sshd refuses to start without its privilege-separation user (compiled in as `sshd`).
if ! getent passwd sshd >/dev/null; then
  useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin \
    --gid nogroup --comment "sshd user" sshd
fi
echo "fetch-sshd: OpenSSH server $(cat "$dest/VERSION") in $dest (not installed as a service)"
