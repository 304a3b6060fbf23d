"""dhcpd's leases file: the ``host`` blocks dhcpd keeps for hosts made over OMAPI.

The same scanner the OMAPI target reads them with; a later ``deleted`` block
of a name removes the host, as dhcpd itself does on start.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from reconciler.importer.records import HostRecord, ImportFailure, Sources, Where
from reconciler.model.types import normalize_mac
from reconciler.targets.dhcp_hosts import iter_host_blocks


def read_leases(path: Path, sources: Sources) -> None:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise ImportFailure(Where(str(path)), f"cannot read: {error.strerror}") from None
    live: dict[str, HostRecord] = {}
    for block in iter_host_blocks(text):
        if block.deleted:
            live.pop(block.name, None)
            continue
        line = text.count("\n", 0, text.find(block.text)) + 1
        where = Where(str(path), line)
        try:
            mac = normalize_mac(block.mac)
        except ValueError:
            raise ImportFailure(where, f"expected a MAC address in host {block.name}") from None
        try:
            address = ipaddress.IPv4Address(block.ip) if block.ip else None
        except ValueError:
            raise ImportFailure(
                where, f"expected an IPv4 fixed-address in host {block.name}"
            ) from None
        live[block.name] = HostRecord(
            mac=mac,
            where=where,
            address=address,
            dhcp_name=block.name,
            filename=block.filename or None,
            next_server=block.next_server or None,
        )
    sources.hosts.extend(live.values())
