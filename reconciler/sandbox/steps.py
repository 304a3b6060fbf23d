"""The sandbox demo's steps, each printed with its timing: bring the site up, then commit and prove.

``show_site`` starts the services one by one and waits (bounded) until each
answers; ``show_change`` commits a new host and records a ``Check`` per thing
a real machine would see, with the time since the commit. ``Narrator`` prints;
``Budget`` bounds every wait by what is left of the run's time.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from reconciler.resources import DesiredState, DhcpHost
from reconciler.sandbox.dhcp import KEY_NAME, OMAPI_PORT
from reconciler.sandbox.probes import dns_answer, http_get, set_client_address, tftp_fetch
from reconciler.sandbox.site import HTTP_PORT, SERVER_CIDR, SERVER_IP, TFTP_PORT, SandboxSite
from reconciler.watch.status import Status


@dataclass(frozen=True)
class Check:
    """One thing the demo proved (or failed to): what, whether, and how long after the commit."""

    name: str
    ok: bool
    detail: str
    after_commit: float | None = None


class Budget:
    """One deadline for the whole run; each wait takes at most what is left."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the sandbox's time budget is spent")
        return min(cap, remaining)


class Narrator:
    """Prints each step with the time since the start and the step's own duration."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _print(self, text: str) -> None:
        print(f"[{self.elapsed():6.2f}s] {text}", file=self.out, flush=True)

    def title(self, text: str) -> None:
        print(f"== {text}", file=self.out, flush=True)

    def step(self, text: str, *, seconds: float | None = None) -> None:
        self._print(text + (f"  ({seconds:.2f} s)" if seconds is not None else ""))

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def fail(self, text: str) -> None:
        self._print(f"FAILED: {text}")

    def check(self, check: Check) -> None:
        after = f"  (+{check.after_commit:.2f} s after the commit)" if check.after_commit else ""
        self._print(f"  {'PASS' if check.ok else 'FAIL'} {check.name}: {check.detail}{after}")

    def summary(self, checks: list[Check], *, latency: float | None, error: str | None) -> None:
        passed = sum(c.ok for c in checks)
        parts = [f"{passed}/{len(checks)} checks passed"] if checks else ["no checks ran"]
        if latency is not None:
            parts.append(f"commit applied by the watch loop in {latency:.2f} s")
        if error:
            parts.append(f"error: {error}")
        parts.append(f"{self.elapsed():.1f} s in all")
        self.title("; ".join(parts))


def _timed(started: float) -> float:
    return time.monotonic() - started


def wait_applied(site: SandboxSite, commit: str, *, timeout: float) -> Status:
    """Until the watch loop's status says ``commit`` is applied everywhere and Ready."""
    deadline = time.monotonic() + timeout
    watch = site.services["watch"]
    while True:
        status = site.store.load()
        ready = status.condition("Ready")
        if status.applied_revision == commit and ready is not None and ready.status:
            return status
        if watch.poll() is not None:
            raise RuntimeError(f"reconciler watch exited ({watch.returncode})")
        if time.monotonic() > deadline:
            errors = "; ".join(status.errors) or "no error reported"
            raise TimeoutError(f"{commit[:10]} not applied after {timeout:.0f} s: {errors}")
        time.sleep(0.02)


