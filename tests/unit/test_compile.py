"""compile_inventory: DNS records and zones, DHCP, boot files and node images."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from reconciler.compile import (
    CompileOptions,
    compile_inventory,
    ipxe_path,
    pxelinux_path,
    reverse_name,
    reverse_zones,
)
from reconciler.resources import DesiredState, DnsRecord
from tests.unit.inventory_factory import group, host, load, write_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
FWD = "cluster.example."
REV = "45.23.10.in-addr.arpa."


def records(state: DesiredState, rtype: str) -> dict[str, DnsRecord]:
    return {r.name: r for r in state.dns_records if r.rtype == rtype}


@pytest.fixture(scope="module")
def example() -> DesiredState:
    return compile_inventory(load(EXAMPLE), options=CompileOptions(http_url="http://boot:8080"))


def test_a_ptr_and_cname_records(example: DesiredState) -> None:
    a = records(example, "A")
    assert a[f"node010.{FWD}"] == DnsRecord(FWD, f"node010.{FWD}", "A", 300, ("10.23.45.10",))
    assert a[f"gpu01.{FWD}"].values == ("10.23.46.101",)  # first_address 10.23.46.100 + 1
    assert a[f"svc1.{FWD}"].values == ("10.23.45.151",)
    ptr = records(example, "PTR")
    assert ptr[f"10.{REV}"] == DnsRecord(REV, f"10.{REV}", "PTR", 300, (f"node010.{FWD}",))
    assert ptr["101.46.23.10.in-addr.arpa."].zone == "46.23.10.in-addr.arpa."
    cname = records(example, "CNAME")
    assert cname[f"login.{FWD}"] == DnsRecord(
        FWD, f"login.{FWD}", "CNAME", 300, (f"node010.{FWD}",)
    )
    assert cname[f"cuda.{FWD}"].values == (f"gpu01.{FWD}",)
    assert cname[f"monitor.{FWD}"].values == (f"svc1.{FWD}",)
    # one A and one PTR per host, one CNAME per alias
    assert (len(a), len(ptr), len(cname)) == (8, 8, 3)


def test_zones(example: DesiredState) -> None:
    assert [(z.name, z.kind) for z in example.dns_zones] == [
        (FWD, "forward"),
        (REV, "reverse"),
        ("46.23.10.in-addr.arpa.", "reverse"),
    ]


def test_dhcp_hosts_and_subnets(example: DesiredState) -> None:
    by_name = {h.hostname: h for h in example.dhcp_hosts}
    node013 = by_name["node013"]
    assert (node013.mac, node013.ip, node013.group) == (
        "52:54:00:12:34:0d",
        "10.23.45.13",
        "compute",
    )
    assert node013.boot_filename == "ipxe/52-54-00-12-34-0d.ipxe"
    shared, gpu = example.dhcp_subnets
    assert shared.network == "10.23.45.0/24"
    assert shared.groups == ("compute", "service")
    assert shared.unregistered_range == ("10.23.45.200", "10.23.45.250")
    assert (shared.gateway, shared.lease_time, shared.domain) == (
        "10.23.45.1",
        3600,
        "cluster.example",
    )
    assert gpu.network == "10.23.46.0/24" and gpu.groups == ("gpu",)
    assert example.hosts_by_mac["52:54:00:aa:00:01"] == "gpu01"


@pytest.mark.parametrize(
    ("network", "zones"),
    [
        ("10.23.45.0/24", ["45.23.10.in-addr.arpa."]),
        ("10.23.0.0/16", ["23.10.in-addr.arpa."]),
        ("10.0.0.0/8", ["10.in-addr.arpa."]),
        ("10.23.16.0/20", [f"{n}.23.10.in-addr.arpa." for n in range(16, 32)]),
        ("10.20.0.0/14", [f"{n}.10.in-addr.arpa." for n in range(20, 24)]),
    ],
)
def test_reverse_zone_naming(network: str, zones: list[str]) -> None:
    assert reverse_zones(ipaddress.IPv4Network(network)) == zones


def test_reverse_name() -> None:
    assert reverse_name(ipaddress.IPv4Address("10.23.45.7")) == "7.45.23.10.in-addr.arpa."


def test_ptr_records_land_in_the_split_zone(tmp_path: Path) -> None:
    compute = group(
        subnet="10.23.16.0/20", gateway="10.23.16.1", unregistered_range=None,
        first_address="10.23.17.0", hosts=[host(5, "52:54:00:00:00:05")],
    )  # fmt: skip
    state = compile_inventory(load(write_inventory(tmp_path, groups={"compute": compute})))
    assert len([z for z in state.dns_zones if z.kind == "reverse"]) == 16
    ptr = records(state, "PTR")["5.17.23.10.in-addr.arpa."]
    assert ptr.zone == "17.23.10.in-addr.arpa."
    assert records(state, "A")[f"node005.{FWD}"].values == ("10.23.17.5",)


def test_ptr_records_in_a_16_zone(tmp_path: Path) -> None:
    compute = group(
        subnet="10.23.0.0/16", gateway="10.23.0.1", unregistered_range=None,
        first_address="10.23.45.0", hosts=[host(300, "52:54:00:00:00:05")],
    )  # fmt: skip
    state = compile_inventory(load(write_inventory(tmp_path, groups={"compute": compute})))
    ptr = records(state, "PTR")["44.46.23.10.in-addr.arpa."]  # 10.23.45.0 + 300
    assert ptr.zone == "23.10.in-addr.arpa."
    assert ptr.values == (f"node300.{FWD}",)


def test_site_ttl_and_lease_time(tmp_path: Path) -> None:
    site = {"domain": "lab.example", "ttl": 60, "lease_time": 600}
    state = compile_inventory(load(write_inventory(tmp_path, site=site)))
    assert {r.ttl for r in state.dns_records} == {60}
    assert state.dns_zones[0].name == "lab.example."
    assert state.dhcp_subnets[0].lease_time == 600


def test_canary_host_gets_its_own_image(example: DesiredState) -> None:
    images = {n.host: n for n in example.node_images}
    assert (images["node010"].image, images["node010"].version) == ("compute", "2024.10")
    canary = images["node014"]
    assert (canary.image, canary.version) == ("compute", "2024.11")
    assert canary.kernel_url == "http://boot.cluster.example/compute/2024.11/vmlinuz"
    assert canary.cmdline == "console=ttyS0 quiet mitigations=auto"
    assert canary.mac == "52:54:00:12:34:0e"
    boot = {b.path: b.content for b in example.boot_files}
    ipxe = boot["ipxe/52-54-00-12-34-0e.ipxe"]
    assert "compute/2024.11/vmlinuz" in ipxe and "2024.10" not in ipxe
    pxe = boot["pxelinux.cfg/01-52-54-00-12-34-0e"]
    assert "compute/2024.11/initrd.img" in pxe and "reconciler.image=compute@2024.11" in pxe
    assert "compute/2024.10/vmlinuz" in boot["ipxe/52-54-00-12-34-0a.ipxe"]


def test_host_without_image_gets_the_discovery_profile(example: DesiredState) -> None:
    assert "svc1" not in {n.host for n in example.node_images}
    boot = {b.path: b.content for b in example.boot_files}
    ipxe = boot["ipxe/52-54-00-bb-00-01.ipxe"]
    assert "discovery profile" in ipxe
    assert "chain --replace --autofree http://boot:8080/ipxe/discovery.ipxe" in ipxe
    # The script it chains to is compiled too (written to the TFTP root, served over HTTP):
    # it waits, then asks for this MAC's script again, which boots an image once assigned.
    assert (
        "chain --replace --autofree http://boot:8080/boot/${net0/mac}"
        in boot["ipxe/discovery.ipxe"]
    )
    assert "LOCALBOOT 0" in boot["pxelinux.cfg/01-52-54-00-bb-00-01"]


def test_boot_profile_local_without_image_stays_local(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(image=None, boot="local")})
    state = compile_inventory(load(root))
    assert state.node_images == ()
    ipxe = {b.path: b.content for b in state.boot_files}["ipxe/52-54-00-00-00-0a.ipxe"]
    assert "sanboot" in ipxe


def test_boot_file_paths() -> None:
    assert pxelinux_path("52:54:00:ab:cd:ef") == "pxelinux.cfg/01-52-54-00-ab-cd-ef"
    assert ipxe_path("52:54:00:ab:cd:ef") == "ipxe/52-54-00-ab-cd-ef.ipxe"


def test_every_host_gets_both_boot_files(example: DesiredState) -> None:
    paths = [b.path for b in example.boot_files]
    site_wide = {"boot.ipxe", "ipxe/registration.ipxe", "ipxe/discovery.ipxe"}
    site_wide.add("pxelinux.cfg/default")
    assert site_wide <= set(paths)
    assert len(paths) == len(set(paths)) == 2 * len(example.dhcp_hosts) + len(site_wide)
    for dhcp_host in example.dhcp_hosts:
        dashed = dhcp_host.mac.replace(":", "-")
        assert f"pxelinux.cfg/01-{dashed}" in paths
        assert f"ipxe/{dashed}.ipxe" in paths


def test_compile_is_deterministic() -> None:
    first = compile_inventory(load(EXAMPLE))
    second = compile_inventory(load(EXAMPLE))
    assert first == second
    assert [r.key for r in first.dns_records] == [r.key for r in second.dns_records]
    assert [b.path for b in first.boot_files] == [b.path for b in second.boot_files]
    assert first.hosts_by_mac == second.hosts_by_mac


def test_first_address_offset(tmp_path: Path) -> None:
    compute = group(first_address="10.23.45.100", hosts=[host(7, "52:54:00:00:00:07")])
    state = compile_inventory(load(write_inventory(tmp_path, groups={"compute": compute})))
    (dhcp_host,) = state.dhcp_hosts
    assert (dhcp_host.hostname, dhcp_host.ip) == ("node007", "10.23.45.107")
    assert records(state, "PTR")[f"107.{REV}"].values == (f"node007.{FWD}",)
