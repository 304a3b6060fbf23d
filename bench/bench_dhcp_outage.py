"""DHCP answers lost while hosts change: OMAPI live vs rewrite + restart (by hand, as root).

Why it exists: the dhcp-omapi target's promise is that host changes never take
dhcpd away from the machines booting at that moment. This proves it with the
tool DHCP servers are load-tested with: perfdhcp makes DISCOVER/REQUEST
exchanges at a steady rate against a real dhcpd holding 10,000 reservations,
while 100 host changes (50 adds, 50 deletes, alternating) are applied

1. ``omapi``: by the dhcp-omapi target, a whole target pass per change as the
   watch loop does it (read live state, plan, apply over OMAPI);
2. ``restart-each``: the old way, by the dhcp-file target (the hosts include
   file rewritten) and dhcpd restarted after each change;
3. ``restart-batch``: the old way at its best, all 100 changes in one rewrite
   and one restart.

It prints the requests perfdhcp never got an answer to, for each way side by
side. Everything runs in two network namespaces the benchmark creates (dhcpd
in one, perfdhcp in the other); no other address is contacted.

    sudo .venv/bin/python bench/bench_dhcp_outage.py [--hosts 10000] [--rate 100] [--seconds 60]

dhcpd.conf gets ``ping-check false`` here: perfdhcp's clients take pool
addresses, and dhcpd's default ping before each first offer (1 s timeout on a
veth where nobody answers) would put every offer close to the drop time.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.plan import build_target_plan
from reconciler.resources import DhcpHost, DhcpSubnet
from reconciler.sandbox.dhcp import OMAPI_PORT, DhcpClient, Dhcpd, write_key
from reconciler.sandbox.netns import NetnsPair, entered, netns_pair
from reconciler.sandbox.perfdhcp import Perfdhcp, PerfdhcpReport
from reconciler.targets.dhcp_conf import build as build_conf
from reconciler.targets.dhcp_file import build as build_file
from reconciler.targets.dhcp_omapi import build as build_omapi
from tests.integration.dhcp_hosts import make_config

SUBNET = DhcpSubnet(
    network="10.77.0.0/16",
    gateway="10.77.0.1",
    lease_time=3600,
    domain="cluster.example",
    unregistered_range=("10.77.200.1", "10.77.255.250"),  # perfdhcp's clients land here
    groups=("compute",),
)


NO_PING = "authoritative;\nping-check false;"


def host(index: int, *, prefix: str, mac_octet: int, net: int) -> DhcpHost:
    mac = f"52:54:{mac_octet:02x}:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"
    return DhcpHost(
        hostname=f"{prefix}{index:05d}",
        mac=mac,
        ip=f"10.77.{net + index // 250}.{1 + index % 250}",
        group="compute",
        boot_filename=f"ipxe/{mac.replace(':', '-')}.ipxe",
    )


def change_steps(hosts: list[DhcpHost], count: int) -> list[list[DhcpHost]]:
    """The desired host list after each change: adds and deletes, alternating."""
    steps, current = [], list(hosts)
    for i in range(count):
        if i % 2 == 0:
            current = [*current, host(i // 2, prefix="new", mac_octet=1, net=150)]
        else:
            gone = f"node{i // 2:05d}"
            current = [h for h in current if h.hostname != gone]
        steps.append(current)
    return steps


@dataclasses.dataclass
class Outcome:
    way: str
    report: PerfdhcpReport
    changes: int
    apply_s: list[float]
    restarts: int
    verified: str


class Site:
    """One dhcpd with its own files, configured by the dhcp-conf target."""

    def __init__(self, pair: NetnsPair, workdir: Path, *, include: Path | None, nice: int) -> None:
        workdir.mkdir()
        self.pair, self.workdir = pair, workdir
        self.dhcpd = Dhcpd(pair, workdir, nice=nice)
        write_key(workdir / "omapi.key")
        self.config = make_config(workdir)
        settings: dict[str, object] = {
            "path": str(self.dhcpd.conf),
            "omapi_key_file": "omapi.key",
            "omapi_port": OMAPI_PORT,
            "restart_command": "true",  # the benchmark starts and restarts dhcpd itself
        }
        if include is not None:
            settings["include"] = str(include)
        conf = build_conf("conf", settings, self.config)
        conf.apply(
            build_target_plan(
                target="conf", kind=conf.kind, desired=[SUBNET], live=conf.read([])
            ).changes
        )
        text = self.dhcpd.conf.read_text().replace("authoritative;", NO_PING)
        self.dhcpd.conf.write_text(text)

    def lease_ip(self, mac: str) -> str:
        lease = DhcpClient(self.pair, self.workdir / "client").lease(mac, timeout=8)
        return lease.ip if lease else "no answer"


def drive(
    pair: NetnsPair,
    args: argparse.Namespace,
    schedule: Sequence[tuple[float, Callable[[], None]]],
) -> tuple[PerfdhcpReport, list[float]]:
    """perfdhcp for the whole period; each step run at its time (or at once when behind)."""
    durations: list[float] = []
    perf = Perfdhcp(pair, rate=args.rate, seconds=args.seconds, nice=args.nice)
    start = time.monotonic()
    for at, step in schedule:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        step()
        durations.append(time.perf_counter() - t0)
    return perf.wait(), durations


def run_omapi(
    pair: NetnsPair,
    workdir: Path,
    hosts: list[DhcpHost],
    args: argparse.Namespace,
    *,
    baseline: bool = False,
) -> Outcome:
    site = Site(pair, workdir, include=None, nice=args.nice)
    site.dhcpd.start()
    pid = site.dhcpd.pid()
    target = build_omapi(
        "omapi",
        {"key_file": "omapi.key", "leases_file": str(site.dhcpd.leases), "port": OMAPI_PORT},
        site.config,
    )

    def sync(desired: list[DhcpHost]) -> None:
        with entered(pair.server):
            plan = build_target_plan(
                target="omapi", kind=target.kind, desired=desired, live=target.read(desired)
            )
            target.apply(plan.changes)

    sync(hosts)  # initial sync, before the load starts
    sync(hosts)  # the pass after it (asks dhcpd again about the hosts it just created)
    steps = change_steps(hosts, 0 if baseline else args.changes)
    schedule = [
        (args.first + i * args.interval, functools.partial(sync, desired))
        for i, desired in enumerate(steps)
    ]
    report, durations = drive(pair, args, schedule)
    added = steps[-1][-1] if len(steps) > 1 else hosts[-1]
    if not added.hostname.startswith("new") and len(steps) > 1:
        added = steps[-2][-1]
    got = site.lease_ip(added.mac)
    verified = f"{added.hostname} {added.mac}: {got} (want {added.ip})"
    restarts = 0 if site.dhcpd.pid() == pid else 1
    site.dhcpd.stop()
    way = "baseline" if baseline else "omapi"
    return Outcome(way, report, len(steps), durations, restarts, verified)


def run_restart(
    pair: NetnsPair, workdir: Path, hosts: list[DhcpHost], args: argparse.Namespace, *, batch: bool
) -> Outcome:
    include = workdir.parent / f"{workdir.name}-hosts.conf"
    include.touch()  # dhcpd -t checks dhcpd.conf with its include
    site = Site(pair, workdir, include=include, nice=args.nice)
    target = build_file("file", {"path": str(include)}, site.config)

    def rewrite(desired: list[DhcpHost]) -> None:
        plan = build_target_plan(
            target="file", kind=target.kind, desired=desired, live=target.read(desired)
        )
        target.apply(plan.changes)

    def rewrite_and_restart(desired: list[DhcpHost]) -> None:
        rewrite(desired)
        site.dhcpd.restart()

    rewrite(hosts)
    site.dhcpd.start()
    steps = change_steps(hosts, args.changes)
    if batch:
        middle = args.first + args.changes * args.interval / 2
        schedule = [(middle, lambda: rewrite_and_restart(steps[-1]))]
    else:
        schedule = [
            (args.first + i * args.interval, functools.partial(rewrite_and_restart, desired))
            for i, desired in enumerate(steps)
        ]
    report, durations = drive(pair, args, schedule)
    added = steps[-1][-1] if steps[-1][-1].hostname.startswith("new") else steps[-2][-1]
    verified = f"{added.hostname} {added.mac}: {site.lease_ip(added.mac)} (want {added.ip})"
    site.dhcpd.stop()
    way = "restart-batch" if batch else "restart-each"
    return Outcome(way, report, len(steps), durations, len(schedule), verified)


def show(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    print(
        f"\n{args.hosts} reservations, {args.changes} host changes, perfdhcp {args.rate} "
        f"DORA/s for {args.seconds:g} s (a request unanswered after 2 s is lost)\n"
    )
    head = (
        f"{'way':<14} {'DISCOVER sent/OFFER':>20} {'REQUEST sent/ACK':>18} {'unanswered':>11} "
        f"{'D-O avg/max ms':>15} {'restarts':>9} {'per change/batch ms':>20}"
    )
    print(head)
    print("-" * len(head))
    for o in outcomes:
        d, r = o.report.discover, o.report.request
        avg = sum(o.apply_s) / len(o.apply_s) * 1000 if o.apply_s else 0.0
        most = max(o.apply_s, default=0.0) * 1000
        print(
            f"{o.way:<14} {f'{d.sent}/{d.received}':>20} {f'{r.sent}/{r.received}':>18} "
            f"{o.report.unanswered:>11} {f'{d.avg_ms:.1f}/{d.max_ms:.0f}':>15} {o.restarts:>9} "
            f"{f'{avg:.0f} avg, {most:.0f} max':>20}"
        )
    print()
    for o in outcomes:
        print(f"after {o.way}: dhclient for the last added host got {o.verified}")
        slowest = sorted(range(len(o.apply_s)), key=lambda i: -o.apply_s[i])[:3]
        print("  slowest steps: " + ", ".join(f"#{i} {o.apply_s[i]:.2f}s" for i in slowest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rate", type=int, default=100, help="perfdhcp exchanges per second")
    parser.add_argument("--seconds", type=int, default=60.0, help="perfdhcp's test period")
    parser.add_argument("--first", type=float, default=5.0, help="s until the first change")
    parser.add_argument("--interval", type=float, default=0.5, help="s between changes")
    parser.add_argument(
        "--ways",
        default="baseline,omapi,restart-each,restart-batch",
        help="baseline: the same load and no change at all (the machine's own noise)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="priority of dhcpd and perfdhcp (not of the changes): other work on a shared "
        "machine must not starve the servers under test; 0 runs them as everything else",
    )
    parser.add_argument(
        "--tmp",
        default=None,
        help="directory for dhcpd's files (default: the system's temporary directory; "
        "/dev/shm takes the disk's fsync delays out of a busy machine's figures)",
    )
    args = parser.parse_args()
    signal.alarm(int(3 * (args.seconds + 240)))  # never run away
    hosts = [host(i, prefix="node", mac_octet=0, net=100) for i in range(args.hosts)]
    outcomes = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        netns_pair(server_cidr="10.77.0.1/16", client_cidr="10.77.0.2/16") as pair,
    ):
        for way in args.ways.split(","):
            workdir = Path(tmp) / way
            if way in ("omapi", "baseline"):
                baseline = way == "baseline"
                outcomes.append(run_omapi(pair, workdir, hosts, args, baseline=baseline))
            else:
                batch = way == "restart-batch"
                outcomes.append(run_restart(pair, workdir, hosts, args, batch=batch))
            print(f"{way}: {outcomes[-1].report.unanswered} unanswered", flush=True)
    show(outcomes, args)


if __name__ == "__main__":
    main()
