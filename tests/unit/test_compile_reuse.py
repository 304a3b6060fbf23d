"""A long-running process reuses whole groups and diffs revisions by the objects that
differ: after any edit, what it compiles and plans is exactly what a fresh process gives.

A site of a few groups is edited at random, revision after revision (hosts added,
removed, moved between groups, re-addressed; a group's settings, image, boot
profile or addresses; an image's content; the site's TTL; now and then an
invalid edit that another group's host makes invalid). Each revision is loaded
and compiled by one engine that keeps its caches, as ``watch`` does, and by a
fresh one; the two must be equal, and so must the plan from the previous
revision that the watch loop computes (``GoodRevision.changes_since``) and the
one a full diff gives.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.compile import compile_inventory
from reconciler.engine import Engine
from reconciler.inventory.sources import FolderSource
from reconciler.model.problems import InventoryError
from reconciler.plan import compute_changes
from reconciler.resources import DesiredState, DnsRecord
from reconciler.shared_runs import shared_ends
from reconciler.targets.base import LiveState, Target
from reconciler.watch.revision import GoodRevision
from tests.unit.site_fixture import Site

IMAGE = """\
name: compute
versions:
{versions}"""
VERSION = """\
  "{name}":
    kernel: {{url: "http://boot.example/{name}/k", sha256: "{k}"}}
    initrd: {{url: "http://boot.example/{name}/i", sha256: "{i}"}}
    rootfs: {{url: "http://boot.example/{name}/r", sha256: "{r}"}}
    cmdline: "{cmdline}"
