"""Warewulf 4 ``nodes.conf`` (YAML): nodes, their first network device, and its subnet.

A node's first device with a ``hwaddr`` is the one that boots; its netmask
and gateway declare the subnet. The node's first profile (other than
``default``) names its group.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from reconciler.importer.records import HostRecord, ImportFailure, Sources, SubnetRecord, Where
from reconciler.model.types import normalize_mac


def read_warewulf(path: Path, sources: Sources) -> None:
    """Warewulf 4 nodes.conf: ``nodes: {name: {network devices: {dev: {hwaddr, ipaddr}}}}``."""
    where = Where(str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ImportFailure(where, f"cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ImportFailure(Where(str(path), line), f"expected YAML: {error}") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        raise ImportFailure(where, "expected a 'nodes:' mapping (Warewulf 4 nodes.conf)")
    for name, node in nodes.items():
        devices = _get(node, "network devices") or {}
        if not isinstance(devices, dict):
            continue
        profiles = _get(node, "profiles") or []
        group = profiles[0] if isinstance(profiles, list) and profiles else None
        for device in devices.values():
            mac, address = _get(device, "hwaddr"), _get(device, "ipaddr")
            if not mac:
                continue
            _warewulf_subnet(sources, device, where)
            try:
                record = HostRecord(
                    mac=normalize_mac(str(mac)),
                    where=Where(str(path)),
                    address=ipaddress.IPv4Address(str(address)) if address else None,
                    name=str(name),
                    group=None if group in (None, "default") else str(group),
                )
            except ValueError as error:
                raise ImportFailure(where, f"node {name}: {error}") from None
            sources.hosts.append(record)
            break  # the first device with a MAC is the one that boots


def _warewulf_subnet(sources: Sources, device: Any, where: Where) -> None:
    """A device with an address and a netmask declares its subnet (and maybe its gateway)."""
    address, netmask, gateway = (_get(device, k) for k in ("ipaddr", "netmask", "gateway"))
    if not address or not netmask:
        return
    try:
        network = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
        router = ipaddress.IPv4Address(str(gateway)) if gateway else None
    except ValueError as error:
        raise ImportFailure(where, f"expected an address and netmask: {error}") from None
    known = next((s for s in sources.subnets if s.network == network), None)
    if known is None:
        sources.subnets.append(SubnetRecord(network, where, gateway=router))
    elif known.gateway is None:
        known.gateway = router


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None