def show_site(site: SandboxSite, *, say: Narrator, budget: Budget, example: Path) -> int:
    """Start everything and print each step; the pid dhcpd started with."""
    server, client = site.namespaces
    say.step(
        f"folder {site.workdir}; namespaces {server} (server, {SERVER_CIDR}) and "
        f"{client} (client) joined by a veth"
    )
    started = time.monotonic()
    commit = site.make_repository(example)
    state = site.desired()
    say.step(
        f"inventory: {example} copied into a new git repository {site.repo}, "
        f"commit {commit[:10]} ({len(state.dhcp_hosts)} hosts)",
        seconds=_timed(started),
    )
    started = time.monotonic()
    zones = tuple(zone.name for zone in state.dns_zones)
    named = site.start_named(zones)
    say.step(
        f"named: {', '.join(zones)} dynamic (TSIG), on 127.0.0.1:{named.port} in {server}",
        seconds=_timed(started),
    )
    site.write_config()
    dhcp_targets = (
        "kea-conf (control agent), dhcp (Kea's PostgreSQL host database)"
        if site.kea is not None
        else "dhcpd-conf, dhcp (OMAPI)"
    )
    say.step(
        f"runtime config {site.config_path}: targets {dhcp_targets}, "
        "dns (RFC 2136), boot (TFTP root); [serve] and [watch] tables"
    )
    started = time.monotonic()
    site.start_tftpd()
    say.step(f"tftpd: {site.tftp_root} on {SERVER_IP}:{TFTP_PORT}", seconds=_timed(started))
    started = time.monotonic()
    pid = site.start_dhcp()
    if site.kea is not None:
        say.step(
            f"Kea: PostgreSQL {site.kea.postgres.bindir.parent.name} cluster with Kea's schema "
            f"(kea-admin db-init) on 127.0.0.1:{site.kea.postgres.port}; kea-dhcp4 (pid {pid}) "
            f"and its control agent on {site.kea.server.agent_url}; the kea-conf target set "
            f"{len(state.dhcp_subnets)} subnets (config-test, config-set, config-write)",
            seconds=_timed(started),
        )
    else:
        say.step(
            f"dhcpd: dhcpd.conf written by the dhcp-conf target ({len(state.dhcp_subnets)} "
            f"subnets), checked with dhcpd -t, started (pid {pid}); OMAPI on "
            f"127.0.0.1:{OMAPI_PORT} (key {KEY_NAME})",
            seconds=_timed(started),
        )
    started = time.monotonic()
    serve = site.start_service("serve")
    url = f"http://{SERVER_IP}:{HTTP_PORT}/healthz"
    while True:
        code, _ = http_get(server, url, timeout=1)
        if code in (200, 503):  # 503: up, no revision accepted yet (watch has not run)
            break
        if serve.poll() is not None:
            raise RuntimeError(f"reconciler serve exited ({serve.returncode})")
        time.sleep(min(0.1, budget.left(0.1)))
    say.step(
        f"reconciler serve: {url} answers (HTTP {code}: it serves only an accepted revision)",
        seconds=_timed(started),
    )
    started = time.monotonic()
    site.start_service("watch")
    status = wait_applied(site, commit, timeout=budget.left(30))
    targets = ", ".join(sorted(status.targets))
    say.step(
        f"reconciler watch: first pass applied {commit[:10]} to {targets} and accepted it; "
        f"{len(state.dhcp_hosts)} hosts live in {site.dhcp_server} and named",
        seconds=_timed(started),
    )
    return pid


def _pool(state: DesiredState, ip: str) -> tuple[str, str] | None:
    address = ipaddress.ip_address(ip)
    for subnet in state.dhcp_subnets:
        if address in ipaddress.ip_network(subnet.network):
            return subnet.unregistered_range
    return None


def _fqdn(state: DesiredState, host: DhcpHost) -> str:
    return next(r.name for r in state.dns_records if r.rtype == "A" and host.ip in r.values)


