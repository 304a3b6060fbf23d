"""Registration indexes: the fast check agrees with trying every index, and scales to a /8."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

from reconciler.model.inventory import Group, Site
from reconciler.model.rules import address_of, check_site
from tests.unit.inventory_factory import group, host, load, write_inventory


def brute_force_first_invalid(groups: list[Group], site: Site, target: Group) -> int | None:
    """The lowest free registration index of ``target`` that gives a bad name or address."""
    names: set[str] = set()
    addresses: set[ipaddress.IPv4Address] = set()
    ranges = [(g.subnet, g.unregistered_range) for g in groups if g.unregistered_range]
    for g in groups:
        for h in g.hosts:
            names.add(g.hostname_of(h.index))
            names.update(h.aliases)
            address = address_of(g, h.index)
            assert address is not None
            addresses.add(address)
    assert target.registration is not None
    first, last = target.registration.indexes
    used = {h.index for h in target.hosts}
    net = target.subnet
    for index in range(first, last + 1):
        if index in used:
            continue
        name, address = target.hostname_of(index), address_of(target, index)
        bad = (
            len(name) > 63
            or len(f"{name}.{site.domain}") > 253
            or name in names
            or address is None
            or address not in net
            or address in (net.network_address, net.broadcast_address, target.gateway)
            or address in addresses
            or any(n == net and r[0] <= address <= r[1] for n, r in ranges)
        )
        if bad:
            return index
    return None


def test_fast_registration_check_agrees_with_trying_every_index() -> None:
    rng = random.Random(20241)
    site = Site(domain="cluster.example")
    outcomes = {"valid": 0, "invalid": 0}
    for _ in range(400):
        formats = ["n%d", "n%03d", "node%02d-x", "a" * 58 + "%d", "n1%d"]
        hosts = []
        for index in rng.sample(range(2, 260), rng.randint(0, 6)):
            mac = f"52:54:00:00:{index // 256:02x}:{index % 256:02x}"
            hosts.append({"index": index, "mac": mac})
        first = rng.randint(0, 250)
        data: dict[str, Any] = {
            "name": "compute",
            "subnet": "10.23.45.0/24",
            "gateway": f"10.23.45.{rng.choice([1, 254, 128])}",
            "hostname": rng.choice(formats),
            "first_address": f"10.23.45.{rng.choice([0, 0, 10, 100])}",
            "registration": {"indexes": f"{first}-{first + rng.randint(0, 60)}"},
            "hosts": hosts,
        }
        if rng.random() < 0.5:
            data["unregistered_range"] = "10.23.45.200-10.23.45.230"
        other: dict[str, Any] = {
            "name": "other",
            "subnet": "10.23.45.0/24",
            "gateway": data["gateway"],
            "hostname": rng.choice(["n%d", "x%d", "n%04d"]),
            "first_address": "10.23.45.0",
            "hosts": [
                {"index": i, "mac": f"52:54:00:01:00:{i:02x}", "aliases": [f"n{i + 1}"]}
                for i in rng.sample(range(2, 200), 2)
            ],
        }
        compute, second = Group.model_validate(data), Group.model_validate(other)
        # other.yaml sorts first: its names and addresses are known when compute is checked
        expected = brute_force_first_invalid([second, compute], site, compute)
        found = check_site(
            site, [("groups/other.yaml", second), ("groups/compute.yaml", compute)], []
        )
        registration = [p for p in found if p.field == "registration.indexes"]
        if any(p.field != "registration.indexes" for p in found):
            continue  # the hosts themselves clash; the reference does not model that
        outcomes["valid" if expected is None else "invalid"] += 1
        if expected is None:
            assert registration == [], (data, other, registration)
        else:
            assert len(registration) == 1, (data, other, expected)
            assert registration[0].message.startswith(f"index {expected} would be invalid"), (
                data,
                other,
                registration[0].message,
            )
    assert min(outcomes.values()) > 50, outcomes  # both kinds were really exercised


def test_registration_over_a_slash_8_is_valid(tmp_path: Path) -> None:
    compute = group(
        subnet="10.0.0.0/8", gateway="10.0.0.1", unregistered_range=None, hostname="n%d",
        registration={"indexes": "2-16000000"}, hosts=[host(5, "52:54:00:00:00:05")],
    )  # fmt: skip
    root = write_inventory(tmp_path, groups={"compute": compute})
    inventory = load(root)  # checked without walking 16 million indexes: bench/bench_readers.py
    assert inventory.groups[0].registration is not None
