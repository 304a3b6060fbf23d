"""Reader benchmark: how fast the file targets read back 10,000 hosts, and how fast a
registration range over a /8 validates (run by hand).

The unit tests assert that these readers return exactly what was written; the
figures live here, because wall-clock limits in tests fail on a loaded machine.
Each figure is the best of five runs (the inventory load: its first run, as a
second would hit the parse cache), beside the limit the unit tests used to enforce.

    .venv/bin/python bench/bench_readers.py [--hosts 10000]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.config import RuntimeConfig, SourceConfig
from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import FolderSource
from reconciler.plan import build_target_plan
from reconciler.resources import DesiredState, DhcpHost, DnsRecord, DnsZone
from reconciler.targets import dhcp_file, dns_zonefile
from reconciler.targets.dhcp_hosts import parse_host_file, render_host_block

BOOT = "http://10.23.45.2:8080"
FWD, REV = "cluster.example.", "23.10.in-addr.arpa."


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def dhcp_hosts(count: int) -> list[DhcpHost]:
    return [
        DhcpHost(
            f"n{i:05d}",
            f"52:54:00:00:{i >> 8 & 255:02x}:{i & 255:02x}",
            f"10.1.{i >> 8}.{i & 255}",
            "compute",
            f"ipxe/{i}.ipxe",
        )
        for i in range(count)
    ]


def config(root: Path) -> RuntimeConfig:
    return RuntimeConfig(source=SourceConfig(path=root), state_dir=root / "state")


def dhcp_file_read(root: Path, count: int) -> float:
    target = dhcp_file.build("dhcp", {"path": str(root / "hosts.conf")}, config(root))
    desired = target.desired(DesiredState(dhcp_hosts=tuple(dhcp_hosts(count))))
    plan = build_target_plan(
        target="dhcp", kind=target.kind, desired=desired, live=target.read(desired)
    )
    target.apply(plan.changes)
    return best_of(5, lambda: target.read(desired))


def dhcp_hosts_parse(count: int) -> float:
    text = "".join(render_host_block(h, boot_url=BOOT) for h in dhcp_hosts(count))
    return best_of(5, lambda: [b.to_host(boot_url=BOOT) for b in parse_host_file(text)])


def zonefile_read(root: Path, count: int) -> float:
    settings = {
        "directory": str(root / "zones"),
        "mname": "ns1.cluster.example.",
        "rname": "hostmaster.cluster.example.",
        "nameservers": ["ns1.cluster.example."],
    }
    target = dns_zonefile.build("dns", settings, config(root))
    base = ipaddress.ip_address("10.23.0.0")
    records: list[DnsRecord] = []
    for index in range(count):
        fqdn = f"node{index:05d}.{FWD}"
        records.append(DnsRecord(FWD, fqdn, "A", 300, (str(base + index + 1),)))
        records.append(DnsRecord(REV, f"{index}.{REV}", "PTR", 300, (fqdn,)))
    state = DesiredState(
        dns_zones=(DnsZone(FWD, "forward"), DnsZone(REV, "reverse")), dns_records=tuple(records)
    )
    desired = target.desired(state)
    plan = build_target_plan(
        target="dns", kind=target.kind, desired=desired, live=target.read(desired)
    )
    target.apply(plan.changes)
    return best_of(5, lambda: target.read(desired))


def registration_over_slash_8(root: Path) -> float:
    sha = "0" * 64
    artifact = {"url": "http://boot.example/x", "sha256": sha}
    files = {
        "site.yaml": {"domain": "cluster.example"},
        "images/compute.yaml": {
            "name": "compute",
            "versions": {"1": {"kernel": artifact, "initrd": artifact, "rootfs": artifact}},
        },
        "groups/compute.yaml": {
            "name": "compute",
            "subnet": "10.0.0.0/8",
            "gateway": "10.0.0.1",
            "hostname": "n%d",
            "image": "compute@1",
            "registration": {"indexes": "2-16000000"},
            "hosts": [{"index": 5, "mac": "52:54:00:00:00:05"}],
        },
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data))
    started = time.perf_counter()  # once: a second load would hit the parse cache
    inventory = load_inventory(FolderSource(root))
    elapsed = time.perf_counter() - started
    assert inventory.groups[0].registration is not None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        count = args.hosts
        rows = [
            (f"dhcp-file read, {count:,} hosts", dhcp_file_read(root / "a", count), 0.3),
            (f"dhcpd host blocks parsed, {count:,}", dhcp_hosts_parse(count), 0.3),
            (f"dns-zonefile read, {count:,} A + PTR", zonefile_read(root / "b", count), 0.4),
            ("registration over a /8 (one load)", registration_over_slash_8(root / "c"), 0.5),
        ]
    print(f"{'what':<44} {'best of 5':>10} {'old test limit':>15} {'ratio':>6}")
    for what, seconds, limit in rows:
        print(f"{what:<44} {seconds:>9.3f}s {limit:>14.1f}s {seconds / limit:>6.2f}")


if __name__ == "__main__":
    main()
