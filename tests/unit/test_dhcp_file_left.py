"""dhcp-file's one-host apply from the text it left (``targets/left_files``): byte for byte
what a full parse and render writes, and never trusted once the file changed behind it."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from reconciler.config import RuntimeConfig, SourceConfig
from reconciler.plan import build_target_plan
from reconciler.resources import DesiredState, DhcpHost
from reconciler.targets import left_files
from reconciler.targets.base import Change
from reconciler.targets.dhcp_file import DhcpFileTarget, build


def target_in(folder: Path) -> DhcpFileTarget:
    config = RuntimeConfig(source=SourceConfig(path=folder), state_dir=Path("state"))
    return build("hosts", {"path": "hosts.conf"}, config.model_copy(update={"base_dir": folder}))


def host(index: int, *, version: int = 0) -> DhcpHost:
    return DhcpHost(
        f"node{index:03d}", f"52:54:00:00:{index // 256:02x}:{index % 256:02x}",
        f"10.23.{version}.{index % 250 + 1}", f"rack{index % 3}",
        f"ipxe/{index}.ipxe" if index % 4 else "",
    )  # fmt: skip


def plan(target: DhcpFileTarget, hosts: list[DhcpHost]) -> tuple[Change, ...]:
    desired = target.desired(DesiredState(dhcp_hosts=tuple(hosts)))
    live = target.read(desired)
    return build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=live, adopt=True
    ).changes


def hand_edit(path: Path, rng: random.Random) -> None:
    """What someone might do to the file between passes."""
    text = path.read_text()
    kind = rng.choice(["append", "same-size", "replace", "remove"])
    if kind == "append":
        name = rng.choice(["printer", f"node{rng.randrange(40):03d}"])
        path.write_text(text + f"host {name} {{\n  hardware ethernet aa:bb:cc:00:00:01;\n}}\n")
    elif kind == "same-size" and "10.23." in text:
        info = os.stat(path)
        with open(path, "r+") as handle:  # in place: same inode, size and mtime; ctime moves
            handle.write(text.replace("10.23.", "10.99.", 1))
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    elif kind == "replace":
        swapped = path.with_name("swapped")
        swapped.write_text(text.replace("rack1", "rackX"))
        swapped.replace(path)
    else:
        path.unlink()


@pytest.mark.parametrize("seed", range(4))
def test_random_edits_write_what_a_full_render_writes(tmp_path: Path, seed: int) -> None:
    """One target lives through every pass (its memory used); a fresh one (a restart, a
    full parse and render) applies the same changes to a copy of the same files each time."""
    rng = random.Random(seed)
    kept, fresh_dir = tmp_path / "kept", tmp_path / "fresh"
    kept.mkdir()
    target = target_in(kept)
    wanted = {i: 0 for i in range(30)}
    for step in range(40):
        if rng.random() < 0.25 and target.path.exists():
            time.sleep(rng.choice([0, 0.02]))  # within a clock tick of the write, or after
            hand_edit(target.path, rng)
        for _ in range(rng.choice([1, 1, 2, 5])):
            index = rng.randrange(40)
            if index in wanted and rng.random() < 0.3:
                del wanted[index]
            else:
                wanted[index] = rng.randrange(3)
        if step % 10 == 9:  # a group-wide change: every host moves
            wanted = {i: v + 1 for i, v in wanted.items()}
        changes = plan(target, [host(i, version=v) for i, v in sorted(wanted.items())])
        shutil.rmtree(fresh_dir, ignore_errors=True)
        shutil.copytree(kept, fresh_dir)
        target.apply(changes)
        target_in(fresh_dir).apply(changes)
        assert (fresh_dir / "hosts.conf").read_text() == target.path.read_text(), step
        assert target_in(fresh_dir).ledger.load() == target.ledger.load()


def test_an_edit_that_keeps_size_and_mtime_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stamps trusted at once (no racy window): the ctime alone gives the edit away."""
    monkeypatch.setattr(left_files, "RACY_NS", 0)
    target = target_in(tmp_path)
    target.apply(plan(target, [host(1), host(2)]))
    time.sleep(0.02)
    text = target.path.read_text()
    info = os.stat(target.path)
    with open(target.path, "r+") as handle:
        handle.write(text.replace("rack1", "rackZ"))
    os.utime(target.path, ns=(info.st_atime_ns, info.st_mtime_ns))
    changes = plan(target, [host(1), host(2), host(3)])
    # The plan sees node001 edited; apply the creation of node003 alone: the hand edit of
    # node001 must come from the file, not from the text this target left.
    target.apply([c for c in changes if c.key == "node003"])
    assert "rackZ" in target.path.read_text()


def test_a_ledger_edit_between_passes_is_followed(tmp_path: Path) -> None:
    """A host dropped from the ledger by hand is someone else's: kept verbatim, before ours."""
    target = target_in(tmp_path)
    target.apply(plan(target, [host(1), host(2)]))
    target.ledger.save({"node001"})
    block = "host node002" + target.path.read_text().split("host node002")[1].split("}\n")[0]
    target.apply(plan(target, [host(1, version=1), host(3)]))
    text = target.path.read_text()
    assert block in text and text.index(block) < text.index("host node001")
    assert f"fixed-address {host(1, version=1).ip};" in text
