"""A running Kea + control agent + PostgreSQL in a namespace, driven by the two Kea targets.

The Kea tests share this fixture: a private PostgreSQL cluster (as the
``postgres`` user) with Kea's schema, kea-dhcp4 started on a config the
``kea-conf`` target rendered with no subnets, then the test subnet set
through the control agent by a first ``kea-conf`` pass, and a dhclient in the
client namespace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.plan import TargetPlan
from reconciler.resources import DhcpHost, DhcpSubnet
from reconciler.sandbox.kea import AGENT_USER, KeaServer
from reconciler.sandbox.netns import MissingTool
from reconciler.sandbox.postgres import PostgresCluster
from reconciler.targets.base import ApplyResult
from reconciler.targets.kea_conf import KeaConfTarget
from reconciler.targets.kea_conf import build as build_conf
from reconciler.targets.kea_hosts import KeaHostsTarget
from reconciler.targets.kea_hosts import build as build_hosts
from tests.integration.dhcp_hosts import SUBNET, make_config, sync
from tests.integration.dhcp_server import DhcpClient
from tests.integration.netns import NetnsPair, netns_pair


@dataclass
class KeaSite:
    pair: NetnsPair
    kea: KeaServer
    postgres: PostgresCluster
    client: DhcpClient
    conf: KeaConfTarget
    hosts: KeaHostsTarget
    workdir: Path

    subnet: DhcpSubnet

    def sync_hosts(
        self, hosts: Sequence[DhcpHost], subnets: Sequence[DhcpSubnet] | None = None
    ) -> tuple[TargetPlan, ApplyResult]:
        return sync(
            self.hosts,
            subnets=(self.subnet,) if subnets is None else subnets,
            hosts=hosts,
            namespace=self.pair.server,
            adopt=False,  # kea-hosts adopts only when told to
        )

    def sync_subnets(self, subnets: Sequence[DhcpSubnet]) -> tuple[TargetPlan, ApplyResult]:
        return sync(self.conf, subnets=subnets, namespace=self.pair.server)

    def sql(self, statement: str) -> str:
        return self.postgres.psql(statement, database=self.postgres.database)


def target_settings(
    *, kea: KeaServer, postgres: PostgresCluster, interface: str
) -> tuple[dict[str, object], dict[str, object]]:
    """Settings of the kea-conf and kea-hosts targets for this Kea and database."""
    database = {
        "db_host": "127.0.0.1",
        "db_port": postgres.port,
        "db_name": postgres.database,
        "db_user": postgres.user,
        "db_password_file": "kea-db.password",
    }
    conf = {
        **database,
        "control_agent_url": kea.agent_url,
        "control_agent_user": AGENT_USER,
        "control_agent_password_file": str(kea.agent_password_file),
        "interfaces": [interface],
        "control_socket": str(kea.socket),
        "timeout": 20,
    }
    return conf, database


def kea_and_database(pair: NetnsPair, workdir: Path) -> tuple[KeaServer, PostgresCluster]:
    """Kea (in ``workdir/kea``) and a private PostgreSQL cluster in the pair's server
    namespace, neither started; both go with the pair. Skips the test when a tool is missing."""
    try:
        postgres = PostgresCluster(namespace=pair.server)
        kea = KeaServer(pair, workdir / "kea")
    except MissingTool as error:
        pytest.skip(str(error))
    pair.on_cleanup(postgres.close)
    return kea, postgres


@pytest.fixture
def kea_site(as_root: None, tmp_path: Path) -> Iterator[KeaSite]:
    with netns_pair(server_cidr="10.23.45.2/24") as pair:
        kea, postgres = kea_and_database(pair, tmp_path)
        postgres.start()
        postgres.write_password_file(tmp_path / "kea-db.password")
        config = make_config(tmp_path)
        conf_settings, host_settings = target_settings(
            kea=kea, postgres=postgres, interface=pair.server_if
        )
        conf = build_conf("kea-conf", conf_settings, config)
        hosts = build_hosts("kea-hosts", host_settings, config)
        kea.start(conf.render([]))
        plan, _ = sync(conf, subnets=[SUBNET], namespace=pair.server)
        assert plan.counts["create"] == 1
        client = DhcpClient(pair, tmp_path / "client")
        yield KeaSite(pair, kea, postgres, client, conf, hosts, tmp_path, SUBNET)
