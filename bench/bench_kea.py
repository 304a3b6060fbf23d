"""Benchmark of the Kea backend against a real Kea + PostgreSQL (run by hand, as root).

Why it exists: the kea-hosts promise is that reservations change live through
Kea's host database, at database speed, without the reload or restart (and
the lost DHCP answers) that putting reservations into Kea's JSON config costs.
One run measures, on the same generated inventory:

1. sync speed, side by side with the dhcp-omapi target against dhcpd: initial
   sync of N reservations, a one-host change and a no-op pass (read + plan +
   apply each time, as a watch pass does);
2. DHCP answers lost while 100 host changes (50 adds, 50 removals, one every
   0.5 s) are applied under a steady perfdhcp load (200 DORA/s for 60 s;
   leases in Kea's memfile for all three, so they differ only in how
   reservations change); perfdhcp's per-second reports go to /tmp/bench-kea/.
   (a) through kea-hosts (one transaction per change, no reload);
   (b) reservations in Kea's JSON config, file rewritten + ``config-set`` per change;
   (c) reservations in Kea's JSON config, file rewritten + kea-dhcp4 restarted per change.

    sudo .venv/bin/python bench/bench_kea.py [--hosts 10000] [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_dhcp import make_hosts

from reconciler.plan import build_target_plan
from reconciler.resources import DesiredState, DhcpHost, DhcpSubnet
from reconciler.sandbox.dhcp import OMAPI_PORT, Dhcpd, write_key
from reconciler.sandbox.kea import KeaServer
from reconciler.sandbox.netns import NetnsPair, entered, netns_pair
from reconciler.sandbox.perfdhcp import Perfdhcp
from reconciler.sandbox.postgres import PostgresCluster
from reconciler.targets.base import Action, Change, Target
from reconciler.targets.dhcp_conf import build as build_conf
from reconciler.targets.dhcp_omapi import build as build_omapi
from reconciler.targets.kea_conf import KeaConfTarget
from reconciler.targets.kea_conf import build as build_kea_conf
from reconciler.targets.kea_ctrl import ControlAgent
from reconciler.targets.kea_hosts import KeaHostsTarget
from reconciler.targets.kea_hosts import build as build_kea_hosts
from tests.integration.dhcp_hosts import make_config
from tests.integration.kea_site import target_settings

SERVER, CLIENT = "10.30.255.254", "10.30.255.253"
SUBNET = DhcpSubnet(
    network="10.30.0.0/16",
    gateway="10.30.0.1",
    lease_time=3600,
    domain="cluster.example",
    unregistered_range=("10.30.200.1", "10.30.249.250"),  # room for perfdhcp's 10,000 clients
    groups=("compute",),
)
REPORTS = Path(tempfile.gettempdir()) / "bench-kea"  # perfdhcp's per-second reports


def timed_pass(target: Target, namespace: str, state: DesiredState) -> tuple[float, float, int]:
    """One watch-style pass of one target: (read seconds, plan+apply seconds, changes)."""
    with entered(namespace):
        desired = target.desired(state)
        t0 = time.perf_counter()
        live = target.read(desired)
        t1 = time.perf_counter()
        plan = build_target_plan(target=target.name, kind=target.kind, desired=desired, live=live)
        target.apply(plan.changes)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(plan.changes)


def sync_figures(name: str, target: Target, namespace: str, hosts: list[DhcpHost]) -> None:
    state = DesiredState(dhcp_hosts=tuple(hosts), dhcp_subnets=(SUBNET,))
    read_s, apply_s, changes = timed_pass(target, namespace, state)
    print(
        f"  {name:10s} initial sync: {changes} creates, read {read_s:.2f}s + apply "
        f"{apply_s:.2f}s = {read_s + apply_s:.2f}s ({len(hosts) / (read_s + apply_s):,.0f} hosts/s)"
    )
    changed = list(hosts)
    changed[123] = dataclasses.replace(changed[123], ip="10.30.199.1")
    state = dataclasses.replace(state, dhcp_hosts=tuple(changed))
    read_s, apply_s, changes = timed_pass(target, namespace, state)
    print(
        f"  {name:10s} one-host change: {changes} change, read {read_s:.2f}s + apply "
        f"{apply_s * 1000:.1f}ms"
    )
    read_s, apply_s, changes = timed_pass(target, namespace, state)
    print(f"  {name:10s} no-op pass: {changes} changes, read {read_s:.2f}s")


def changes_for(hosts: list[DhcpHost]) -> list[tuple[str, DhcpHost]]:
    """50 adds and 50 removals, alternating; none touches perfdhcp's MACs."""
    added = make_hosts(50, prefix="new", mac_octet=1)
    added = [dataclasses.replace(h, ip=f"10.30.150.{i + 1}") for i, h in enumerate(added)]
    steps: list[tuple[str, DhcpHost]] = []
    for new, old in zip(added, hosts[:50], strict=True):
        steps += [("add", new), ("remove", old)]
    return steps


