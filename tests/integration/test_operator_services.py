"""The operator against real dhcpd (OMAPI) and named (RFC 2136): a Site, then a takeover.

``reconciler operator run`` runs as processes inside the namespace that holds
dhcpd and named (their keys come from a labelled Secret); the Kubernetes API
is the stand-in of kube_apiserver.py (no kube-apiserver can run on these
machines), listening on that namespace's loopback. The takeover test runs two
replicas with kopf peering, SIGKILLs the active one in the middle of a large
apply, and checks that the standby converges from the state in ConfigMaps:
every host in dhcpd once, nothing orphaned, ledgers equal to the inventory.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine
from reconciler.inventory.sources import GitSource
from reconciler.operator.kube import Credentials, KubeClient
from reconciler.operator.statemap import StateMaps
from reconciler.watch.settings import load_watch_config
from tests.integration.dhcp_server import KEY_NAME, OMAPI_PORT
from tests.integration.kube_apiserver import RunningApiserver, apiserver
from tests.integration.netns import entered
from tests.integration.watch_live import ROOT, LiveWatchSite, live_watch_site, mac_of

pytestmark = pytest.mark.integration

NS = "sites"
SITE = f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/sites/lab"
LIFETIME = 3  # seconds a replica's peering record lives: how soon a standby takes over


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class Operated:
    """The live site, the stand-in apiserver in its namespace, and the operator processes."""

    def __init__(self, live: LiveWatchSite, api: RunningApiserver) -> None:
        self.live = live
        self.api = api
        self.kubeconfig = api.kubeconfig(live.workdir / "kubeconfig")
        self.client = KubeClient(Credentials(server=api.url))
        self.processes: list[subprocess.Popen[bytes]] = []

    def call(self, method: str, *args: Any) -> Any:
        with entered(self.live.pair.server):  # the apiserver listens on the namespace's loopback
            return getattr(self.client, method)(*args)

    def site(self) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.call("get", SITE)
        return result

    def start(self, priority: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": str(self.kubeconfig)}
        log = (self.live.workdir / f"operator-{priority}.log").open("ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.live.pair.server, sys.executable, "-c",
             "from reconciler.cli import main; main()", "--log-level", "info",
             "operator", "run", "--namespace", NS,
             "--work-dir", str(self.live.workdir / f"work-{priority}"),
             "--priority", str(priority), "--peering-lifetime", str(LIFETIME),
             "--liveness", f"http://127.0.0.1:{18000 + priority}/healthz"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def wait_applied(self, commit: str, *, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        site = None
        while time.monotonic() < deadline:
            site = self.site()
            status = (site or {}).get("status") or {}
            ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
            if (
                status.get("lastAppliedRevision") == commit
                and ready
                and ready[0]["status"] == "True"
            ):
                return status
            time.sleep(0.1)
        logs = "".join(
            p.read_text()[-2000:] for p in sorted(self.live.workdir.glob("operator-*.log"))
        )
        raise AssertionError(f"{commit[:12]} not applied in {timeout} s: {site}\n{logs}")


@pytest.fixture
def operated(as_root: None, tmp_path: Path) -> Iterator[Operated]:
    with live_watch_site(tmp_path) as live, apiserver(live.pair.server) as api:
        made = Operated(live, api)
        made.call(
            "create",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        )
        made.call(
            "create",
            f"/apis/kopf.dev/v1/namespaces/{NS}/kopfpeerings",
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": "reconciler-operator", "namespace": NS},
            },
        )
        made.call("create", f"/api/v1/namespaces/{NS}/secrets",
                  {"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "keys", "namespace": NS,
                                "labels": {"reconciler.dev/secret": "true"}},
                   "data": {"omapi": b64(tmp_path / "omapi.key"),
                            "tsig": b64(live.named.key_file)}})  # fmt: skip
        try:
            yield made
        finally:
            for process in made.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)


def create_site(operated: Operated) -> None:
    live = operated.live
    body = {
        "apiVersion": "reconciler.dev/v1alpha1", "kind": "Site",
        "metadata": {"name": "lab", "namespace": NS},
        "spec": {
            "source": {"url": str(live.repo), "ref": "main"},
            "interval": 1,
            "maxChangeFraction": 1.0,
            "boot": {"http_url": "http://10.23.0.2:8080", "tftp_server": "10.23.0.2"},
            "targets": [
                {"name": "dhcp", "type": "dhcp-omapi",
                 "settings": {"server": "127.0.0.1", "port": OMAPI_PORT, "key_name": KEY_NAME,
                              "leases_file": str(live.dhcpd.leases), "timeout": 5},
                 "secretRef": {"name": "keys", "items": {"key_file": "omapi"}}},
                {"name": "dns", "type": "dns-rfc2136",
                 "settings": {"server": "127.0.0.1", "port": live.named.port, "timeout": 5},
                 "secretRef": {"name": "keys", "items": {"key_file": "tsig"}}},
            ],
        },
    }  # fmt: skip
    operated.call("create", f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/sites", body)


def host_blocks(leases: Path) -> int:
    try:
        return leases.read_text(errors="replace").count("\nhost ")
    except FileNotFoundError:
        return 0


def test_a_site_puts_its_hosts_live_in_dhcpd_and_bind(operated: Operated) -> None:
    live = operated.live
    commit = live.commit({i: mac_of(i) for i in range(1, 41)}, "40 hosts")
    operated.start(priority=100)
    create_site(operated)
    status = operated.wait_applied(commit, timeout=90)
    assert {t["name"]: t["ok"] for t in status["targets"]} == {"dhcp": True, "dns": True}
    assert status["inventory"]["hosts"] == 40
    with entered(live.pair.server):
        assert live.named.query("node0040.cluster.example.", "A") == [
            str(ipaddress.IPv4Address("10.23.1.1") + 40)
        ]
    assert host_blocks(live.dhcpd.leases) >= 40
    site = operated.site()
    assert site is not None
    assert "omapi" not in str(site["status"]) and b64(live.workdir / "omapi.key") not in str(site)


def test_killing_the_active_replica_mid_apply_lets_the_standby_finish(
    operated: Operated,
) -> None:
    live = operated.live
    first = live.commit({i: mac_of(i) for i in range(1, 41)}, "40 hosts")
    active = operated.start(priority=100)
    operated.start(priority=50)
    create_site(operated)
    operated.wait_applied(first, timeout=90)
    baseline = host_blocks(live.dhcpd.leases)
    many = 2000
    second = live.commit({i: mac_of(i) for i in range(1, many + 1)}, "2000 hosts")
    deadline = time.monotonic() + 60
    while host_blocks(live.dhcpd.leases) < baseline + 200:
        assert active.poll() is None, "the active replica exited on its own"
        assert time.monotonic() < deadline, "the large apply never started"
        time.sleep(0.002)
    active.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert active.wait(timeout=10) == -signal.SIGKILL
    assert host_blocks(live.dhcpd.leases) < baseline + many  # it really died mid-apply

    status = operated.wait_applied(second, timeout=120)
    takeover = time.monotonic() - killed_at
    assert all(t["ok"] for t in status["targets"])
    print(f"standby applied the revision {takeover:.1f} s after the SIGKILL")

    # The state the standby left in the ConfigMaps: ledgers name exactly what the
    # inventory asks for, and a plan from it against live dhcpd and named is empty.
    restored = live.workdir / "restored"
    maps = StateMaps(operated.client, namespace=NS, site="lab", owner={})
    with entered(live.pair.server):
        maps.restore(restored)
    config, _ = load_watch_config(live.config_path)
    config = config.model_copy(update={"state_dir": restored})
    engine = Engine(config)
    state = engine.compile(engine.load(GitSource(live.repo, second, "")))
    for target in engine.targets:
        ledger = json.loads((restored / f"{target.name}.owned.json").read_text())
        assert set(ledger["owned"]) == {r.key for r in target.desired(state)}, target.name
    with entered(live.pair.server):
        plan = engine.plan(state, revision=second)
        assert live.named.query(f"node{many:04d}.cluster.example.", "A") == [
            str(ipaddress.IPv4Address("10.23.1.1") + many)
        ]
    for target_plan in plan.targets:
        assert target_plan.error is None
        assert target_plan.changes == (), f"{target_plan.target}: {target_plan.counts}"