def show_change(
    site: SandboxSite,
    *,
    say: Narrator,
    budget: Budget,
    mac: str,
    group: str,
    index: int,
    dhcpd_pid: int,
    checks: list[Check],
) -> float | None:
    """Commit a new host with ``mac``, then prove it live; the commit-to-applied latency."""
    server, client_ns = site.namespaces
    client = site.client()

    def record(check: Check) -> None:
        checks.append(check)
        say.check(check)

    say.title(f"before: the machine with MAC {mac} is not in the inventory")
    started = time.monotonic()
    lease = client.lease(mac, timeout=budget.left(12))
    before = site.desired()
    pool = _pool(before, lease.ip) if lease else None
    v4 = ipaddress.IPv4Address
    in_pool = lease is not None and pool is not None and (
        v4(pool[0]) <= v4(lease.ip) <= v4(pool[1])
    )  # fmt: skip
    record(Check(
        "DHCP before", in_pool,
        f"dhclient got {lease.ip if lease else 'no lease'} from the unregistered pool "
        f"{pool[0] if pool else '?'}-{pool[1] if pool else '?'} ({_timed(started):.2f} s)",
    ))  # fmt: skip

    message = site.add_host(group=group, index=index, mac=mac)
    state = site.desired(None)  # the edited working tree, not committed yet
    host = site.host(state, mac)
    if host is None:
        raise RuntimeError(f"{mac} is not a host of the edited inventory")
    fqdn = _fqdn(state, host)
    assert site.named is not None
    answer = dns_answer(site.named, server, name=fqdn, rdtype="A")
    record(Check("DNS before", answer == [], f"{fqdn} -> {', '.join(answer) or 'no answer'}"))

    say.title(f"commit: {message}, then watch it land")
    committed = time.monotonic()
    commit = site.commit(message)
    say.step(f"git commit {commit[:10]} on main in {site.repo}")
    try:
        wait_applied(site, commit, timeout=budget.left(30))
        latency: float | None = _timed(committed)
        record(Check("watch", True, f"applied {commit[:10]} to every target", latency))
    except TimeoutError as error:
        latency = None
        record(Check("watch", False, str(error), _timed(committed)))

    lease = client.lease(mac, timeout=budget.left(12))
    got = f"{lease.ip} ({lease.hostname or 'no name'})" if lease else "no lease"
    record(Check(
        "DHCP", lease is not None and (lease.ip, lease.hostname) == (host.ip, host.hostname),
        f"dhclient with {mac} got {got}; the inventory says {host.ip} ({host.hostname})",
        _timed(committed),
    ))  # fmt: skip
    pid = site.dhcp_pid()
    how = "as a row of Kea's host database" if site.kea is not None else "over OMAPI"
    record(Check(
        "live", pid == dhcpd_pid,
        f"{site.dhcp_server} was not restarted (pid {dhcpd_pid} still serving): "
        f"the host went in {how}",
    ))  # fmt: skip
    answer = dns_answer(site.named, server, name=fqdn, rdtype="A")
    record(Check(
        "DNS A", answer == [host.ip], f"{fqdn} -> {', '.join(answer) or 'no answer'}",
        _timed(committed),
    ))  # fmt: skip
    reverse = ipaddress.ip_address(host.ip).reverse_pointer + "."
    answer = dns_answer(site.named, server, name=reverse, rdtype="PTR")
    record(Check(
        "DNS PTR", answer == [fqdn], f"{reverse} -> {', '.join(answer) or 'no answer'}",
        _timed(committed),
    ))  # fmt: skip
    if lease is not None:
        prefix = ipaddress.ip_network(_subnet(state, host)).prefixlen
        set_client_address(site.pair, f"{lease.ip}/{prefix}")
    path = "pxelinux.cfg/01-" + mac.replace(":", "-")
    content = tftp_fetch(
        client_ns, path, server=SERVER_IP, port=TFTP_PORT, workdir=site.workdir / "client"
    )
    record(Check(
        "TFTP", content is not None and f"hostname={host.hostname} " in content,
        f"the client fetched {path} from {SERVER_IP} "
        + ("(boots its image as " + host.hostname + ")" if content else "(refused)"),
        _timed(committed),
    ))  # fmt: skip
    url = f"http://{SERVER_IP}:{HTTP_PORT}/boot/{mac}"
    deadline = time.monotonic() + budget.left(10)
    while True:
        code, body = http_get(client_ns, url)
        if (code == 200 and host.hostname in body) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    record(Check(
        "HTTP", code == 200 and host.hostname in body,
        f"reconciler serve gives {url} the boot script of {host.hostname} (HTTP {code})",
        _timed(committed),
    ))  # fmt: skip
    return latency


def _subnet(state: DesiredState, host: DhcpHost) -> str:
    address = ipaddress.ip_address(host.ip)
    return next(s.network for s in state.dhcp_subnets if address in ipaddress.ip_network(s.network))
