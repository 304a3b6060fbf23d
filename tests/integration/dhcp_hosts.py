"""The test subnet, its machines and one reconcile pass: what every DHCP server test shares.

The dhcpd (OMAPI, dhcp-conf) and Kea tests drive different servers with the
same inventory: the subnet 10.23.45.0/24 with its unregistered range, hosts
``node<index>`` at 10.23.45.<index>, a few MACs, and dhclient (in the client
namespace, ``DhcpClient``) asking for leases. A pass of a target runs inside
the server namespace, where the server and its control port are.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

from reconciler.config import BootConfig, RuntimeConfig, SourceConfig
from reconciler.plan import TargetPlan
from reconciler.resources import DesiredState, DhcpHost, DhcpSubnet
from reconciler.sandbox.one_pass import sync_target
from reconciler.targets.base import ApplyResult, Target

BOOT_URL = "http://10.23.45.2:8080"
SUBNET = DhcpSubnet(
    network="10.23.45.0/24",
    gateway="10.23.45.1",
    lease_time=600,
    domain="cluster.example",
    unregistered_range=("10.23.45.200", "10.23.45.250"),
    groups=("compute",),
)
MAC_A = "52:54:00:12:34:14"
MAC_B = "52:54:00:12:34:15"
MAC_NEW = "52:54:00:ab:cd:ef"  # node020's replaced NIC
MAC_UNKNOWN = "52:54:00:99:99:99"  # in no inventory: gets a pool address


def node(index: int, mac: str, ip: str | None = None) -> DhcpHost:
    """Host ``node<index>`` of group compute at 10.23.45.<index> (or ``ip``), its iPXE script."""
    return DhcpHost(
        hostname=f"node{index:03d}",
        mac=mac,
        ip=ip or f"10.23.45.{index}",
        group="compute",
        boot_filename=f"ipxe/{mac.replace(':', '-')}.ipxe",
    )


def in_pool(ip: str) -> bool:
    """Whether ``ip`` is in the test subnet's unregistered range (what unknown MACs get)."""
    assert SUBNET.unregistered_range is not None
    first, last = (ipaddress.IPv4Address(a) for a in SUBNET.unregistered_range)
    return first <= ipaddress.IPv4Address(ip) <= last


def make_config(workdir: Path) -> RuntimeConfig:
    return RuntimeConfig(
        source=SourceConfig(path=workdir),
        state_dir=workdir / "state",
        boot=BootConfig(http_url=BOOT_URL, tftp_server="10.23.45.2"),
        base_dir=workdir,
    )


def sync(
    target: Target,
    *,
    namespace: str,
    hosts: Sequence[DhcpHost] = (),
    subnets: Sequence[DhcpSubnet] = (),
    adopt: bool = True,
) -> tuple[TargetPlan, ApplyResult]:
    """One reconcile pass of one target towards ``hosts`` and ``subnets``, inside ``namespace``."""
    state = DesiredState(dhcp_hosts=tuple(hosts), dhcp_subnets=tuple(subnets))
    return sync_target(target, state, namespace=namespace, adopt=adopt)
