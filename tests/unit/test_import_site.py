"""``reconciler import`` on files: groups inferred, conflicts listed, nothing half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.compile import compile_inventory
from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import FolderSource

runner = CliRunner()

DHCPD = """\
option domain-name "cluster.example";
subnet 10.23.45.0 netmask 255.255.255.0 {
  option routers 10.23.45.1;
  pool { range 10.23.45.200 10.23.45.250; }
  next-server 10.23.45.2;
  filename "pxelinux.0";
}
subnet 10.23.46.0 netmask 255.255.255.0 { option routers 10.23.46.1; }
group {
%s
}
host login { hardware ethernet 52:54:00:00:01:00; fixed-address 10.23.45.5; }
host gpu01 { hardware ethernet 52:54:00:00:02:01; fixed-address 10.23.46.101; }
host gpu02 { hardware ethernet 52:54:00:00:02:02; fixed-address 10.23.46.102; }
host gpu03 { hardware ethernet 52:54:00:00:02:03; fixed-address 10.23.46.103; }
"""
NODES = "\n".join(
    f"  host node{i:03d} {{ hardware ethernet 52:54:00:00:00:{i:02x}; "
    f"fixed-address 10.23.45.{i}; }}"
    for i in range(10, 20)
)
ZONE = """\
$TTL 600
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 10.23.45.2
login IN A 10.23.45.5
%s
"""


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["import", *args])
    return result.exit_code, result.stdout, result.stderr


def write_site(tmp_path: Path, *, nodes: str = NODES, zone_extra: str = "") -> Path:
    (tmp_path / "dhcpd.conf").write_text(DHCPD % nodes)
    a_records = "\n".join(f"node{i:03d} IN A 10.23.45.{i}" for i in range(10, 20))
    (tmp_path / "db.cluster.example").write_text(ZONE % (a_records + "\n" + zone_extra))
    ptrs = "\n".join(f"{i} IN PTR node{i:03d}.cluster.example." for i in range(10, 20))
    (tmp_path / "45.23.10.in-addr.arpa.zone").write_text(
        "$TTL 600\n@ IN SOA ns1.cluster.example. h.cluster.example. 1 2 3 4 5\n"
        "@ IN NS ns1.cluster.example.\n" + ptrs + "\n5 IN PTR login.cluster.example.\n"
    )
    return tmp_path


def zone_args(root: Path) -> list[str]:
    return [
        "--dhcpd-conf",
        str(root / "dhcpd.conf"),
        "--zone",
        str(root / "db.cluster.example"),
        "--zone",
        str(root / "45.23.10.in-addr.arpa.zone"),
    ]


def group_file(out: Path, name: str) -> dict[str, object]:
    data = yaml.safe_load((out / "groups" / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def group_hosts(out: Path, name: str) -> list[dict[str, object]]:
    hosts = group_file(out, name)["hosts"]
    assert isinstance(hosts, list) and all(isinstance(h, dict) for h in hosts)
    return hosts


def test_a_regular_site_becomes_groups_with_formats_and_offsets(tmp_path: Path) -> None:
    root = write_site(tmp_path)
    out = tmp_path / "inventory"
    code, stdout, _ = run("--out", str(out), *zone_args(root))
    assert code == 0, stdout
    inventory = load_inventory(FolderSource(out))
    assert inventory.site.domain == "cluster.example"
    assert inventory.site.ttl == 600
    node = group_file(out, "node")
    assert node["hostname"] == "node%03d"
    assert "first_address" not in node  # address = network + index holds for all
    assert node["unregistered_range"] == "10.23.45.200-10.23.45.250"
    assert len(group_hosts(out, "node")) == 10
    gpu = group_file(out, "gpu")
    assert gpu["hostname"] == "gpu%02d"
    assert gpu["first_address"] == "10.23.46.100"
    other = group_file(out, "other")
    assert other["hosts"] == [
        {"index": 1, "mac": "52:54:00:00:01:00", "name": "login", "address": "10.23.45.5"}
    ]
    text = (out / "groups" / "node.yaml").read_text()
    assert text.startswith("# From subnet 10.23.45.0/24 (")
    assert "dhcpd.conf:10" in text  # each host names where it came from
    assert "wrote" in stdout
    # Legacy host entries name no per-host iPXE script: the groups keep the subnet's file.
    assert {g.name: g.dhcp_filename for g in inventory.groups} == {
        "node": "subnet",
        "gpu": "subnet",
        "other": "subnet",
    }


def test_a_hosts_own_filename_and_next_server_are_kept(tmp_path: Path) -> None:
    nodes = NODES.replace(
        "fixed-address 10.23.45.12; }",
        'fixed-address 10.23.45.12; filename "legacy/x.0"; next-server 10.23.45.9; }',
    ).replace(
        "fixed-address 10.23.45.13; }",
        "fixed-address 10.23.45.13; next-server boot.example; }",
    )
    root = write_site(tmp_path, nodes=nodes)
    out = tmp_path / "inventory"
    code, stdout, _ = run("--out", str(out), *zone_args(root))
    assert code == 1, stdout  # a conflict: a next-server that is a name
    assert "[boot] node013 (" in stdout and "next-server boot.example, a name" in stdout
    hosts = {h["index"]: h for h in group_hosts(out, "node")}
    assert (hosts[12]["filename"], hosts[12]["next_server"]) == ("legacy/x.0", "10.23.45.9")
    assert "filename" not in hosts[11] and "next_server" not in hosts[13]
    node = next(g for g in load_inventory(FolderSource(out)).groups if g.name == "node")
    assert node.hosts[2].filename == "legacy/x.0"  # the subnet's pxelinux.0 is not its own
    assert node.hosts[1].filename is None


def test_a_filename_every_host_of_a_group_has_is_said_once(tmp_path: Path) -> None:
    root = write_site(tmp_path)
    conf = (root / "dhcpd.conf").read_text()
    (root / "dhcpd.conf").write_text(conf.replace("group {\n", 'group {\n  filename "rack.0";\n'))
    out = tmp_path / "inventory"
    code, stdout, _ = run("--out", str(out), *zone_args(root))
    assert code == 0, stdout
    node = group_file(out, "node")
    assert node["filename"] == "rack.0" and "next_server" not in node
    assert not any("filename" in h for h in group_hosts(out, "node"))
    assert "filename" not in group_file(out, "gpu")  # outside that group
    compiled = compile_inventory(load_inventory(FolderSource(out)))
    files = {h.hostname: h.filename for h in compiled.dhcp_hosts}
    assert files["node010"] == "rack.0" and files["gpu01"] == "" and files["login"] == ""


def test_hosts_off_the_pattern_keep_their_own_address(tmp_path: Path) -> None:
    nodes = (
        NODES
        + "\n  host node077 { hardware ethernet 52:54:00:00:00:77; fixed-address 10.23.45.150; }"
    )
    root = write_site(tmp_path, nodes=nodes)
    out = tmp_path / "inventory"
    code, stdout, _ = run("--out", str(out), "--dhcpd-conf", str(root / "dhcpd.conf"))
    assert code == 0, stdout
    hosts = group_hosts(out, "node")
    assert {"index": 77, "mac": "52:54:00:00:00:77", "address": "10.23.45.150"} in hosts
    assert "the address of 10 of 11 hosts" in (out / "groups" / "node.yaml").read_text()


def test_conflicts_are_listed_and_the_machines_left_out(tmp_path: Path) -> None:
    nodes = NODES + (
        # same MAC as node010, another address
        "\n  host dup { hardware ethernet 52:54:00:00:00:0a; fixed-address 10.23.45.99; }"
        # outside every subnet
        "\n  host far { hardware ethernet 52:54:00:00:09:09; fixed-address 192.168.1.9; }"
    )
    # the A record of node011 points elsewhere
    root = write_site(tmp_path, nodes=nodes)
    zone = (
        (root / "db.cluster.example")
        .read_text()
        .replace("node011 IN A 10.23.45.11", "node011 IN A 10.23.45.111")
    )
    (root / "db.cluster.example").write_text(zone)
    out = tmp_path / "inventory"
    code, stdout, _ = run("--out", str(out), *zone_args(root))
    assert code == 1
    assert "[mac] MAC 52:54:00:00:00:0a has 2 addresses: 10.23.45.10 (" in stdout
    assert "[subnet] far (52:54:00:00:09:09, 192.168.1.9" in stdout
    assert "is outside every subnet" in stdout
    assert "[dns] node011.cluster.example has A 10.23.45.111" in stdout
    load_inventory(FolderSource(out))
    macs = [h["mac"] for h in group_hosts(out, "node")]
    assert "52:54:00:00:00:0a" not in macs


def test_strict_makes_conflicts_fatal_and_writes_nothing(tmp_path: Path) -> None:
    nodes = (
        NODES + "\n  host far { hardware ethernet 52:54:00:00:09:09; fixed-address 192.168.1.9; }"
    )
    root = write_site(tmp_path, nodes=nodes)
    out = tmp_path / "inventory"
    code, stdout, stderr = run(
        "--out", str(out), "--strict", "--dhcpd-conf", str(root / "dhcpd.conf")
    )
    assert code == 2
    assert "outside every subnet" in stdout
    assert "nothing was written" in stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_parse_error_names_file_and_line_and_writes_nothing(tmp_path: Path) -> None:
    root = write_site(tmp_path)
    (root / "db.cluster.example").write_text(
        (root / "db.cluster.example").read_text() + "bad IN A 10.23.45.300\n"
    )
    out = tmp_path / "inventory"
    code, _, stderr = run("--out", str(out), *zone_args(root))
    assert code == 2
    # The line of the bad record itself (dnspython names the line after it).
    assert f"{root / 'db.cluster.example'}:17: " in stderr.replace("\n", "")
    said = " ".join(stderr.split())
    assert "in 'bad IN A 10.23.45.300': expected NAME [TTL] [IN] TYPE DATA" in said
    assert not out.exists()
    (root / "dhcpd.conf").write_text("host a { hardware ethernet 52:54:00:00:00:01 }\n")
    code, _, stderr = run("--out", str(out), "--dhcpd-conf", str(root / "dhcpd.conf"))
    assert code == 2
    assert "dhcpd.conf:1: expected ';' after 'hardware ethernet" in stderr.replace("\n", "")
    assert not out.exists()


def test_an_output_folder_with_content_is_refused(tmp_path: Path) -> None:
    root = write_site(tmp_path)
    out = tmp_path / "inventory"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = run("--out", str(out), "--dhcpd-conf", str(root / "dhcpd.conf"))
    assert code == 2
    assert "not empty" in stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_leases_hosts_made_over_omapi_count_and_deleted_ones_do_not(tmp_path: Path) -> None:
    root = write_site(tmp_path)
    (root / "dhcpd.leases").write_text(
        "lease 10.23.45.201 { starts 1 2024/01/01 00:00:00;\n"
        "  hardware ethernet 52:54:00:99:99:99; }\n"
        "host node020 {\n  dynamic;\n  hardware ethernet 52:54:00:00:00:14;\n"
        "  fixed-address 10.23.45.20;\n}\n"
        "host node021 {\n  dynamic;\n  hardware ethernet 52:54:00:00:00:15;\n"
        "  fixed-address 10.23.45.21;\n}\n"
        "host node021 {\n  dynamic;\n  deleted;\n}\n"
    )
    out = tmp_path / "inventory"
    code, stdout, _ = run(
        "--out", str(out), "--dhcpd-conf", str(root / "dhcpd.conf"),
        "--leases", str(root / "dhcpd.leases"),
    )  # fmt: skip
    assert code == 0, stdout
    indexes = {h["index"] for h in group_hosts(out, "node")}
    assert 20 in indexes and 21 not in indexes


def test_csv_with_groups_and_warewulf(tmp_path: Path) -> None:
    (tmp_path / "hosts.csv").write_text(
        "name,mac,address,group\n"
        "cn1,52:54:00:00:03:01,10.5.0.11,compute\n"
        "cn2,52-54-00-00-03-02,10.5.0.12,compute\n"
        "special,52:54:00:00:03:03,10.5.0.40,compute\n"
    )
    (tmp_path / "nodes.conf").write_text(
        "nodeprofiles: {}\nnodes:\n"
        "  ww01:\n    profiles: [default]\n    network devices:\n"
        "      default: {device: eth0, hwaddr: '52:54:00:00:04:01', ipaddr: 10.6.0.1, "
        "netmask: 255.255.255.0, gateway: 10.6.0.254}\n"
        "  ww02:\n    network devices:\n"
        "      default: {hwaddr: '52:54:00:00:04:02', ipaddr: 10.6.0.2}\n"
    )
    out = tmp_path / "inventory"
    code, stdout, _ = run(
        "--out", str(out), "--domain", "lab.example",
        "--csv", str(tmp_path / "hosts.csv"), "--warewulf", str(tmp_path / "nodes.conf"),
    )  # fmt: skip
    assert code == 0, stdout
    inventory = load_inventory(FolderSource(out))
    names = {g.name: sorted(g.name_of(h) for h in g.hosts) for g in inventory.groups}
    assert names["compute"] == ["cn1", "cn2"]
    assert names["ww"] == ["ww01", "ww02"]
    assert sorted(n for g, hosts in names.items() for n in hosts if g.startswith("other")) == [
        "special"
    ]
    assert "a /24 around them was assumed" in stdout


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "hosts.csv").write_text(
        "cn1,52:54:00:00:03:01,10.5.0.11\ncn2,52:54:00:00:03,10.5.0.12\n"
    )
    code, _, stderr = run(
        "--out", str(tmp_path / "o"), "--domain", "x.example", "--csv", str(tmp_path / "hosts.csv")
    )
    assert code == 2
    assert "hosts.csv:2: expected a MAC address in column 2" in stderr.replace("\n", "")


def _tftp_tree(root: Path) -> dict[str, str]:
    files = {
        "images/compute-2024/vmlinuz": "kernel",
        "images/compute-2024/initrd.img": "initrd",
        "images/compute-2024/root.squashfs": "rootfs",
    }
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in files.items()}


def test_pxelinux_files_become_an_image_that_the_group_boots(tmp_path: Path) -> None:
    root = write_site(tmp_path)
    tftp = tmp_path / "tftp"
    digests = _tftp_tree(tftp)
    (tftp / "pxelinux.cfg").mkdir()
    for i in range(10, 20):
        (tftp / "pxelinux.cfg" / f"01-52-54-00-00-00-{i:02x}").write_text(
            "DEFAULT compute\nLABEL compute\n  KERNEL images/compute-2024/vmlinuz\n"
            "  APPEND initrd=images/compute-2024/initrd.img console=ttyS0 "
            "root=live:http://10.23.45.2/images/compute-2024/root.squashfs\n"
        )
    (tftp / "pxelinux.cfg" / "01-52-54-00-00-02-01").write_text(
        "DEFAULT x\nLABEL x\n  KERNEL vmlinuz-old\n  APPEND initrd=initrd-old nfsroot=10.0.0.1:/x\n"
    )
    out = tmp_path / "inventory"
    code, stdout, _ = run(
        "--out", str(out), "--dhcpd-conf", str(root / "dhcpd.conf"),
        "--pxelinux", str(tftp / "pxelinux.cfg"),
    )  # fmt: skip
    assert code == 1  # gpu01's entry has no root file system: a conflict
    assert "no root file system URL" in stdout
    inventory = load_inventory(FolderSource(out))
    image = inventory.images["compute-2024"].versions["imported"]
    assert image.kernel.url == "tftp://10.23.45.2/images/compute-2024/vmlinuz"
    assert image.kernel.sha256 == digests["images/compute-2024/vmlinuz"]
    assert image.rootfs.sha256 == digests["images/compute-2024/root.squashfs"]
    assert image.cmdline == "console=ttyS0"
    node = next(g for g in inventory.groups if g.name == "node")
    assert node.image == "compute-2024@imported"
    gpu = next(g for g in inventory.groups if g.name == "gpu")
    assert gpu.image is None


def test_an_inventory_that_would_not_validate_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.importer import run as import_run

    def broken(*args: object, **kwargs: object) -> dict[str, str]:
        return {"site.yaml": "domain: x.example\n", "groups/a.yaml": "name: b\n"}

    monkeypatch.setattr(import_run, "render_files", broken)
    root = write_site(tmp_path)
    out = tmp_path / "inventory"
    code, _, stderr = run("--out", str(out), "--dhcpd-conf", str(root / "dhcpd.conf"))
    assert code == 2
    assert "would not be valid, so nothing was written" in stderr
    assert "groups/a.yaml" in stderr
    assert not out.exists()