def drive(
    steps: list[tuple[str, DhcpHost]],
    apply: Callable[[str, DhcpHost], None],
    *,
    start: float,
    interval: float,
    until: float,
) -> dict[str, Any]:
    """Apply one change per ``interval`` from ``start`` (or at once when behind) until ``until``."""
    began = time.monotonic()
    durations: list[float] = []
    for index, (action, host) in enumerate(steps):
        due = began + start + index * interval
        time.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() - began > until:
            break
        t0 = time.perf_counter()
        apply(action, host)
        durations.append(time.perf_counter() - t0)
    return {
        "applied": len(durations),
        "avg_ms": 1000 * sum(durations) / max(1, len(durations)),
        "max_ms": 1000 * max(durations, default=0.0),
    }


def run_under_load(
    label: str,
    kea: KeaServer,
    pair: NetnsPair,
    *,
    apply: Callable[[str, DhcpHost], None],
    steps: list[tuple[str, DhcpHost]],
    rate: int,
    seconds: int,
) -> None:
    pid = kea.pid()
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            drive(steps, apply, start=5.0, interval=0.5, until=seconds - 6.0)
        )
    )
    worker.start()
    report = REPORTS / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".txt")
    # perfdhcp as a relay (giaddr = the client veth), 10,000 clients, as long as the changes
    figures = Perfdhcp(pair, rate=rate, seconds=seconds, report_every=1).wait()
    report.write_text(figures.output)
    worker.join(timeout=600)
    do, ra = figures.discover, figures.request
    unanswered = figures.unanswered
    print(
        f"  {label:34s} | {do.sent}/{do.received}/{do.unanswered} | "
        f"{ra.sent}/{ra.received}/{ra.unanswered} | {unanswered} "
        f"({unanswered / max(1, do.sent):.2%}) | {do.avg_ms:.2f}/{do.max_ms:.1f} | "
        f"{ra.avg_ms:.2f}/{ra.max_ms:.1f} | {outcome.get('applied', 0)} "
        f"({outcome.get('avg_ms', 0):.0f}/{outcome.get('max_ms', 0):.0f} ms) | "
        f"{'same' if kea.pid() == pid else 'restarted'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=200, help="perfdhcp DORA exchanges/s")
    parser.add_argument("--seconds", type=int, default=60, help="length of each perfdhcp run")
    parser.add_argument(
        "--db-runs", type=int, default=1, help="how many times to run the database path (a)"
    )
    args = parser.parse_args()
    signal.alarm(1800)  # never run away
    hosts = make_hosts(args.hosts)
    with (
        tempfile.TemporaryDirectory() as tmp,
        netns_pair(server_cidr=f"{SERVER}/16", client_cidr=f"{CLIENT}/16") as pair,
    ):
        workdir = Path(tmp)
        config = make_config(workdir)
        (workdir / "dhcpd").mkdir()
        dhcpd = Dhcpd(pair, workdir / "dhcpd")
        write_key(workdir / "omapi.key")
        dhcp_conf = build_conf(
            "dhcpd-conf",
            {
                "path": str(dhcpd.conf),
                "omapi_key_file": "omapi.key",
                "omapi_port": OMAPI_PORT,
                "restart_command": "true",  # the benchmark starts dhcpd itself
            },
            config,
        )
        timed_pass(dhcp_conf, pair.server, DesiredState(dhcp_subnets=(SUBNET,)))
        dhcpd.start()
        omapi = build_omapi(
            "dhcp-omapi",
            {"key_file": "omapi.key", "leases_file": str(dhcpd.leases), "port": OMAPI_PORT},
            config,
        )
        # dhcpd and Kea cannot both bind port 67: dhcpd first, then Kea alone.
        print(f"1. sync speed, {len(hosts)} reservations, same inventory")
        sync_figures("dhcp-omapi", omapi, pair.server, hosts)
        dhcpd.stop()
        postgres = PostgresCluster(namespace=pair.server)
        pair.on_cleanup(postgres.close)
        postgres.start()
        postgres.write_password_file(workdir / "kea-db.password")
        kea = KeaServer(pair, workdir / "kea")
        conf_settings, db_settings = target_settings(
            kea=kea, postgres=postgres, interface=pair.server_if
        )
        # Leases in Kea's memfile for every path, so the paths differ only in how
        # reservations change (the perfdhcp clients never hold a reserved address).
        lease_file = kea.rundir / "leases4.csv"
        conf_settings |= {"lease_database": "memfile", "lease_file": str(lease_file)}
        db_settings |= {"clear_leases": False}
        conf = build_kea_conf("kea-conf", conf_settings, config)
        kea_hosts = build_kea_hosts("kea-hosts", db_settings, config)
        assert isinstance(conf, KeaConfTarget) and isinstance(kea_hosts, KeaHostsTarget)
        kea.start(conf.render([]))
        timed_pass(conf, pair.server, DesiredState(dhcp_subnets=(SUBNET,)))

        sync_figures("kea-hosts", kea_hosts, pair.server, hosts)

        print(
            f"\n2. perfdhcp {args.rate} DORA/s for {args.seconds}s against Kea with "
            f"{len(hosts)} reservations; 100 host changes, one per 0.5 s from t=5s"
        )
        print(
            "  path                               | DISCOVER sent/recv/drops | REQUEST sent/recv/"
            "drops | unanswered | D-O avg/max ms | R-A avg/max ms | changes applied "
            "(avg/max ms each) | kea-dhcp4"
        )
        steps = changes_for(hosts)
        timed_pass(
            kea_hosts, pair.server, DesiredState(dhcp_hosts=tuple(hosts), dhcp_subnets=(SUBNET,))
        )

        def fresh_kea() -> None:
            """kea-dhcp4 restarted from its saved config with no leases: each run starts alike."""
            kea.stop_dhcp4()
            for old in kea.rundir.glob("leases4.csv*"):
                old.unlink()
            kea.start_dhcp4()
            time.sleep(2)  # its database connections up and settled before the load starts

        REPORTS.mkdir(exist_ok=True)
        fresh_kea()
        run_under_load("baseline, reservations in PostgreSQL", kea, pair, apply=lambda a, h: None,
                       steps=steps, rate=args.rate, seconds=args.seconds)  # fmt: skip

        def db_apply(action: str, host: DhcpHost) -> None:
            change = (
                Change(Action.CREATE, host.key, None, host)
                if action == "add"
                else Change(Action.DELETE, host.key, host, None)
            )
            with entered(pair.server):
                kea_hosts.apply([change])

        for run in range(args.db_runs):
            timed_pass(
                kea_hosts,
                pair.server,
                DesiredState(dhcp_hosts=tuple(hosts), dhcp_subnets=(SUBNET,)),
            )  # back to the starting reservations
            fresh_kea()
            run_under_load(f"(a) kea-hosts: a row per change #{run + 1}", kea, pair,
                           apply=db_apply, steps=steps, rate=args.rate,
                           seconds=args.seconds)  # fmt: skip

        # Reservations in the JSON config instead: the database holds none of them.
        postgres.psql("DELETE FROM hosts", database=postgres.database)
        reserved = {h.hostname: h for h in hosts}

        def json_config() -> dict[str, Any]:
            rendered = conf.render([SUBNET])
            dhcp4 = rendered["Dhcp4"]
            dhcp4.pop("hosts-database")
            dhcp4["subnet4"][0]["reservations"] = [
                {"hw-address": h.mac, "ip-address": h.ip, "hostname": h.hostname}
                for h in reserved.values()
            ]
            return rendered

        def edit(action: str, host: DhcpHost) -> dict[str, Any]:
            if action == "add":
                reserved[host.hostname] = host
            else:
                reserved.pop(host.hostname, None)
            rendered = json_config()
            kea.conf.write_text(json.dumps(rendered))
            return rendered

        agent = ControlAgent(
            url=kea.agent_url,
            user="reconciler",
            password=kea.agent_password_file.read_text().strip(),
            timeout=60,
        )

        def config_set(action: str, host: DhcpHost) -> None:
            rendered = edit(action, host)
            with entered(pair.server):
                answer = agent.command("config-set", rendered)
            if not answer.ok:
                raise RuntimeError(f"config-set failed: {answer.text}")

        kea.conf.write_text(json.dumps(json_config()))
        fresh_kea()
        run_under_load("baseline, reservations in JSON", kea, pair, apply=lambda a, h: None,
                       steps=steps, rate=args.rate, seconds=args.seconds)  # fmt: skip
        fresh_kea()
        run_under_load("(b) JSON file + config-set per change", kea, pair, apply=config_set,
                       steps=steps, rate=args.rate, seconds=args.seconds)  # fmt: skip

        reserved.clear()
        reserved.update({h.hostname: h for h in hosts})

        def restart(action: str, host: DhcpHost) -> None:
            edit(action, host)
            kea.restart_dhcp4()

        kea.conf.write_text(json.dumps(json_config()))
        fresh_kea()
        run_under_load("(c) JSON file + restart per change", kea, pair, apply=restart,
                       steps=steps, rate=args.rate, seconds=args.seconds)  # fmt: skip


if __name__ == "__main__":
    main()
