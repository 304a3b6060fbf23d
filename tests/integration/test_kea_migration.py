"""docs/kea.md's migration, step by step: a running dhcpd site moves to Kea and back.

The site runs dhcpd (dhcp-conf + dhcp-omapi). Kea is staged beside it with no
interface (it holds the whole config and every reservation but answers
nobody), ``reconciler plan`` shows the Kea targets filling up while dhcpd's
stay unchanged; then dhcpd stops, Kea gets the interface, and a machine gets
its reserved address and name from Kea; then the way back.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.engine import Engine
from reconciler.sandbox.dhcp import KEY_NAME, OMAPI_PORT, DhcpClient, Dhcpd, write_key
from reconciler.sandbox.kea import AGENT_USER, KeaServer
from reconciler.sandbox.netns import NetnsPair, netns_pair, run_in, wait_for
from reconciler.sandbox.postgres import PostgresCluster
from reconciler.targets.kea_conf import KeaConfTarget
from tests.integration.kea_site import kea_and_database

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
HOST_MAC, HOST_IP, HOST_NAME = "52:54:00:12:34:0b", "10.23.45.11", "node011"


@dataclass
class Migration:
    pair: NetnsPair
    workdir: Path
    dhcpd: Dhcpd
    kea: KeaServer
    postgres: PostgresCluster
    client: DhcpClient

    @property
    def config_path(self) -> Path:
        return self.workdir / "reconciler.toml"

    def write_config(self, *, dhcpd: bool, kea: bool, kea_interfaces: list[str]) -> None:
        """The runtime config as the doc's steps have it (only the DHCP targets matter)."""
        text = (
            f'state_dir = "state"\n[source]\npath = "{self.workdir / "inventory"}"\n'
            '[boot]\nhttp_url = "http://10.23.45.2:8080"\ntftp_server = "10.23.45.2"\n'
        )
        if dhcpd:
            text += (
                f'[targets.dhcpd-conf]\ntype = "dhcp-conf"\npath = "{self.dhcpd.conf}"\n'
                f'omapi_port = {OMAPI_PORT}\nomapi_key_name = "{KEY_NAME}"\n'
                f'omapi_key_file = "omapi.key"\nrestart_command = "{self.dhcpd.restart_script}"\n'
                f'[targets.dhcp]\ntype = "dhcp-omapi"\nkey_file = "omapi.key"\n'
                f'leases_file = "{self.dhcpd.leases}"\ntimeout = 5\n'
            )
        if kea:
            database = f'db_port = {self.postgres.port}\ndb_password_file = "kea-db.password"\n'
            text += (
                f'[targets.kea-conf]\ntype = "kea-conf"\n{database}'
                f'control_agent_url = "{self.kea.agent_url}"\n'
                f'control_agent_user = "{AGENT_USER}"\n'
                f'control_agent_password_file = "{self.kea.agent_password_file}"\n'
                f"interfaces = {kea_interfaces!r}\n".replace("'", '"')
                + f'control_socket = "{self.kea.socket}"\n'
                f'[targets.kea-hosts]\ntype = "kea-hosts"\n{database}'
            )
        self.config_path.write_text(text)

    def cli(self, command: str) -> tuple[int, str]:
        """``reconciler <command> -c reconciler.toml`` in the server namespace."""
        argv = [
            "env", f"PYTHONPATH={PACKAGE_ROOT}", sys.executable, "-c",
            "from reconciler.cli import main; main()", command, "--config", str(self.config_path),
        ]  # fmt: skip
        result = run_in(self.pair.server, argv, timeout=120, check=False)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture
def migration(as_root: None, tmp_path: Path) -> Iterator[Migration]:
    with netns_pair(server_cidr="10.23.45.2/24") as pair:
        kea, postgres = kea_and_database(pair, tmp_path)
        shutil.copytree(EXAMPLE, tmp_path / "inventory")
        (tmp_path / "dhcp").mkdir()
        dhcpd = Dhcpd(pair, tmp_path / "dhcp")
        write_key(tmp_path / "omapi.key")
        site = Migration(pair, tmp_path, dhcpd, kea, postgres, DhcpClient(pair, tmp_path / "c"))
        # The starting point: a dhcpd site. The first apply writes dhcpd.conf and starts
        # dhcpd (dhcp-conf's restart command); OMAPI answers from the second on.
        site.write_config(dhcpd=True, kea=False, kea_interfaces=[])
        site.cli("apply")
        wait_for(dhcpd.running, timeout=10, what="dhcpd")
        code, out = site.cli("apply")
        assert code == 0, out
        yield site


def test_dhcpd_site_moves_to_kea_and_back(migration: Migration) -> None:
    site = migration
    lease = site.client.lease(HOST_MAC)
    assert lease is not None and (lease.ip, lease.hostname) == (HOST_IP, HOST_NAME)

    # Step 1: PostgreSQL with Kea's schema, Kea started with no interface.
    site.postgres.start()
    site.postgres.write_password_file(site.workdir / "kea-db.password")
    site.write_config(dhcpd=True, kea=True, kea_interfaces=[])
    conf = next(t for t in Engine(load_config(site.config_path)).targets if t.name == "kea-conf")
    assert isinstance(conf, KeaConfTarget)
    site.kea.start(conf.render([]))

    # Step 2: plan shows the Kea targets filling up and nothing for dhcpd; apply.
    code, out = site.cli("plan")
    assert code == 1, out
    assert "kea-conf" in out and "kea-hosts" in out and HOST_NAME in out
    code, out = site.cli("apply")
    assert code == 0, out
    code, out = site.cli("plan")
    assert code == 0, out  # Kea staged and in step; dhcpd untouched
    rows = site.postgres.psql("SELECT count(*) FROM hosts", database=site.postgres.database)
    assert int(rows) >= 8
    lease = site.client.lease(HOST_MAC)  # still dhcpd answering: Kea has no interface
    assert lease is not None and lease.ip == HOST_IP

    # Step 3: the switch. dhcpd off, Kea gets the interface; plan shows it first.
    site.dhcpd.stop()
    site.write_config(dhcpd=False, kea=True, kea_interfaces=[site.pair.server_if])
    code, out = site.cli("plan")
    assert code == 1 and "kea-conf" in out, out
    code, out = site.cli("apply")
    assert code == 0, out
    kea_pid = site.kea.pid()
    lease = site.client.lease(HOST_MAC)
    assert lease is not None and (lease.ip, lease.hostname) == (HOST_IP, HOST_NAME)
    assert not site.dhcpd.running() and site.kea.pid() == kea_pid

    # The way back: Kea lets go of the interface, then dhcpd starts again.
    site.write_config(dhcpd=False, kea=True, kea_interfaces=[])
    code, out = site.cli("apply")
    assert code == 0, out
    assert site.client.lease(HOST_MAC, timeout=4) is None  # nobody answers in between
    site.dhcpd.start()
    site.write_config(dhcpd=True, kea=True, kea_interfaces=[])
    code, out = site.cli("plan")
    assert code == 0, out  # dhcpd still holds every host it had
    lease = site.client.lease(HOST_MAC)
    assert lease is not None and (lease.ip, lease.hostname) == (HOST_IP, HOST_NAME)
    assert os.path.exists(site.dhcpd.pidfile)
