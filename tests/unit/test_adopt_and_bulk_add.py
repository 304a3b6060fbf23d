"""``reconciler adopt`` on the file targets, and ``reconciler hosts add``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from tests.unit.site_fixture import Site

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def hand_made(site: Site) -> dict[str, str]:
    """Apply, then forget ownership: the objects exist as if someone else made them."""
    assert run("apply", "-c", str(site.config))[0] == 0
    for ledger in (site.root / "state").glob("*.owned.json"):
        ledger.unlink()
    return site.files()


def test_adopt_takes_exact_matches_lists_the_others_and_rewrites_nothing(site: Site) -> None:
    before = hand_made(site)
    hosts_file = site.root / "out" / "dhcpd.hosts.conf"
    hosts_file.write_text(hosts_file.read_text().replace("10.23.45.11;", "10.23.45.111;"))
    before = site.files()
    code, out, err = run("plan", "-c", str(site.config))
    # Every object exists, someone else's: nothing to create, nothing ours; but node011's
    # differs from the inventory, and a conflict is an error (exit 2) naming it.
    assert code == 2 and "dhcp: node011 held by objects the reconciler did not create" in err
    code, out, err = run("adopt", "-c", str(site.config))
    assert code == 0, err
    assert "dhcp: adopted 7, already owned 0, differing (left unmanaged) 1" in out
    assert "differs: node011 (ip: live '10.23.45.111', inventory '10.23.45.11')" in out
    assert site.files() == before  # nothing rewritten
    owned = json.loads((site.root / "state" / "dhcp.owned.json").read_text())["owned"]
    assert "node011" not in owned and "node010" in owned
    code, out, _ = run("plan", "-c", str(site.config), "--format", "json")
    body = json.loads(out)
    by_target = {t["target"]: t for t in body["targets"]}
    assert by_target["dhcp"]["changes"] == []
    assert by_target["dhcp"]["conflicts"] == ["node011"]
    assert all(not t["changes"] for t in body["targets"]), out
    assert code == 2  # node011 still differs: left unmanaged, reported as a conflict


def test_a_boot_file_only_the_live_host_has_is_a_difference(site: Site) -> None:
    hand_made(site)
    hosts_file = site.root / "out" / "dhcpd.hosts.conf"
    text = hosts_file.read_text()
    own = 'option host-name "node012"; filename "legacy.0";'
    hosts_file.write_text(text.replace('option host-name "node012";', own))
    code, out, err = run("adopt", "-c", str(site.config), "--dry-run")
    assert code == 0, err
    assert "differs: node012 (filename: live 'legacy.0', inventory None)" in out


def test_adopt_dry_run_records_nothing(site: Site) -> None:
    hand_made(site)
    code, out, _ = run("adopt", "-c", str(site.config), "--dry-run")
    assert code == 0
    assert "dhcp: would adopt 8" in out
    assert not list((site.root / "state").glob("*.owned.json"))


def test_adopt_counts_what_is_already_owned_and_what_is_missing(site: Site) -> None:
    code, out, _ = run("adopt", "-c", str(site.config))
    assert code == 0
    assert (
        "dhcp: adopted 0, already owned 0, differing (left unmanaged) 0, missing (apply creates) 8"
        in out
    )
    run("apply", "-c", str(site.config))
    code, out, _ = run("adopt", "-c", str(site.config))
    assert "dhcp: adopted 0, already owned 8" in out


GROUP = """\
# The compute rack; blades by slot.
name: compute
subnet: 10.23.45.0/24
gateway: 10.23.45.1
hostname: "node%03d"   # the sticker
unregistered_range: 10.23.45.200-10.23.45.250
hosts:
  - index: 10
    mac: "52:54:00:12:34:0a"
  - index: 12   # slot 11 is empty
    mac: "52:54:00:12:34:0c"
