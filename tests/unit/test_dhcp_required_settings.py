"""Settings without which dhcpd never converges are required, and checked where they point."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import ConfigError, RuntimeConfig, SourceConfig
from reconciler.engine import in_service_order
from reconciler.resources import DhcpHost
from reconciler.targets.base import TargetError
from reconciler.targets.dhcp_conf import build as build_conf
from reconciler.targets.dhcp_omapi import build as build_omapi

HOST = DhcpHost(
    hostname="node010", mac="52:54:00:12:34:0a", ip="10.23.45.10", group="compute", boot_filename=""
)


def config(tmp_path: Path) -> RuntimeConfig:
    (tmp_path / "omapi.key").write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\n")
    return RuntimeConfig(source=SourceConfig(path=tmp_path), base_dir=tmp_path)


def test_dhcp_omapi_needs_the_leases_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"targets\.hosts\.leases_file.*(required|missing)"):
        build_omapi("hosts", {"key_file": "omapi.key"}, config(tmp_path))


def test_a_leases_file_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    target = build_omapi(
        "hosts", {"key_file": "omapi.key", "leases_file": "no/such.leases"}, config(tmp_path)
    )
    with pytest.raises(TargetError, match=r"no/such\.leases does not exist.*-lf"):
        target.read([HOST])


def test_dhcp_conf_needs_a_restart_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"targets\.dhcpd\.restart_command.*(required|missing)"):
        build_conf("dhcpd", {"path": "dhcpd.conf"}, config(tmp_path))
    with pytest.raises(ConfigError, match=r"restart_command"):
        build_conf("dhcpd", {"path": "dhcpd.conf", "restart_command": ""}, config(tmp_path))


def test_dhcp_conf_is_planned_and_applied_before_dhcp_omapi(tmp_path: Path) -> None:
    (tmp_path / "d.leases").touch()
    runtime = config(tmp_path)
    hosts = build_omapi("hosts", {"key_file": "omapi.key", "leases_file": "d.leases"}, runtime)
    conf = build_conf("conf", {"path": "dhcpd.conf", "restart_command": "true"}, runtime)
    assert [t.name for t in in_service_order([hosts, conf])] == ["conf", "hosts"]
    assert [t.name for t in in_service_order([conf, hosts])] == ["conf", "hosts"]
