"""dns-zonefile's apply from the zones it left (``targets/left_files``, ``ZoneBody``): byte
for byte what a fresh target (a restart: a parse and a full render) writes."""

from __future__ import annotations

import os
import random
import shutil
import time
import types
from pathlib import Path

import pytest

from reconciler.config import RuntimeConfig, SourceConfig
from reconciler.plan import build_target_plan
from reconciler.targets.base import Change
from reconciler.targets.dns_zonefile import ZoneFileTarget, build
from tests.unit.dns_sites import FWD, REV, dns_site

SETTINGS = {"mname": "ns1.cluster.example.", "rname": "hostmaster.cluster.example."}


def target_in(folder: Path) -> ZoneFileTarget:
    config = RuntimeConfig(source=SourceConfig(path=folder), state_dir=folder / "state")
    settings = {**SETTINGS, "directory": str(folder / "zones"), "nameservers": ["ns1." + FWD]}
    return build("dns", settings, config)


def plan(target: ZoneFileTarget, hosts: dict[str, int], aliases: dict[str, str]) -> list[Change]:
    desired = target.desired(dns_site(hosts, aliases=aliases))
    live = target.read(desired)
    return list(
        build_target_plan(
            target=target.name, kind=target.kind, desired=desired, live=live, adopt=True
        ).changes
    )


def hand_edit(path: Path, rng: random.Random) -> None:
    text = path.read_text()
    kind = rng.choice(["append", "same-size", "replace"])
    if kind == "append":
        path.write_text(text + f"byhand{rng.randrange(9)}.{FWD} 300 IN A 10.23.45.250\n")
    elif kind == "same-size" and "10.23.45." in text:
        info = os.stat(path)
        with open(path, "r+") as handle:  # same inode, size and mtime; the ctime moves
            handle.write(text.replace("10.23.45.", "10.23.46.", 1))
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    else:
        swapped = path.with_name("swapped")
        swapped.write_text(text.replace("IN A 10.23.45.", "IN A 10.23.47.", 1))
        swapped.replace(path)


@pytest.mark.parametrize("seed", range(4))
def test_random_edits_write_what_a_full_render_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    clock = types.SimpleNamespace(time=lambda: 1_700_000_000.0)  # the same serial for both
    monkeypatch.setattr("reconciler.targets.dns_zonefile.time", clock)
    rng = random.Random(seed)
    kept, fresh_dir = tmp_path / "kept", tmp_path / "fresh"
    kept.mkdir()
    target = target_in(kept)
    hosts = {f"node{i:03d}": i for i in range(1, 30)}
    aliases: dict[str, str] = {}
    for step in range(40):
        zone_file = target.path_of(rng.choice([FWD, REV]))
        if rng.random() < 0.25 and zone_file.exists():
            time.sleep(rng.choice([0, 0.02]))
            hand_edit(zone_file, rng)
        for _ in range(rng.choice([1, 1, 3])):
            name = f"node{rng.randrange(1, 40):03d}"
            if name in hosts and rng.random() < 0.3:
                del hosts[name]
            elif rng.random() < 0.2:
                aliases[f"alias{rng.randrange(5)}"] = name
            else:
                hosts[name] = rng.randrange(1, 200)
        aliases = {a: h for a, h in aliases.items() if h in hosts}
        if step % 10 == 9:  # a group-wide change: every address moves
            hosts = {name: (octet + 7) % 200 + 1 for name, octet in hosts.items()}
        changes = plan(target, hosts, aliases)
        shutil.rmtree(fresh_dir, ignore_errors=True)
        shutil.copytree(kept, fresh_dir)
        target.apply(changes)
        target_in(fresh_dir).apply(changes)
        for zone in (FWD, REV):
            ours = target.path_of(zone)
            assert (fresh_dir / "zones" / ours.name).read_text() == ours.read_text(), step