"""


def small_inventory(tmp_path: Path) -> Path:
    root = tmp_path / "inventory"
    (root / "groups").mkdir(parents=True)
    (root / "site.yaml").write_text("domain: cluster.example\n")
    (root / "groups" / "compute.yaml").write_text(GROUP)
    return root


def test_hosts_add_appends_after_the_highest_index_keeping_comments(tmp_path: Path) -> None:
    root = small_inventory(tmp_path)
    macs = tmp_path / "macs.txt"
    macs.write_text("# from the switch\n52-54-00-12-34-20\n\n52:54:00:12:34:21  # slot 14\n")
    code, out, err = run("hosts", "add", "compute", "--macs", str(macs), "--inventory", str(root))
    assert code == 0, err
    assert "node013: index 13, 52:54:00:12:34:20" in out
    assert "node014: index 14, 52:54:00:12:34:21" in out
    text = (root / "groups" / "compute.yaml").read_text()
    assert text.startswith(GROUP)  # every line people wrote is kept as it was
    assert text[len(GROUP) :] == (
        '  - index: 13\n    mac: "52:54:00:12:34:20"\n  - index: 14\n    mac: "52:54:00:12:34:21"\n'
    )
    assert run("validate", str(root))[0] == 0


def test_hosts_add_from_a_start_skips_used_indexes(tmp_path: Path) -> None:
    root = small_inventory(tmp_path)
    macs = tmp_path / "macs.txt"
    macs.write_text("52:54:00:12:34:30\n52:54:00:12:34:31\n")
    code, out, _ = run(
        "hosts", "add", "compute", "--macs", str(macs), "--inventory", str(root), "--start", "11"
    )
    assert code == 0
    assert "node011: index 11" in out and "node013: index 13" in out


def test_hosts_add_refuses_what_would_be_invalid_and_writes_nothing(tmp_path: Path) -> None:
    root = small_inventory(tmp_path)
    macs = tmp_path / "macs.txt"
    macs.write_text("52:54:00:12:34:40\n52:54:00:12:34:0a\n")  # the second is node010's
    code, _, err = run("hosts", "add", "compute", "--macs", str(macs), "--inventory", str(root))
    assert code == 2
    assert "nothing was written" in err
    assert "MAC 52:54:00:12:34:0a is already used by groups/compute.yaml hosts[0]" in err
    assert (root / "groups" / "compute.yaml").read_text() == GROUP
    # 240 + 12 hosts would run past the subnet (and into the unregistered range first)
    macs.write_text("".join(f"52:54:00:13:00:{i:02x}\n" for i in range(200)))
    code, _, err = run("hosts", "add", "compute", "--macs", str(macs), "--inventory", str(root))
    assert code == 2
    assert "inside the unregistered range" in err
    assert (root / "groups" / "compute.yaml").read_text() == GROUP


def test_hosts_add_bad_mac_file_names_the_line(tmp_path: Path) -> None:
    root = small_inventory(tmp_path)
    macs = tmp_path / "macs.txt"
    macs.write_text("52:54:00:12:34:40\nnot-a-mac\n")
    code, _, err = run("hosts", "add", "compute", "--macs", str(macs), "--inventory", str(root))
    assert code == 2
    assert f"{macs}:2: expected one MAC address" in err.replace("\n", "")
    macs.write_text("52:54:00:12:34:40\n52-54-00-12-34-40\n")
    code, _, err = run("hosts", "add", "compute", "--macs", str(macs), "--inventory", str(root))
    assert "is already on line 1" in err
    macs.write_text("52:54:00:12:34:40\n")
    code, _, err = run("hosts", "add", "gpu", "--macs", str(macs), "--inventory", str(root))
    assert code == 2 and "no group 'gpu' (groups: compute)" in err


def test_adopt_waits_for_the_state_lock_and_gives_up_clearly(site: Site) -> None:
    from reconciler.statelock import StateLock

    with StateLock(site.root / "state", purpose="apply", timeout=1):
        code, _, err = run("adopt", "-c", str(site.config), "--lock-timeout", "0")
    assert code == 2
    assert "apply" in err and "Traceback" not in err


def test_a_hand_made_boot_ipxe_at_the_tftp_root_is_not_overwritten(site: Site) -> None:
    root = site.root / "out" / "tftp"
    root.mkdir(parents=True)
    (root / "boot.ipxe").write_text("#!ipxe\nchain http://old-server/menu.ipxe\n")
    _, out, _ = run("plan", "-c", str(site.config), "--format", "json")
    boot = next(t for t in json.loads(out)["targets"] if t["target"] == "boot")
    assert "boot.ipxe" in boot["conflicts"]
    assert "boot.ipxe" not in [c["key"] for c in boot["changes"]]
    run("apply", "-c", str(site.config))
    assert (root / "boot.ipxe").read_text() == "#!ipxe\nchain http://old-server/menu.ipxe\n"
    code, out, _ = run("adopt", "-c", str(site.config))
    assert code == 0
    assert "differs: boot.ipxe (content: live '#!ipxe\\nchain http://old-server" in out
