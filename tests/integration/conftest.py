"""Fixtures for integration tests: root check, namespace pairs, a real dhcpd and dhclient.

Everything a fixture starts lives in namespaces the fixture created and goes
away with them, whatever the test did. Run as root; without root or the
daemons these tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import RuntimeConfig
from reconciler.plan import TargetPlan
from reconciler.resources import DhcpHost, DhcpSubnet
from reconciler.targets.base import ApplyResult
from reconciler.targets.dhcp_conf import DhcpConfTarget
from reconciler.targets.dhcp_conf import build as build_conf
from reconciler.targets.dhcp_omapi import DhcpOmapiTarget
from reconciler.targets.dhcp_omapi import build as build_omapi
from tests.integration.dhcp_hosts import SUBNET, make_config, sync
from tests.integration.dhcp_server import KEY_NAME, OMAPI_PORT, DhcpClient, Dhcpd, write_key
from tests.integration.kea_site import kea_site  # noqa: F401
from tests.integration.named import named_server  # noqa: F401
from tests.integration.netns import NetnsPair, netns_pair
from tests.integration.node_lab import NodeBoots, NodeLab, kernels
from tests.integration.qemu_vm import QEMU
from tests.integration.watch_live import live_watch  # noqa: F401


@pytest.fixture(scope="session")
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")


@pytest.fixture
def make_pair(as_root: None) -> Iterator[Callable[..., NetnsPair]]:
    """Factory: ``make_pair(server_cidr=..., client_cidr=None)``; all pairs go at teardown."""
    with_pairs: list[NetnsPair] = []

    def make(*, server_cidr: str, client_cidr: str | None = None) -> NetnsPair:
        from tests.integration.netns import create_pair

        pair = create_pair(server_cidr=server_cidr, client_cidr=client_cidr)
        with_pairs.append(pair)
        return pair

    yield make
    for pair in reversed(with_pairs):
        pair.destroy()


@dataclass
class DhcpSite:
    """A running dhcpd configured by the dhcp-conf target, driven by the dhcp-omapi target."""

    pair: NetnsPair
    dhcpd: Dhcpd
    client: DhcpClient
    config: RuntimeConfig
    conf: DhcpConfTarget
    omapi: DhcpOmapiTarget
    workdir: Path

    def sync_hosts(self, hosts: Sequence[DhcpHost]) -> tuple[TargetPlan, ApplyResult]:
        return sync(self.omapi, hosts=hosts, namespace=self.pair.server)

    def sync_subnets(self, subnets: Sequence[DhcpSubnet]) -> tuple[TargetPlan, ApplyResult]:
        return sync(self.conf, subnets=subnets, namespace=self.pair.server)


@pytest.fixture
def dhcp_site(as_root: None, tmp_path: Path) -> Iterator[DhcpSite]:
    """dhcpd in a namespace with the test subnet, its config rendered by dhcp-conf."""
    if not Path("/usr/sbin/dhcpd").exists() or not Path("/usr/sbin/dhclient").exists():
        pytest.skip("isc-dhcp-server / isc-dhcp-client are not installed")
    with netns_pair(server_cidr="10.23.45.2/24") as pair:
        dhcpd = Dhcpd(pair, tmp_path)
        write_key(tmp_path / "omapi.key")
        config = make_config(tmp_path)
        conf = build_conf(
            "dhcpd-conf",
            {
                "path": str(dhcpd.conf),
                "omapi_port": OMAPI_PORT,
                "omapi_key_name": KEY_NAME,
                "omapi_key_file": "omapi.key",
                "restart_command": str(dhcpd.restart_script),
            },
            config,
        )
        omapi = build_omapi(
            "dhcpd-hosts",
            {
                "server": "127.0.0.1",
                "port": OMAPI_PORT,
                "key_name": KEY_NAME,
                "key_file": "omapi.key",
                "leases_file": str(dhcpd.leases),
                "timeout": 5,
            },
            config,
        )
        assert isinstance(conf, DhcpConfTarget) and isinstance(omapi, DhcpOmapiTarget)
        conf.settings = conf.settings.model_copy(update={"restart_command": None})
        sync(conf, subnets=[SUBNET], namespace=pair.server)
        conf.settings = conf.settings.model_copy(
            update={"restart_command": str(dhcpd.restart_script)}
        )
        dhcpd.start()
        client = DhcpClient(pair, tmp_path / "client")
        yield DhcpSite(pair, dhcpd, client, config, conf, omapi, tmp_path)


@pytest.fixture
def node_lab(
    as_root: None, make_pair: Callable[..., NetnsPair], tmp_path: Path
) -> Iterator[NodeLab]:
    """A live-swap site (dhcpd, serve, image store) for qemu nodes (tests/integration/node_lab)."""
    needed = [QEMU, Path("/usr/bin/mksquashfs"), Path("/bin/busybox"), Path("/usr/sbin/dhcpd")]
    missing = [str(path) for path in needed if not path.exists()]
    if missing or len(kernels()) < 2 or not Path("/dev/net/tun").exists():
        pytest.skip(
            f"needs qemu, squashfs-tools, busybox-static, dhcpd, tun, two kernels: {missing}"
        )
    lab = NodeLab(make_pair(server_cidr="10.23.45.2/24"), tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def node_boots(tmp_path_factory: pytest.TempPathFactory) -> NodeBoots:
    """The host's kernels with the project's initramfs, each built once a session."""
    return NodeBoots(tmp_path_factory.mktemp("node-boots"))
