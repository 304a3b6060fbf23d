"""The dhcp-conf target: rendering, reading back, checking, restarting only on change."""

from __future__ import annotations

import base64
import dataclasses
import shutil
import sys
from pathlib import Path

import pytest

from reconciler.config import BootConfig, RuntimeConfig, SourceConfig
from reconciler.plan import TargetPlan, build_target_plan
from reconciler.resources import DesiredState, DhcpSubnet
from reconciler.targets.base import ApplyResult, TargetError
from reconciler.targets.dhcp_conf import DhcpConfTarget, build, subnets_from_json, subnets_to_json

SECRET = base64.b64encode(b"s" * 32).decode()
SUBNET = DhcpSubnet(
    "10.23.45.0/24", "10.23.45.1", 3600, "cluster.example", ("10.23.45.200", "10.23.45.250"),
    ("compute", "login"),
)  # fmt: skip
OTHER = DhcpSubnet("10.9.0.0/16", "10.9.0.1", 600, "cluster.example", None, ("gpu",))
HAVE_DHCPD = shutil.which("dhcpd") or Path("/usr/sbin/dhcpd").exists()


def make(tmp_path: Path, **settings: object) -> DhcpConfTarget:
    (tmp_path / "omapi.key").write_text(SECRET + "\n")
    restarts = tmp_path / "restarts"
    config = RuntimeConfig(
        source=SourceConfig(path=tmp_path),
        state_dir=tmp_path / "state",
        boot=BootConfig(http_url="http://10.23.45.2:8080/", tftp_server="10.23.45.2"),
        base_dir=tmp_path,
    )
    defaults: dict[str, object] = {
        "path": "dhcpd.conf",
        "omapi_key_file": "omapi.key",
        "check_command": "/usr/sbin/dhcpd -t -cf {path}" if HAVE_DHCPD else "true",
        "restart_command": f"{sys.executable} -c \"open('{restarts}', 'a').write('x')\"",
    }
    return build("dhcpd", {**defaults, **settings}, config)


def restarts(tmp_path: Path) -> int:
    path = tmp_path / "restarts"
    return len(path.read_text()) if path.exists() else 0


def sync(target: DhcpConfTarget, subnets: list[DhcpSubnet]) -> tuple[TargetPlan, ApplyResult]:
    desired = target.desired(DesiredState(dhcp_subnets=tuple(subnets)))
    plan = build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=target.read(desired)
    )
    return plan, target.apply(plan.changes)


def test_json_round_trip() -> None:
    assert subnets_from_json(subnets_to_json([SUBNET, OTHER])) == [SUBNET, OTHER]


def test_render_has_the_structure(tmp_path: Path) -> None:
    text = make(tmp_path, include="hosts.conf").render([SUBNET])
    for expected in (
        "subnet 10.23.45.0 netmask 255.255.255.0 {",
        "option routers 10.23.45.1;",
        'option domain-name "cluster.example";',
        "default-lease-time 3600;",
        "range 10.23.45.200 10.23.45.250;",
        "allow unknown-clients;",
        "next-server 10.23.45.2;",
        'filename "http://10.23.45.2:8080/boot.ipxe";',
        "option arch = 00:07 or option arch = 00:09",
        'filename "ipxe.efi";',
        'filename "undionly.kpxe";',
        "omapi-port 7911;",
        "omapi-key omapi_key;",
        f'include "{tmp_path / "hosts.conf"}";',
    ):
        assert expected in text, expected
    no_omapi = make(tmp_path, omapi_port=None).render([OTHER])
    assert "omapi-port" not in no_omapi and "secret" not in no_omapi
    assert "range " not in no_omapi and "include " not in no_omapi


def test_apply_restarts_only_on_change_and_reads_back(tmp_path: Path) -> None:
    target = make(tmp_path)
    plan, result = sync(target, [SUBNET, OTHER])
    assert plan.counts["create"] == 2 and result.writes == 1 and result.restarted
    assert restarts(tmp_path) == 1
    assert (target.path.stat().st_mode & 0o777) == 0o640  # it holds the OMAPI secret
    plan, result = sync(target, [SUBNET, OTHER])
    assert plan.changes == () and result.writes == 0 and restarts(tmp_path) == 1
    plan, result = sync(target, [dataclasses.replace(SUBNET, lease_time=60)])
    assert plan.counts == {"delete": 1, "create": 0, "update": 1}
    assert result.restarted and restarts(tmp_path) == 2
    assert "10.9.0.0" not in target.path.read_text()


def test_settings_change_rewrites_through_adoption(tmp_path: Path) -> None:
    sync(make(tmp_path), [SUBNET])
    plan, result = sync(make(tmp_path, omapi_port=7912), [SUBNET])
    assert [(c.action.value, c.adopt) for c in plan.changes] == [("update", True)]
    assert "omapi-port 7912;" in make(tmp_path).path.read_text() and result.restarted


def test_a_hand_made_file_is_kept_aside(tmp_path: Path) -> None:
    target = make(tmp_path)
    target.path.write_text("# hand made\nsubnet 10.0.0.0 netmask 255.0.0.0 { }\n")
    _, result = sync(target, [SUBNET])
    backup = tmp_path / "dhcpd.conf.before-reconciler"
    assert backup.read_text().startswith("# hand made") and result.notes


@pytest.mark.skipif(not HAVE_DHCPD, reason="dhcpd is not installed")
def test_rejected_config_leaves_the_old_one(tmp_path: Path) -> None:
    target = make(tmp_path)
    sync(target, [SUBNET])
    before = target.path.read_text()
    bad = dataclasses.replace(SUBNET, unregistered_range=("10.99.0.1", "10.99.0.9"))
    with pytest.raises(TargetError) as caught:
        sync(target, [bad])
    message = str(caught.value)
    assert "'dhcpd'" in message and "bad range" in message and SECRET not in message
    assert target.path.read_text() == before and restarts(tmp_path) == 1


def test_failing_restart_and_missing_key_are_target_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="restart dhcpd failed"):
        sync(make(tmp_path, restart_command="false"), [SUBNET])
    with pytest.raises(TargetError, match="cannot read the OMAPI key file"):
        sync(make(tmp_path, omapi_key_file="nope.key"), [SUBNET])
