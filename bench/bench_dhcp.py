"""Benchmark of the DHCP host backends against a real dhcpd (run by hand, as root).

Why it exists: the OMAPI backend's promise is that hosts change live, at close
to the speed OMAPI allows, without the restart (and the outage) that rendering
hosts into dhcpd.conf costs. This measures all three in one run:

1. raw OMAPI: pypureomapi creating 10,000 hosts one call at a time;
2. the dhcp-omapi target: initial sync of the same 10,000 hosts into an empty
   dhcpd (read + apply), then a one-host change (OMAPI writes, restarts), then
   a pass with nothing to do;
3. the way other tools do it: all hosts rendered into dhcpd.conf and dhcpd
   restarted, with the window in which dhcpd answers nobody (probed over OMAPI
   every few milliseconds from inside its namespace).

    sudo .venv/bin/python bench/bench_dhcp.py [--hosts 10000]

dhcpd fsyncs its leases file once for every host created over OMAPI, whoever
sends it and however many requests are in flight. On a busy or slow disk that
fsync is what both the one-call-at-a-time loop and the pipelined sync wait
for; ``TMPDIR=/dev/shm`` puts dhcpd's files on tmpfs and shows what the OMAPI
conversation itself costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pypureomapi

from reconciler.plan import build_target_plan
from reconciler.resources import DesiredState, DhcpHost, DhcpSubnet
from reconciler.targets.dhcp_conf import build as build_conf
from reconciler.targets.dhcp_file import build as build_file
from reconciler.targets.dhcp_hosts import host_statements, hosts_in_leases
from reconciler.targets.dhcp_omapi import build as build_omapi
from tests.integration.dhcp_hosts import make_config
from tests.integration.dhcp_server import KEY_NAME, OMAPI_PORT, Dhcpd, write_key
from tests.integration.netns import entered, netns_pair

SUBNET = DhcpSubnet(
    network="10.30.0.0/16",
    gateway="10.30.0.1",
    lease_time=3600,
    domain="cluster.example",
    unregistered_range=("10.30.250.1", "10.30.250.250"),
    groups=("compute",),
)


def make_hosts(count: int, *, prefix: str = "node", mac_octet: int = 0) -> list[DhcpHost]:
    hosts = []
    for i in range(count):
        mac = f"52:54:{mac_octet:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        hosts.append(
            DhcpHost(
                hostname=f"{prefix}{i:05d}",
                mac=mac,
                ip=f"10.30.{1 + i // 250}.{1 + i % 250}",
                group="compute",
                boot_filename=f"ipxe/{mac.replace(':', '-')}.ipxe",
            )
        )
    return hosts


def fresh(dhcpd: Dhcpd) -> None:
    dhcpd.stop()
    dhcpd.leases.write_text("")
    for old in dhcpd.workdir.glob("dhcpd.leases~"):
        old.unlink()
    dhcpd.start()


def raw_rate(namespace: str, secret: str, hosts: list[DhcpHost], boot_url: str) -> float:
    with entered(namespace):
        conn = pypureomapi.Omapi("127.0.0.1", OMAPI_PORT, KEY_NAME.encode(), secret.encode())
    start = time.perf_counter()
    for h in hosts:
        conn.add_host_supersede(
            h.ip, h.mac, h.hostname, statements=host_statements(h, boot_url=boot_url)
        )
    elapsed = time.perf_counter() - start
    conn.close()
    return len(hosts) / elapsed


class OmapiProbe(threading.Thread):
    """Connects to dhcpd's OMAPI every few ms; records the longest gap between answers."""

    def __init__(self, namespace: str, secret: str) -> None:
        super().__init__(daemon=True)
        self.namespace, self.secret = namespace, secret
        self.stop_event = threading.Event()
        self.last_ok = time.perf_counter()
        self.longest_gap = 0.0

    def run(self) -> None:
        with entered(self.namespace):
            while not self.stop_event.is_set():
                try:
                    conn = pypureomapi.Omapi(
                        "127.0.0.1", OMAPI_PORT, KEY_NAME.encode(), self.secret.encode(), 0.2
                    )
                    conn.close()
                    now = time.perf_counter()
                    self.longest_gap = max(self.longest_gap, now - self.last_ok)
                    self.last_ok = now
                except (OSError, pypureomapi.OmapiError):
                    pass
                time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    args = parser.parse_args()
    signal.alarm(600)  # never run away
    hosts = make_hosts(args.hosts)
    with tempfile.TemporaryDirectory() as tmp, netns_pair(server_cidr="10.30.255.254/16") as pair:
        workdir = Path(tmp)
        dhcpd = Dhcpd(pair, workdir)
        secret = write_key(workdir / "omapi.key")
        config = make_config(workdir)
        boot_url = config.boot.http_url
        conf = build_conf(
            "conf",
            {
                "path": str(dhcpd.conf),
                "omapi_key_file": "omapi.key",
                "omapi_port": OMAPI_PORT,
                "restart_command": "true",  # the benchmark starts dhcpd itself
            },
            config,
        )
        state = DesiredState(dhcp_hosts=tuple(hosts), dhcp_subnets=(SUBNET,))
        conf.apply(
            build_target_plan(
                target="conf", kind="dhcp-conf", desired=[SUBNET], live=conf.read([])
            ).changes
        )
        dhcpd.start()

        print(f"hosts: {len(hosts)}")
        raw = raw_rate(
            pair.server, secret, make_hosts(len(hosts), prefix="raw", mac_octet=1), boot_url
        )
        print(f"raw OMAPI (pypureomapi, one call at a time): {raw:,.0f} hosts/s")
        fresh(dhcpd)

        target = build_omapi(
            "omapi",
            {"key_file": "omapi.key", "leases_file": str(dhcpd.leases), "port": OMAPI_PORT},
            config,
        )

        def sync(desired_hosts: list[DhcpHost]) -> tuple[float, float, int, int]:
            with entered(pair.server):
                desired = target.desired(
                    dataclasses.replace(state, dhcp_hosts=tuple(desired_hosts))
                )
                t0 = time.perf_counter()
                live = target.read(desired)
                t1 = time.perf_counter()
                plan = build_target_plan(
                    target="omapi", kind=target.kind, desired=desired, live=live
                )
                result = target.apply(plan.changes)
                t2 = time.perf_counter()
            return t1 - t0, t2 - t1, len(plan.changes), result.writes

        pid = dhcpd.pid()
        read_s, apply_s, changes, writes = sync(hosts)
        total = read_s + apply_s
        print(
            f"dhcp-omapi initial sync: {changes} creates, {writes} writes; read {read_s:.2f}s, "
            f"apply {apply_s:.2f}s -> {len(hosts) / apply_s:,.0f} hosts/s apply "
            f"({len(hosts) / apply_s / raw:.2f}x one call at a time), "
            f"{len(hosts) / total:,.0f} hosts/s read+apply "
            f"({len(hosts) / total / raw:.2f}x one call at a time)"
        )
        changed = list(hosts)
        changed[123] = dataclasses.replace(changed[123], ip="10.30.249.1")
        read_s, apply_s, changes, writes = sync(changed)
        print(
            f"one-host change: {changes} change, {writes} OMAPI writes, "
            f"restarted: {dhcpd.pid() != pid}; read {read_s:.2f}s, apply {apply_s * 1000:.1f}ms"
        )
        read_s, apply_s, changes, writes = sync(changed)
        print(f"no-op pass: {changes} changes, {writes} writes, read {read_s:.2f}s")
        target.lookups.forget_all()  # the old way: every host asked of dhcpd over OMAPI
        asked = target.lookups.asked
        all_s, _, _, _ = sync(changed)
        asked_all = target.lookups.asked - asked
        cached_s, _, _, _ = sync(changed)
        print(
            f"no-op read, every host asked over OMAPI (old way, {asked_all} lookups): "
            f"{all_s:.2f}s; answers the leases file shows unchanged reused "
            f"({target.lookups.asked - asked - asked_all} lookups): {cached_s:.3f}s; "
            f"ratio {all_s / cached_s:.0f}x"
        )
        size = dhcpd.leases.stat().st_size
        t0 = time.perf_counter()
        hosts_in_leases(dhcpd.leases.read_text(errors="replace"))
        whole_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        target.leases.hosts()
        tail_s = time.perf_counter() - t0
        print(
            f"leases file ({size / 1e6:.1f} MB) on a no-op pass: parsed whole (old way) "
            f"{whole_s * 1000:.0f}ms, from the last read's offset {tail_s * 1000:.2f}ms "
            f"(ratio {whole_s / tail_s:.0f}x)"
        )

        # The other way: every host in dhcpd.conf (via an include), then a restart.
        fresh(dhcpd)
        include = workdir / "hosts.conf"
        file_target = build_file("file", {"path": str(include)}, config)
        t0 = time.perf_counter()
        file_target.apply(
            build_target_plan(
                target="file", kind="dhcp-file", desired=hosts, live=file_target.read(hosts)
            ).changes
        )
        render_s = time.perf_counter() - t0
        conf.include = include
        t0 = time.perf_counter()
        conf.apply(
            build_target_plan(
                target="conf", kind="dhcp-conf", desired=[SUBNET], live=conf.read([SUBNET])
            ).changes
        )
        check_s = time.perf_counter() - t0
        probe = OmapiProbe(pair.server, secret)
        probe.start()
        time.sleep(0.3)
        t0 = time.perf_counter()
        dhcpd.restart()
        restart_s = time.perf_counter() - t0
        time.sleep(0.5)
        probe.stop_event.set()
        probe.join(timeout=5)
        print(
            f"dhcpd.conf way: render {len(hosts)} hosts {render_s:.2f}s, dhcpd -t + write "
            f"{check_s:.2f}s, restart {restart_s:.2f}s, no answer from dhcpd for "
            f"{probe.longest_gap * 1000:.0f}ms (OMAPI probe every ~2ms)"
        )


if __name__ == "__main__":
    main()
