"""A new site with real dhcpd: the first apply starts it, removals converge, plans go quiet.

Nothing runs before the first apply: no dhcpd.conf, an empty leases file.
``reconciler apply`` runs inside the server namespace (OMAPI on its loopback)
with the dhcp-conf target (which writes dhcpd.conf and starts dhcpd with its
restart_command) and the dhcp-omapi target (hosts over OMAPI). dhclient in
the other namespace proves what machines really get.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.sandbox.dhcp import KEY_NAME, OMAPI_PORT, DhcpClient, Dhcpd, write_key
from reconciler.sandbox.netns import NetnsPair, run_in
from tests.unit.site_fixture import EXAMPLE

pytestmark = pytest.mark.integration
RECONCILER = str(Path(sys.executable).with_name("reconciler"))
NODE010, NODE011 = "52:54:00:12:34:0a", "52:54:00:12:34:0b"


def write_site(root: Path, dhcpd: Dhcpd) -> Path:
    shutil.copytree(EXAMPLE, root / "inventory")
    write_key(root / "omapi.key")
    config = root / "reconciler.toml"
    config.write_text(
        f"""state_dir = "state"
[source]
path = "inventory"
[boot]
http_url = "http://10.23.45.2:8080"
tftp_server = "10.23.45.2"
[targets.dhcpd]
type = "dhcp-conf"
path = "{dhcpd.conf}"
omapi_port = {OMAPI_PORT}
omapi_key_name = "{KEY_NAME}"
omapi_key_file = "omapi.key"
restart_command = "{dhcpd.restart_script}"
[targets.hosts]
type = "dhcp-omapi"
port = {OMAPI_PORT}
key_name = "{KEY_NAME}"
key_file = "omapi.key"
leases_file = "{dhcpd.leases}"
timeout = 5
"""
    )
    return config


def reconciler(pair: NetnsPair, *args: str) -> tuple[int, str]:
    done = run_in(pair.server, [RECONCILER, *args], check=False, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def fresh(
    make_pair: Callable[..., NetnsPair], tmp_path: Path
) -> tuple[NetnsPair, Dhcpd, DhcpClient, Path]:
    if not Path("/usr/sbin/dhcpd").exists() or not Path("/usr/sbin/dhclient").exists():
        pytest.skip("isc-dhcp-server / isc-dhcp-client are not installed")
    pair = make_pair(server_cidr="10.23.45.2/24")
    dhcpd = Dhcpd(pair, tmp_path)
    config = write_site(tmp_path, dhcpd)
    return pair, dhcpd, DhcpClient(pair, tmp_path / "client"), config


def test_first_apply_of_a_fresh_site_starts_dhcpd_and_adds_the_hosts(
    fresh: tuple[NetnsPair, Dhcpd, DhcpClient, Path],
) -> None:
    pair, dhcpd, client, config = fresh
    assert not dhcpd.running() and not dhcpd.conf.exists()
    code, output = reconciler(pair, "apply", "-c", str(config))
    assert code == 0, output
    assert dhcpd.running()
    lease = client.lease(NODE010)
    assert lease is not None and (lease.ip, lease.hostname) == ("10.23.45.10", "node010")
    code, output = reconciler(pair, "plan", "-c", str(config))
    assert code == 0, output  # right after an apply: nothing to do


def test_a_removed_host_leaves_dhcpd_and_the_next_plan_is_empty(
    fresh: tuple[NetnsPair, Dhcpd, DhcpClient, Path],
) -> None:
    pair, dhcpd, client, config = fresh
    assert reconciler(pair, "apply", "-c", str(config))[0] == 0
    group = config.parent / "inventory" / "groups" / "compute.yaml"
    group.write_text(group.read_text().replace(f'  - index: 11\n    mac: "{NODE011}"\n', ""))
    code, output = reconciler(pair, "apply", "-c", str(config))
    assert code == 0, output
    assert "node011" in output  # the plan showed its removal
    code, output = reconciler(pair, "plan", "-c", str(config))
    assert code == 0, output
    # Also after dhcpd restarts from its leases file, the host stays gone.
    dhcpd.restart()
    code, output = reconciler(pair, "plan", "-c", str(config))
    assert code == 0, output
    lease = client.lease(NODE011)
    assert lease is not None and lease.ip != "10.23.45.11" and lease.hostname != "node011"
