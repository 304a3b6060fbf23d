"""SIGKILL in the middle of a large apply, then a restart: live state converges exactly.

Real dhcpd (dhcp-omapi target) and named (dns-rfc2136 target) in a namespace;
``reconciler watch`` runs as a subprocess there and is killed with SIGKILL
while it creates a few thousand OMAPI hosts. After a restart the live state
must equal the inventory: nothing missing, no host left twice (old MACs of
changed hosts), nothing left of removed hosts, and ledgers that list exactly
what the inventory asks for.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.targets.dhcp_omapi import DhcpOmapiTarget
from reconciler.watch.settings import load_watch_config
from tests.integration.dhcp_server import DhcpClient
from tests.integration.netns import entered
from tests.integration.watch_live import LiveWatchSite, mac_of

pytestmark = pytest.mark.integration

FIRST = 40
SECOND = 2500


def host_blocks(leases: Path) -> int:
    try:
        return leases.read_text(errors="replace").count("\nhost ")
    except FileNotFoundError:
        return 0


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_sigkill_mid_apply_then_restart_converges(live_watch: LiveWatchSite) -> None:
    first_hosts = {i: mac_of(i) for i in range(1, FIRST + 1)}
    c1 = live_watch.commit(first_hosts, "first 40 hosts")
    watch = live_watch.start_watch()
    try:
        live_watch.wait_applied(c1, timeout=30)
        # A large change: 5 removed, 5 new NICs, thousands added.
        second = {i: mac_of(i) for i in range(6, SECOND + 1)}
        for i in range(6, 11):
            second[i] = mac_of(i, generation=1)
        baseline = host_blocks(live_watch.dhcpd.leases)
        c2 = live_watch.commit(second, "5 removed, 5 new NICs, many added")
        deadline = time.monotonic() + 30
        while host_blocks(live_watch.dhcpd.leases) < baseline + 300:
            assert watch.poll() is None, "watch exited on its own"
            assert time.monotonic() < deadline, "the large apply never started"
            time.sleep(0.002)
        watch.send_signal(signal.SIGKILL)
        assert watch.wait(timeout=10) == -signal.SIGKILL
    finally:
        stop(watch)
    killed = live_watch.store.load()
    assert killed.applied_revision == c1  # it really died mid-apply
    assert host_blocks(live_watch.dhcpd.leases) < baseline + SECOND

    again = live_watch.start_watch()
    try:
        status = live_watch.wait_applied(c2, timeout=60)
        assert all(t.ok and t.revision == c2 for t in status.targets.values())
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
    finally:
        stop(again)

    config, _ = load_watch_config(live_watch.config_path)
    engine = Engine(config)
    state = engine.compile(engine.load())
    with entered(live_watch.pair.server):
        plan = engine.plan(state, revision=c2)
        omapi = next(t for t in engine.targets if isinstance(t, DhcpOmapiTarget))
        with omapi.session() as session:
            removed = session.lookup_hosts_by_name([f"node{i:04d}" for i in range(1, 6)])
            old_macs = session.lookup_hosts_by_mac([mac_of(i) for i in range(1, 11)])
            by_name = session.lookup_hosts_by_name([f"node{i:04d}" for i in (6, 10, SECOND)])
    for target_plan in plan.targets:
        assert target_plan.error is None
        assert target_plan.changes == (), f"{target_plan.target}: {target_plan.counts}"
        # Only the zones' own records (SOA, NS, ns1) that the fixture made are not ours.
        assert [k for k in target_plan.unmanaged if "node" in k] == []
    assert removed == {} and old_macs == {}  # no orphan, no duplicate
    assert by_name[f"node{SECOND:04d}"].mac == mac_of(SECOND)
    assert by_name["node0006"].mac == mac_of(6, generation=1)
    for target in engine.targets:
        ledger = json.loads(
            (live_watch.workdir / "state" / f"{target.name}.owned.json").read_text()
        )
        assert set(ledger["owned"]) == {r.key for r in target.desired(state)}, target.name
    last = next(h for h in state.dhcp_hosts if h.hostname == f"node{SECOND:04d}")
    with entered(live_watch.pair.server):
        assert live_watch.named.query(f"{last.hostname}.cluster.example.", "A") == [last.ip]
        assert live_watch.named.query("node0001.cluster.example.", "A") == []
    # What a machine really gets: the new NIC of node0007 is served its address.
    lease = DhcpClient(live_watch.pair, live_watch.workdir / "client").lease(
        mac_of(7, generation=1)
    )
    assert lease is not None and lease.hostname == "node0007"
