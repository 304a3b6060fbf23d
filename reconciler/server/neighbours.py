"""Which MAC the kernel has seen behind an address: the cross-check for registrations.

A machine that registers says which MAC it has. On the same link the kernel
already knows the MAC that sent the request (its neighbour table, filled by
ARP), so a claim for somebody else's MAC is caught, as the old ARP-based
tooling did. A request from loopback, from one of the server's own
addresses or through a router has no entry for its source address; the
registration handler refuses those unless the group allows routed
registration.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path

from reconciler.model.types import normalize_mac

log = logging.getLogger(__name__)

PROC_ARP = Path("/proc/net/arp")


def parse_ip_neigh(output: str) -> str | None:
    """The ``lladdr`` of ``ip neigh show <addr>`` output, normalised; None without one."""
    for line in output.splitlines():
        words = line.split()
        if "lladdr" in words and words.index("lladdr") + 1 < len(words):
            with contextlib.suppress(ValueError):
                return normalize_mac(words[words.index("lladdr") + 1])
    return None


def parse_proc_arp(text: str, address: str) -> str | None:
    """The MAC ``/proc/net/arp`` lists for ``address`` (complete entries only)."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == address and fields[3] != "00:00:00:00:00:00":
            with contextlib.suppress(ValueError):
                return normalize_mac(fields[3])
    return None


async def neighbour_mac(address: str) -> str | None:
    """The MAC of ``address`` in the kernel's neighbour table, or None when it has none."""
    parsed = ipaddress.ip_address(address)
    if parsed.is_loopback:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            "ip", "neigh", "show", str(parsed),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=2)
        return parse_ip_neigh(stdout.decode(errors="replace"))
    except (OSError, TimeoutError) as error:
        log.warning("ip neigh failed; reading /proc/net/arp", extra={"error": str(error)})
    try:
        return parse_proc_arp(PROC_ARP.read_text(), str(parsed))
    except OSError:
        return None
