"""The text a medium boots with: the iPXE script, isolinux and GRUB configs.

Every value baked into these files comes from the inventory or the runtime
config and is checked here for the language it lands in: iPXE expands
``${...}`` and splits on blanks, ``||`` and ``&&``; isolinux takes the rest of
a line; GRUB expands ``$`` and honours quotes. So a URL may only hold plain
URL characters, addresses are parsed as IPv4, names are DNS labels, and a
kernel command line is one line of printable characters without quotes or
backslashes. Anything else is refused with a message saying which value and why.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from reconciler.model.types import LABEL, check_domain

# Scheme, host (name or IPv4), optional port and path: nothing iPXE would expand or split.
_SERVER_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?\Z")
_CMDLINE_WORD = re.compile(r"^[\x21-\x7e]+\Z")
_CMDLINE_FORBIDDEN = set("\"'\\")
SCRIPT_NAME = "script.ipxe"


class MediaInputError(Exception):
    """A value that would go onto a medium is not safe or not complete; says what to fix."""


def check_server_url(url: str, *, where: str) -> str:
    """The boot service's base URL, safe to put into an iPXE script as is."""
    if not _SERVER_URL.match(url):
        raise MediaInputError(
            f"{where}: {url!r} cannot be baked into a boot medium: use "
            "http(s)://HOST[:PORT][/PATH] with letters, digits and . - _ ~ / only "
            "(no query, spaces, quotes or $)"
        )
    return url.rstrip("/")


def check_cmdline(cmdline: str, *, where: str) -> str:
    """A kernel command line safe for isolinux's APPEND and a single-quoted GRUB word list."""
    words = cmdline.split()
    bad = sorted({c for c in cmdline if c in _CMDLINE_FORBIDDEN})
    if bad or not all(_CMDLINE_WORD.match(w) for w in words):
        shown = " ".join(repr(c) for c in bad) or "control characters"
        raise MediaInputError(
            f"{where}: kernel command line {cmdline!r} contains {shown}; a boot medium takes "
            "printable words without quotes or backslashes"
        )
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class StaticAddress:
    """One host's network identity for a network without DHCP."""

    hostname: str
    address: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    dns: tuple[ipaddress.IPv4Address, ...]
    domain: str

    def __post_init__(self) -> None:
        if not LABEL.match(self.hostname):
            raise MediaInputError(f"host name {self.hostname!r} is not a DNS label")
        check_domain(self.domain)
        if self.address not in self.network or self.gateway not in self.network:
            raise MediaInputError(
                f"{self.hostname}: address {self.address} and gateway {self.gateway} "
                f"must lie in {self.network}"
            )


def net_script(*, server_url: str, revision: str, static: StaticAddress | None) -> str:
    """The iPXE script of a net medium: get an address, then chain to serve by MAC.

    With DHCP it retries until a server answers; with a static address it opens
    the first NIC and sets the host's address, netmask, gateway and DNS itself.
    Either way serve answers ``/boot/<mac>`` exactly as for a PXE boot, so an
    unknown MAC gets the registration script.
    """
    lines = [
        "#!ipxe",
        f"# reconciler boot medium, inventory revision {_comment(revision)}",
        f"echo reconciler boot medium: chaining to {server_url}",
    ]
    if static is None:
        lines += [
            ":address",
            "dhcp || goto no_address",
            "goto boot",
            ":no_address",
            "echo no DHCP answer on any interface; trying again in 10 s",
            "sleep 10",
            "goto address",
        ]
    else:
        lines += [
            f"# {static.hostname}: a static address, for a network without DHCP",
            "ifopen net0 || goto no_nic",
            f"set net0/ip {static.address}",
            f"set net0/netmask {static.network.netmask}",
            f"set net0/gateway {static.gateway}",
            f"set net0/hostname {static.hostname}",
            f"set net0/domain {static.domain}",
        ]
        lines += [f"set net0/dns {dns}" for dns in static.dns[:1]]
        # Expanded by the default boot profile's kernel line: the initramfs sets the same
        # address itself instead of asking DHCP (empty, so ignored, on PXE boots).
        dns = str(static.dns[0]) if static.dns else ""
        lines.append(
            f"set reconciler_static reconciler.ip={static.address},{static.network.netmask},"
            f"{static.gateway},{dns},${{net0/mac}}"
        )
        lines += ["goto boot", ":no_nic", "echo no network card found; cannot boot", "exit 1"]
    lines += [
        ":boot",
        f"chain {server_url}/boot/${{net0/mac}} || goto failed",
        ":failed",
        f"echo could not boot from {server_url}; trying again in 10 s",
        "sleep 10",
        "goto boot",
    ]
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@:/-]", "?", text)


def isolinux_net_cfg() -> str:
    """BIOS: isolinux loads iPXE with the script as its initrd (works with any iPXE)."""
    return (
        "DEFAULT net\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL net\n  KERNEL /boot/ipxe.lkrn\n  INITRD /boot/{SCRIPT_NAME}\n"
    )


def isolinux_live_cfg(cmdline: str) -> str:
    """BIOS: isolinux boots the image's kernel and initramfs straight from ISO9660."""
    return (
        "DEFAULT live\nPROMPT 0\nTIMEOUT 0\n"
        "LABEL live\n  KERNEL /live/vmlinuz\n  INITRD /live/initrd.img\n"
        f"  APPEND {cmdline}\n"
    )


def grub_embedded_cfg(volume_id: str) -> str:
    """Built into the GRUB EFI binary: find this medium by its label, read its grub.cfg."""
    if not re.fullmatch(r"[A-Z0-9_]{1,16}", volume_id):
        raise MediaInputError(f"volume id {volume_id!r} must be A-Z, 0-9 and _")
    return (
        f"search --no-floppy --label --set=root {volume_id}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile ($root)/boot/grub/grub.cfg\n"
    )


def grub_live_cfg(cmdline: str, *, title: str) -> str:
    """UEFI: GRUB reads the kernel and initramfs from ISO9660 (no network card needed)."""
    words = " ".join(f"'{word}'" for word in cmdline.split())
    return (
        "set timeout=0\nset default=0\n"
        f"menuentry '{_comment(title)}' {{\n"
        f"  linux /live/vmlinuz {words}\n"
        "  initrd /live/initrd.img\n"
        "}\n"
    )
