#!/usr/bin/env bash
# Set up everything the reconciler and its tests need on a fresh Debian 12 or 13
# machine: the real servers the tests start (dhcpd, named, tftpd, dhclient, qemu),
# gpg (signed-commit tests) and a venv (python3-venv: Debian's Python cannot make
# one without it). Other installers may hold the dpkg lock: wait for it, up to 15 min.
set -euo pipefail
cd "$(dirname "$0")/.."

# isolinux ... e2fsprogs: boot media (ISO boot loaders, EFI partition, UEFI firmware, write tests)
# kexec-tools, linux-image-cloud-amd64 (a second kernel), debootstrap: live image swap VM tests
# kea-admin: also perfdhcp (/usr/sbin/perfdhcp), the DHCP load of the outage test and bench
debian_packages=(
  git iproute2 isc-dhcp-server isc-dhcp-client bind9 bind9-dnsutils
  tftpd-hpa tftp-hpa qemu-system-x86 ipxe-qemu busybox-static cpio procps
  linux-image-amd64 openssh-client gnupg python3-venv
  kea-dhcp4-server kea-ctrl-agent kea-admin postgresql
  isolinux syslinux-common grub-efi-amd64-bin grub-common mtools dosfstools ovmf squashfs-tools
  e2fsprogs
  kexec-tools linux-image-cloud-amd64 debootstrap
)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # kexec-tools only provides /sbin/kexec for the test images: never kexec this machine.
  echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections
  apt_get=(apt-get -o DPkg::Lock::Timeout=900)
  "${apt_get[@]}" update -qq
  "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# UEFI boot media need iPXE >= 1.21 (Debian 12's is from 2019): the files of Debian 13's
# architecture-independent package, fetched without changing the system's package
# sources, on Debian 12 and 13 alike (scripts/fetch-ipxe.sh).
bash scripts/fetch-ipxe.sh
# The ssh git fetch tests run a real sshd (in a namespace of their own): the package's
# binaries unpacked, not installed, so no system sshd is started (scripts/fetch-sshd.sh).
bash scripts/fetch-sshd.sh
# The packaged daemons must not run on their own: the reconciler's tests start them.
for service in isc-dhcp-server bind9 named tftpd-hpa kea-dhcp4-server kea-ctrl-agent \
  kea-dhcp6-server kea-dhcp-ddns-server postgresql; do
  systemctl disable --now "$service" >/dev/null 2>&1 || true
  service "$service" stop >/dev/null 2>&1 || true
done

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e '.[dev,kea,operator]'  # kea: psycopg; operator: kopf
# Bytecode, as pip writes it for an installed package: an editable install has none, and
# under PYTHONDONTWRITEBYTECODE every command would compile its modules again (~30 ms).
.venv/bin/python -m compileall -q reconciler >/dev/null
echo "setup: ready (.venv)"
