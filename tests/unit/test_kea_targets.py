"""The Kea targets' pure parts: the rendered Dhcp4 config, subnet ids, settings and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import ConfigError, RuntimeConfig, SourceConfig, TargetConfig
from reconciler.resources import DhcpSubnet
from reconciler.targets import build_target
from reconciler.targets.base import TargetError
from reconciler.targets.kea_conf import KeaConfTarget, subnet_id
from reconciler.targets.kea_hosts import KeaHostsTarget

SUBNET = DhcpSubnet(
    network="10.23.45.0/24",
    gateway="10.23.45.1",
    lease_time=600,
    domain="cluster.example",
    unregistered_range=("10.23.45.200", "10.23.45.250"),
    groups=("compute",),
)


def config(tmp_path: Path, **targets: dict[str, object]) -> RuntimeConfig:
    return RuntimeConfig(
        source=SourceConfig(path=tmp_path),
        base_dir=tmp_path,
        targets={name: TargetConfig.model_validate(t) for name, t in targets.items()},
    )


def conf_target(tmp_path: Path, **settings: object) -> KeaConfTarget:
    (tmp_path / "db.password").write_text("s3cret-pw\n")
    cfg = config(tmp_path, kea={"type": "kea-conf", "db_password_file": "db.password", **settings})
    target = build_target("kea", cfg.targets["kea"], cfg)
    assert isinstance(target, KeaConfTarget)
    return target


def test_subnet_ids_are_the_network_address() -> None:
    assert subnet_id("10.23.45.0/24") == 0x0A172D00
    assert subnet_id("10.23.45.7/24") == subnet_id("10.23.45.0/24")
    assert subnet_id("10.23.46.0/24") != subnet_id("10.23.45.0/24")


def test_render_has_stable_ids_pool_classes_and_host_database(tmp_path: Path) -> None:
    target = conf_target(tmp_path)
    dhcp4 = target.render([SUBNET])["Dhcp4"]
    [subnet] = dhcp4["subnet4"]
    assert subnet["id"] == subnet_id(SUBNET.network) and subnet["subnet"] == "10.23.45.0/24"
    assert subnet["pools"] == [{"pool": "10.23.45.200 - 10.23.45.250", "client-class": "UNKNOWN"}]
    hosts_db = dhcp4["hosts-database"]
    assert hosts_db["on-fail"] == "stop-retry-exit" and hosts_db["max-reconnect-tries"] >= 100_000
    assert hosts_db["password"] == "s3cret-pw"
    files = {c["name"]: c["boot-file-name"] for c in dhcp4["client-classes"]}
    assert files == {
        "ipxe": "http://127.0.0.1:8080/boot.ipxe",
        "uefi": "ipxe.efi",
        "bios": "undionly.kpxe",
    }
    assert target.render([SUBNET]) == target.render([SUBNET])  # same input, same config


def test_digest_follows_settings(tmp_path: Path) -> None:
    first = conf_target(tmp_path).render([SUBNET])["Dhcp4"]["user-context"]["reconciler"]
    other = conf_target(tmp_path, interfaces=["eth1"]).render([SUBNET])["Dhcp4"]
    assert first["digest"] != other["user-context"]["reconciler"]["digest"]


@pytest.mark.parametrize("password", ["it's", "back\\slash", "tab\there"])
def test_password_kea_cannot_quote_is_refused(tmp_path: Path, password: str) -> None:
    target = conf_target(tmp_path)
    (tmp_path / "db.password").write_text(password)
    with pytest.raises(TargetError) as caught:
        target.render([SUBNET])
    assert "db.password" in str(caught.value) and password not in str(caught.value)


def test_agent_user_without_password_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        conf_target(tmp_path, control_agent_user="admin")
    assert "control_agent_password_file" in str(caught.value)


def test_unknown_setting_names_the_target(tmp_path: Path) -> None:
    cfg = config(tmp_path, hosts={"type": "kea-hosts", "db_nmae": "kea"})
    with pytest.raises(ConfigError) as caught:
        build_target("hosts", cfg.targets["hosts"], cfg)
    assert "targets.hosts.db_nmae" in str(caught.value)


def test_host_outside_every_subnet_is_refused_before_any_write(tmp_path: Path) -> None:
    from reconciler.resources import DesiredState, DhcpHost
    from reconciler.targets.base import Action, Change

    cfg = config(tmp_path, hosts={"type": "kea-hosts"})
    target = build_target("hosts", cfg.targets["hosts"], cfg)
    assert isinstance(target, KeaHostsTarget)
    stray = DhcpHost("node9", "52:54:00:00:00:09", "192.168.9.9", "compute", "")
    target.desired(DesiredState(dhcp_hosts=(stray,), dhcp_subnets=(SUBNET,)))
    with pytest.raises(TargetError) as caught:
        target.apply([Change(Action.CREATE, "node9", None, stray)])
    assert "192.168.9.9" in str(caught.value) and "subnets" in str(caught.value)


def test_memfile_leases_with_their_file(tmp_path: Path) -> None:
    target = conf_target(tmp_path, lease_database="memfile", lease_file="/var/lib/kea/l4.csv")
    leases = target.render([SUBNET])["Dhcp4"]["lease-database"]
    assert leases == {"type": "memfile", "lfc-interval": 3600, "name": "/var/lib/kea/l4.csv"}
    default = conf_target(tmp_path).render([SUBNET])["Dhcp4"]["lease-database"]
    assert default["type"] == "postgresql" and default["on-fail"] == "stop-retry-exit"
