"""`reconciler diff` in host terms: image changes part by part, a reboot count, safe Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.hostdiff import diff_inventories
from reconciler.hostdiff_render import (
    md_code,
    md_text,
    render_diff_json,
    render_diff_markdown,
    render_diff_text,
)
from reconciler.model.inventory import Inventory
from tests.unit.inventory_factory import SHA, group, host, image, load, version, write_inventory


def two(tmp_path: Path, base: dict[str, Any], head: dict[str, Any]) -> tuple[Inventory, Inventory]:
    return (
        load(write_inventory(tmp_path / "base", **base)),
        load(write_inventory(tmp_path / "head", **head)),
    )


def test_a_group_image_bump_lists_every_boot_part_and_counts_the_nodes(tmp_path: Path) -> None:
    base, head = two(tmp_path, {}, {"groups": {"compute": group(image="compute@2024.11")}})
    diff = diff_inventories(base, head)
    text = render_diff_text(diff, "main", "pr")
    assert "No host changes" not in text
    assert "image compute@2024.10 -> compute@2024.11 (kernel, initrd, rootfs, cmdline)" in text
    assert "http://boot.cluster.example/compute/2024.11/vmlinuz" in text
    assert "'console=ttyS0 v=2024.10' -> 'console=ttyS0 v=2024.11'" in text
    assert "2 nodes would reboot or swap" in text
    body = json.loads(render_diff_json(diff, "main", "pr"))
    assert body["would_reboot_or_swap"] == 2
    parts = {p["part"] for p in body["changes"][0]["parts"]}
    assert parts == {"kernel", "initrd", "rootfs", "cmdline"}


def test_an_image_version_edited_in_place_shows_only_what_changed(tmp_path: Path) -> None:
    edited = image()
    edited["versions"]["2024.10"]["cmdline"] = "console=ttyS0 quiet"
    edited["versions"]["2024.10"]["rootfs"]["sha256"] = SHA["kernel"]
    base, head = two(tmp_path, {}, {"images": {"compute": edited}})
    diff = diff_inventories(base, head)
    assert [c.kind for c in diff.changes] == ["image", "image"]
    assert [p.part for p in diff.changes[0].parts] == ["rootfs", "cmdline"]
    text = render_diff_text(diff, "a", "b")
    assert "image compute@2024.10 changed in place (rootfs, cmdline)" in text
    assert f"sha256:{SHA['rootfs']}" in text and f"sha256:{SHA['kernel']}" in text
    assert "2 nodes would reboot or swap" in text
    markdown = render_diff_markdown(diff, "a", "b")
    assert "**2 nodes would reboot or swap" in markdown
    assert "  - cmdline: `console=ttyS0 v=2024.10` → `console=ttyS0 quiet`" in markdown


def test_a_version_nobody_runs_changes_no_host(tmp_path: Path) -> None:
    edited = image()
    edited["versions"]["2024.11"]["cmdline"] = "console=ttyS0 quiet"
    base, head = two(tmp_path, {}, {"images": {"compute": edited}})
    diff = diff_inventories(base, head)
    assert diff.changes == []
    assert render_diff_text(diff, "a", "b") == "No host changes between a and b.\n"


def test_new_hosts_and_discovery_hosts_are_counted_apart(tmp_path: Path) -> None:
    hosts = [host(10, "52:54:00:00:00:0a"), host(11, "52:54:00:00:00:0b", image="compute@2024.11")]
    head_group = group(image=None, hosts=[*hosts, host(12, "52:54:00:00:00:0c")])
    base, head = two(
        tmp_path, {"groups": {"compute": group(hosts=hosts)}}, {"groups": {"compute": head_group}}
    )
    diff = diff_inventories(base, head)
    kinds = {(c.hostname, c.kind) for c in diff.changes}
    # node010 goes from compute@2024.10 to discovery; node011 keeps its own image;
    # node012 is new: it boots for the first time, nothing running would reboot.
    assert kinds == {("node010", "image"), ("node012", "added")}
    assert "image compute@2024.10 -> (discovery)" in diff.changes[0].detail
    assert "1 node would reboot or swap" in render_diff_text(diff, "a", "b")


def test_markdown_escapes_names_and_revisions(tmp_path: Path) -> None:
    odd = {
        "name": "compute",
        "versions": {
            "2024.10": version("compute", "2024.10"),
            "v_1_": version("compute", "v_1_", "a|b *x*"),
        },
    }
    base, head = two(
        tmp_path,
        {"images": {"compute": odd}},
        {"images": {"compute": odd}, "groups": {"compute": group(image="compute@v_1_")}},
    )
    markdown = render_diff_markdown(diff_inventories(base, head), "feat/`x`", "HEAD")
    assert "### Host changes `` feat/`x` `` → `HEAD`" in markdown
    assert r"image compute@2024.10 -\> compute@v\_1\_" not in markdown  # ">" stays readable
    assert r"image compute@2024.10 -> compute@v\_1\_ \(kernel" in markdown
    assert "`a|b *x*`" in markdown  # in a list item a code span needs no escapes
    for line in markdown.splitlines():
        if line.startswith("| `node"):
            assert line.count("|") - line.count("\\|") == 4, line  # three cells, no more


def test_markdown_helpers() -> None:
    assert md_text("a_b*c|d<e>[f](g)") == r"a\_b\*c\|d\<e>\[f\]\(g\)"
    assert md_code("x`y") == "``x`y``"
    assert md_code("`y") == "`` `y ``"
    assert md_code("a|b", in_table=True) == r"`a\|b`"


def test_a_large_diff_fits_in_a_pull_request_comment(tmp_path: Path) -> None:
    many = [host(i, f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}") for i in range(10, 1010)]
    base, head = two(
        tmp_path,
        {"groups": {"compute": group(subnet="10.23.0.0/16", gateway="10.23.0.1",
                                     unregistered_range=None, hosts=many)}},
        {"groups": {"compute": group(subnet="10.23.0.0/16", gateway="10.23.0.1",
                                     unregistered_range=None, hosts=many,
                                     image="compute@2024.11")}},
    )  # fmt: skip
    diff = diff_inventories(base, head)
    markdown = render_diff_markdown(diff, "main", "pr")
    assert len(markdown) < 65_536
    assert "... and 800 more (`reconciler diff --format json` has all)" in markdown
    assert "**1000 nodes would reboot or swap" in markdown
    assert json.loads(render_diff_json(diff, "main", "pr"))["would_reboot_or_swap"] == 1000


def test_a_change_of_what_the_dhcp_entry_boots_is_listed_per_host(tmp_path: Path) -> None:
    base_hosts = [
        host(10, "52:54:00:00:00:0a", filename="legacy/a.0"),
        host(11, "52:54:00:00:00:0b"),
    ]
    head_hosts = [
        host(10, "52:54:00:00:00:0a", filename="legacy/b.0", next_server="10.23.45.9"),
        host(11, "52:54:00:00:00:0b"),
    ]
    base, head = two(
        tmp_path,
        {"groups": {"compute": group(hosts=base_hosts)}},
        {"groups": {"compute": group(hosts=head_hosts, dhcp_filename="subnet")}},
    )
    diff = diff_inventories(base, head)
    assert [(c.kind, c.hostname, c.detail) for c in diff.changes] == [
        (
            "dhcp-boot",
            "node010",
            "DHCP boot file: filename legacy/a.0 -> filename legacy/b.0, next-server 10.23.45.9",
        ),
        ("dhcp-boot", "node011", "DHCP boot file: its iPXE script -> the subnet's filename"),
    ]
    assert diff.image_changes == []  # no node reboots for it
