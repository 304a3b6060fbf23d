"""Drift on the live targets, through ``reconciler watch``: corrected, or only reported.

Real dhcpd (dhcp-omapi) and named (dns-rfc2136) in a namespace; an administrator
deletes a host over OMAPI and changes a record with nsupdate-style UPDATEs signed
with their own key. A target in "correct" mode puts its objects back at the next
drift pass; one in "report" mode leaves the hand edit and counts it as pending in
the status.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from reconciler.targets.omapi_client import OmapiSession
from reconciler.watch.status import Status
from tests.integration.dhcp_server import KEY_NAME, OMAPI_PORT
from tests.integration.netns import entered
from tests.integration.watch_live import LiveWatchSite, mac_of

pytestmark = pytest.mark.integration

HOSTS = {i: mac_of(i) for i in (1, 2, 3)}  # node000N is 10.23.1.(N+1)


def set_drift(site: LiveWatchSite, modes: str) -> None:
    text = site.config_path.read_text().replace("drift_interval = 3600", "drift_interval = 0.3")
    text = text.split("\ndrift = ")[0].rstrip("\n") + f"\ndrift = {modes}\n"
    site.config_path.write_text(text)


def omapi(site: LiveWatchSite) -> OmapiSession:
    secret = (site.workdir / "omapi.key").read_text().strip()
    return OmapiSession(host="127.0.0.1", port=OMAPI_PORT, key_name=KEY_NAME, secret=secret)


def delete_by_hand(site: LiveWatchSite, name: str) -> None:
    """What an administrator does with omshell: open the host by name, remove it."""
    with entered(site.pair.server), omapi(site) as session:
        (reply,) = session.pipeline([session.open_host(name=name)])
        assert reply.ok, reply
        (deleted,) = session.pipeline([session.delete(reply.handle)])
        assert deleted.ok, deleted
        assert session.lookup_hosts_by_name([name]) == {}


def in_dhcpd(site: LiveWatchSite, name: str) -> bool:
    with entered(site.pair.server), omapi(site) as session:
        return name in session.lookup_hosts_by_name([name])


def address_of(site: LiveWatchSite, name: str) -> list[str]:
    with entered(site.pair.server):
        return site.named.query(f"{name}.cluster.example.", "A")


def change_by_hand(site: LiveWatchSite, name: str, address: str) -> None:
    with entered(site.pair.server):
        site.named.hand_update(
            "cluster.example.", [("replace", f"{name}.cluster.example.", 300, f"A {address}")]
        )


def wait_until(what: str, check: Callable[[], bool], *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        time.sleep(0.05)


def after_passes(site: LiveWatchSite, count: int) -> Status:
    """The status once ``count`` more passes (drift passes included) have run."""
    start = site.store.load().passes
    wait_until(f"{count} more passes", lambda: site.store.load().passes >= start + count)
    return site.store.load()


def stop(watch: subprocess.Popen[bytes]) -> None:
    if watch.poll() is None:
        watch.send_signal(signal.SIGTERM)
        try:
            watch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait(timeout=10)


def test_drift_on_live_targets_is_corrected_or_only_reported(live_watch: LiveWatchSite) -> None:
    set_drift(live_watch, '{ dhcp = "correct", dns = "report" }')
    commit = live_watch.commit(HOSTS, "three hosts")
    watch = live_watch.start_watch()
    try:
        live_watch.wait_applied(commit, timeout=60)
        assert address_of(live_watch, "node0003") == ["10.23.1.4"]
        delete_by_hand(live_watch, "node0002")
        change_by_hand(live_watch, "node0003", "10.23.9.9")
        wait_until("dhcpd has node0002 again", lambda: in_dhcpd(live_watch, "node0002"))
        status = after_passes(live_watch, 2)
        assert status.targets["dns"].mode == "report" and status.targets["dns"].pending > 0
        assert address_of(live_watch, "node0003") == ["10.23.9.9"]  # reported, left alone
        assert status.targets["dhcp"].pending == 0
    finally:
        stop(watch)

    set_drift(live_watch, '{ dhcp = "report", dns = "correct" }')
    watch = live_watch.start_watch("watch-2.log")
    try:
        wait_until(
            "named has node0003 back", lambda: address_of(live_watch, "node0003") == ["10.23.1.4"]
        )
        live_watch.wait_applied(commit, timeout=60)
        delete_by_hand(live_watch, "node0001")
        change_by_hand(live_watch, "node0002", "10.23.9.8")
        wait_until(
            "the record of node0002 is put back",
            lambda: address_of(live_watch, "node0002") == ["10.23.1.3"],
        )
        status = after_passes(live_watch, 2)
        assert status.targets["dhcp"].mode == "report" and status.targets["dhcp"].pending > 0
        assert not in_dhcpd(live_watch, "node0001")  # reported, left alone
    finally:
        stop(watch)