"""


@dataclass
class RandomSite:
    """The inventory as plain data, written the way people write it (one host a few lines)."""

    folder: Path
    rng: random.Random
    groups: list[dict[str, Any]] = field(default_factory=list)
    cmdline: str = "console=ttyS0"
    ttl: int = 300
    next_mac: int = 1

    def __post_init__(self) -> None:
        for number in range(4):
            hosts = [self.new_host(index) for index in range(1, 9)]
            self.groups.append(
                {"name": f"g{number}", "net": number, "hostname": f"g{number}n%03d",
                 "first": 0, "image": "compute@1.0", "boot": "default",
                 "dhcp_filename": "per-host", "hosts": hosts}
            )  # fmt: skip

    def new_host(self, index: int) -> dict[str, Any]:
        self.next_mac += 1
        return {
            "index": index,
            "mac": f"52:54:00:00:{self.next_mac >> 8:02x}:{self.next_mac & 255:02x}",
        }

    def write(self) -> None:
        (self.folder / "groups").mkdir(parents=True, exist_ok=True)
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        (self.folder / "site.yaml").write_text(f"domain: cluster.example\nttl: {self.ttl}\n")
        sums = {"k": "a" * 64, "i": "b" * 64, "r": "c" * 64}
        versions = "".join(
            VERSION.format(name=v, cmdline=f"{self.cmdline} v={v}", **sums) for v in ("1.0", "1.1")
        )
        (self.folder / "images" / "compute.yaml").write_text(IMAGE.format(versions=versions))
        for old in (self.folder / "groups").glob("*.yaml"):
            old.unlink()
        for group in self.groups:
            net = group["net"]
            lines = [
                f"name: {group['name']}", f"subnet: 10.30.{net}.0/24", f"gateway: 10.30.{net}.254",
                f'hostname: "{group["hostname"]}"', f"first_address: 10.30.{net}.{group['first']}",
                f"unregistered_range: 10.30.{net}.200-10.30.{net}.250",
                f"image: {group['image']}", f"boot: {group['boot']}",
                f"dhcp_filename: {group['dhcp_filename']}", "hosts:",
            ]  # fmt: skip
            for host in group["hosts"]:
                lines += [f"  - index: {host['index']}", f'    mac: "{host["mac"]}"']
                lines += [
                    f"    {key}: {value}"
                    for key, value in host.items()
                    if key not in ("index", "mac")
                ]
            (self.folder / "groups" / f"{group['name']}.yaml").write_text("\n".join(lines) + "\n")

    def free_index(self, group: dict[str, Any]) -> int:
        used = {h["index"] for h in group["hosts"]}
        return self.rng.choice([i for i in range(1, 150) if i not in used])

    def edit(self) -> str:
        """One random edit; returns what it did."""
        rng = self.rng
        group = rng.choice(self.groups)
        hosts = group["hosts"]
        kind = rng.choice(
            ["add", "add", "remove", "mac", "move", "alias", "canary", "group-image", "boot",
             "dhcp-filename", "first-address", "hostname", "image-content", "ttl", "index"]
        )  # fmt: skip
        if kind == "add" or (not hosts and kind in ("remove", "mac", "move", "alias", "canary")):
            hosts.insert(rng.randrange(len(hosts) + 1), self.new_host(self.free_index(group)))
            return "add"
        if kind == "remove":
            hosts.pop(rng.randrange(len(hosts)))
        elif kind == "mac":
            rng.choice(hosts)["mac"] = self.new_host(0)["mac"]
        elif kind == "move":
            other = rng.choice([g for g in self.groups if g is not group])
            moved = hosts.pop(rng.randrange(len(hosts)))
            moved["index"] = self.free_index(other)
            other["hosts"].append(moved)
        elif kind == "alias":
            host = rng.choice(hosts)
            host["aliases"] = f"[a{self.next_mac}]"
            self.next_mac += 1
        elif kind == "canary":
            host = rng.choice(hosts)
            if "image" in host:
                del host["image"]
            else:
                host["image"] = "compute@1.1"
        elif kind == "group-image":
            group["image"] = "compute@1.1" if group["image"] == "compute@1.0" else "compute@1.0"
        elif kind == "boot":
            group["boot"] = rng.choice(["default", "local", "discovery"])
        elif kind == "dhcp-filename":
            group["dhcp_filename"] = rng.choice(["per-host", "subnet"])
        elif kind == "first-address":
            group["first"] = rng.choice([0, 10, 20])
        elif kind == "hostname":
            group["hostname"] = rng.choice([f"{group['name']}n%03d", f"{group['name']}x%02d"])
        elif kind == "image-content":
            self.cmdline = rng.choice(["console=ttyS0", "console=ttyS1", "quiet"])
        elif kind == "ttl":
            self.ttl = rng.choice([300, 600])
        elif kind == "index" and hosts:
            rng.choice(hosts)["index"] = self.free_index(group)
        return kind


def fresh_compile(site: Site, folder: Path) -> DesiredState:
    """A fresh process's compile; also checked against a one-off command's (no cache kept,
    no per-host keys) and every boot file rendered by jinja2 (the group's ``str.format``
    patterns of ``reconciler.boot_format`` off)."""
    engine = site.engine()
    inventory = engine.load(FolderSource(folder))
    state = compile_inventory(inventory, templates=engine.templates, options=engine.options)
    one_off = Engine(engine.config, keep_caches=False)
    assert one_off.compile(one_off.load(FolderSource(folder))) == state
    assert one_off.compile_cache.keeps is False and one_off.load_cache is None
    engine.templates.formats = False
    rendered = compile_inventory(inventory, templates=engine.templates, options=engine.options)
    assert rendered.boot_files == state.boot_files
    return state


def full_diff(target: Target, before: DesiredState, after: DesiredState) -> tuple[Any, ...]:
    old = {r.key: r for r in target.desired(before)}
    return compute_changes(target.desired(after), LiveState(owned=old))


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_compile_and_plan_as_from_scratch(
    site: Site, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    inventory = RandomSite(tmp_path / "inventory", rng)
    inventory.write()
    engine = site.engine()  # keeps its load and compile caches, as watch does
    previous = GoodRevision("r0", engine.compile(engine.load(FolderSource(inventory.folder))))
    fresh_previous = fresh_compile(site, inventory.folder)
    reused = 0
    for step in range(25):
        kept = copy.deepcopy(inventory.groups)
        what = inventory.edit()
        if rng.random() < 0.15:  # a host elsewhere takes a MAC another group's host has
            victim = rng.choice([g for g in inventory.groups if g["hosts"]])
            other = rng.choice(
                [g for g in inventory.groups if g["hosts"] and g is not victim] or [victim]
            )
            rng.choice(victim["hosts"])["mac"] = rng.choice(other["hosts"])["mac"]
            inventory.write()
            with pytest.raises(InventoryError):
                engine.load(FolderSource(inventory.folder))
            inventory.groups = kept
            inventory.write()
            continue
        inventory.write()
        state = engine.compile(engine.load(FolderSource(inventory.folder)))
        fresh = fresh_compile(site, inventory.folder)
        assert state == fresh, f"step {step}: {what}"
        assert state.hosts_by_mac == fresh.hosts_by_mac
        reused += engine.compile_cache.groups_reused
        good = GoodRevision(f"r{step + 1}", state)
        for target in engine.targets:
            assert good.changes_since(previous, target) == full_diff(
                target, fresh_previous, fresh
            ), f"step {step}: {what}, target {target.name}"
        previous, fresh_previous = good, fresh
    assert reused > 0  # the shortcut was taken, not only the slow path


def test_a_one_host_edit_reuses_every_other_group(site: Site, tmp_path: Path) -> None:
    inventory = RandomSite(tmp_path / "inventory", random.Random(1))
    inventory.write()
    engine = site.engine()
    engine.compile(engine.load(FolderSource(inventory.folder)))
    inventory.groups[2]["hosts"].append(inventory.new_host(100))
    inventory.write()
    state = engine.compile(engine.load(FolderSource(inventory.folder)))
    assert engine.compile_cache.groups_reused == 3
    assert state == fresh_compile(site, inventory.folder)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.groups[0].update(boot="local"),
        lambda s: s.groups[0].update(image="compute@1.1"),
        lambda s: s.groups[0].update(first=20),
        lambda s: s.groups[0].update(dhcp_filename="subnet"),
        lambda s: setattr(s, "cmdline", "quiet"),
        lambda s: setattr(s, "ttl", 600),
    ],
    ids=["boot-profile", "group-image", "addresses", "dhcp-filename", "image-content", "site-ttl"],
)
def test_a_change_every_host_of_a_group_sees_is_never_reused(
    site: Site, tmp_path: Path, edit: Any
) -> None:
    inventory = RandomSite(tmp_path / "inventory", random.Random(2))
    inventory.write()
    engine = site.engine()
    before = engine.compile(engine.load(FolderSource(inventory.folder)))
    edit(inventory)
    inventory.write()
    after = engine.compile(engine.load(FolderSource(inventory.folder)))
    assert after == fresh_compile(site, inventory.folder) != before


def test_rollout_assignments_reach_only_the_groups_they_name(site: Site, tmp_path: Path) -> None:
    inventory = RandomSite(tmp_path / "inventory", random.Random(3))
    inventory.write()
    engine = site.engine()
    loaded = engine.load(FolderSource(inventory.folder))
    engine.compile(loaded, assignments={"g1n001": "compute@1.0"})
    moved = {"g1n001": "compute@1.0", "g3n002": "compute@1.1", "gone": "compute@9"}
    state = engine.compile(loaded, assignments=moved)
    assert engine.compile_cache.groups_reused == 3  # g0, g1 (same assignment) and g2
    fresh = compile_inventory(
        loaded, templates=engine.templates, options=engine.options, assignments=moved
    )
    assert state == fresh
    versions = {n.host: n.version for n in state.node_images}
    assert versions["g3n002"] == "1.1" and versions["g3n001"] == "1.0"


def test_a_key_held_twice_is_planned_key_by_key(site: Site) -> None:
    """Two records with one key: which one wins depends on order, so no shortcut."""
    engine = site.engine()
    dns = next(t for t in engine.targets if t.name == "dns")
    a = DnsRecord("cluster.example.", "x.cluster.example.", "A", 300, ("10.0.0.1",))
    b = DnsRecord("cluster.example.", "x.cluster.example.", "A", 300, ("10.0.0.2",))
    c = DnsRecord("cluster.example.", "y.cluster.example.", "A", 300, ("10.0.0.3",))
    for old, new in [((a, c), (a, c, b)), ((a, b, c), (b, c)), ((a, c), (c, a)), ((a, b), (b, a))]:
        before, after = DesiredState(dns_records=old), DesiredState(dns_records=new)
        changes = GoodRevision("2", after).changes_since(GoodRevision("1", before), dns)
        assert changes == full_diff(dns, before, after)


def test_a_refused_compile_leaves_the_cache_usable(site: Site, tmp_path: Path) -> None:
    """A compile that fails half-way (a boot template error) is not what the next one
    compares against."""
    inventory = RandomSite(tmp_path / "inventory", random.Random(4))
    inventory.write()
    engine: Engine = site.engine()
    engine.compile(engine.load(FolderSource(inventory.folder)))
    inventory.groups[1]["boot"] = "local"
    inventory.write()
    loaded = engine.load(FolderSource(inventory.folder))
    render = engine.templates.render

    def failing(profile: str, kind: str, context: Any) -> str:
        if profile == "local":
            raise RuntimeError("template broken")
        return render(profile, kind, context)

    engine.templates.render = failing  # type: ignore[method-assign]
    engine.templates.formats = False  # every file through render, which fails
    with pytest.raises(RuntimeError):
        engine.compile(loaded)
    engine.templates.render = render  # type: ignore[method-assign]
    engine.templates.formats = True
    inventory.groups[1]["boot"] = "default"
    inventory.groups[0]["hosts"].pop()
    inventory.write()
    state = engine.compile(engine.load(FolderSource(inventory.folder)))
    assert state == fresh_compile(site, inventory.folder)


def test_a_plan_made_again_and_the_previous_key_map_asked_again(site: Site, tmp_path: Path) -> None:
    """The previous revision hands its key map on; a retried plan and a later question
    to the previous revision still get the right answers."""
    inventory = RandomSite(tmp_path / "inventory", random.Random(5))
    inventory.write()
    engine = site.engine()
    previous = GoodRevision("1", engine.compile(engine.load(FolderSource(inventory.folder))))
    inventory.groups[1]["hosts"].pop(0)
    inventory.groups[3]["hosts"].append(inventory.new_host(120))
    inventory.write()
    good = GoodRevision("2", engine.compile(engine.load(FolderSource(inventory.folder))))
    for target in engine.targets:
        expected = full_diff(target, previous.state, good.state)
        assert expected and good.changes_since(previous, target) == expected
        assert good.changes_since(previous, target) == expected  # a retry
        assert previous.keys(target) == {r.key: r for r in previous.desired(target)}
        assert good.keys(target) == {r.key: r for r in good.desired(target)}


@pytest.mark.parametrize("seed", range(20))
def test_shared_ends_as_a_plain_walk_finds_them(seed: int) -> None:
    rng = random.Random(seed)
    items = [object() for _ in range(rng.randrange(0, 700))]
    old = list(items)
    new = list(items)
    for _ in range(rng.randrange(0, 4)):
        at = rng.randrange(len(new) + 1)
        if rng.random() < 0.5 and new:
            del new[min(at, len(new) - 1)]
        else:
            new.insert(at, object())
    shorter = min(len(old), len(new))
    head = next((i for i in range(shorter) if old[i] is not new[i]), shorter)
    tail = 0
    if head < shorter:
        rest = shorter - head
        tail = next((i for i in range(rest) if old[-1 - i] is not new[-1 - i]), rest)
    assert shared_ends(old, tuple(new)) == (head, tail)
