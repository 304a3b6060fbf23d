"""The dhcp-omapi target without a server: settings, key handling, unreachable dhcpd."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.config import ConfigError, RuntimeConfig, SourceConfig
from reconciler.resources import DhcpHost
from reconciler.targets.base import Action, Change, TargetError
from reconciler.targets.dhcp_omapi import DhcpOmapiTarget, build

SECRET = "cmVjb25jaWxlci10ZXN0LWtleS0wMTIzNDU2Nzg5YWI="
HOST = DhcpHost("node020", "52:54:00:12:34:14", "10.23.45.20", "compute", "ipxe/a.ipxe")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make(tmp_path: Path, **settings: object) -> DhcpOmapiTarget:
    config = RuntimeConfig(
        source=SourceConfig(path=tmp_path), state_dir=Path("state"), base_dir=tmp_path
    )
    (tmp_path / "empty.leases").touch()
    defaults = {"key_file": "omapi.key", "leases_file": "empty.leases"}
    return build("dhcpd-hosts", {**defaults, **settings}, config)


def test_settings_need_a_key_file(tmp_path: Path) -> None:
    config = RuntimeConfig(source=SourceConfig(path=tmp_path))
    with pytest.raises(ConfigError, match=r"targets\.dhcpd-hosts\.key_file"):
        build("dhcpd-hosts", {}, config)


def test_unreadable_and_empty_key_files(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read the OMAPI key file"):
        make(tmp_path).read([HOST])
    (tmp_path / "omapi.key").write_text("\n")
    with pytest.raises(TargetError, match="is empty"):
        make(tmp_path).read([HOST])


def test_unreachable_dhcpd_names_target_and_address(tmp_path: Path) -> None:
    (tmp_path / "omapi.key").write_text(SECRET)
    port = free_port()
    with pytest.raises(TargetError) as caught:
        make(tmp_path, server="127.0.0.1", port=port, timeout=2).read([HOST])
    message = str(caught.value)
    assert "dhcpd-hosts" in message and f"127.0.0.1:{port}" in message
    assert SECRET not in message


def test_bad_base64_secret(tmp_path: Path) -> None:
    (tmp_path / "omapi.key").write_text("not base64 !!")
    with socket.socket() as listener:  # something to connect to on loopback
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TargetError) as caught:
            make(tmp_path, port=port, timeout=1).read([HOST])
    assert "not base64 !!" not in str(caught.value)


def test_leases_file_is_read_for_hosts_beyond_the_inventory(tmp_path: Path) -> None:
    leases = tmp_path / "dhcpd.leases"
    leases.write_text(
        "host other {\n  dynamic;\n  hardware ethernet 52:54:00:00:00:01;\n"
        "  fixed-address 10.23.45.77;\n}\n"
    )
    target = make(tmp_path, leases_file="dhcpd.leases")
    blocks = target._leases()
    assert list(blocks) == ["other"] and blocks["other"].ip == "10.23.45.77"


def test_hosts_adopted_as_they_are_are_recorded_without_any_write(tmp_path: Path) -> None:
    """No dhcpd runs here: adopting an identical host must not even connect."""
    target = make(tmp_path, port=free_port(), timeout=1)
    adopted = Change(Action.UPDATE, "node020", HOST, HOST, adopt=True)
    result = target.apply([adopted])
    assert (result.applied, result.writes) == (1, 0)
    assert target.ledger.load() == {"node020"}
    differing = Change(Action.UPDATE, "node020", HOST, replace(HOST, ip="10.23.45.21"), adopt=True)
    with pytest.raises(TargetError, match="dhcpd-hosts"):
        target.apply([differing])  # a real takeover writes: no dhcpd to write to


def test_config_file_gives_declared_hosts_their_own_boot_statements(tmp_path: Path) -> None:
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(
        'subnet 10.23.45.0 netmask 255.255.255.0 { filename "pxelinux.0"; }\n'
        'group { filename "legacy/pxelinux.0"; next-server 10.23.45.9;\n'
        "  host old021 { hardware ethernet 52:54:00:12:34:15; fixed-address 10.23.45.21; }\n"
        "}\n"
        "host node020 { hardware ethernet 52:54:00:12:34:14; fixed-address 10.23.45.20; }\n"
    )
    (tmp_path / "omapi.key").write_text(SECRET)
    target = make(tmp_path, config_file="dhcpd.conf")
    assert target.declared is not None
    declared = target.declared.hosts()
    assert declared["old021"].filename == "legacy/pxelinux.0"
    assert declared["old021"].next_server == "10.23.45.9"
    assert (declared["node020"].filename, declared["node020"].next_server) == ("", "")
    assert target.declared.hosts() is declared  # unchanged file: not parsed again
    conf.write_text("host broken { hardware ethernet 52:54:00:12:34:14\n")
    with pytest.raises(TargetError) as caught:
        target.declared.hosts()
    assert "dhcpd-hosts" in str(caught.value) and "dhcpd.conf:1" in str(caught.value)
