"""Write inventory folders from Python dicts or YAML text, so a test states only what differs.

The base site is valid: one image ``compute`` with versions 2024.10 and 2024.11 and
one group ``compute`` in 10.23.45.0/24 with hosts 10 and 11. ``write_inventory``
merges what a test gives into that base (``None`` removes a file), writes it
under a folder and returns the folder. ``problems`` loads it and returns the
problems of the InventoryError that loading must raise.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import FolderSource
from reconciler.model.inventory import Inventory
from reconciler.model.problems import InventoryError, Problem

SHA = {
    "kernel": "e9a9c4267c93834b6a7d594b6b641ce8b3bbada1d0f2b155d6f1df2d39863bb9",
    "initrd": "8a8ca5db6ae8f8a8b88ef2bdce2d3c69c4075703c061959c397bff3b807bc932",
    "rootfs": "7fa3c6c162913190cee936f34e9aab9180a3ac70213f4465c160820f1f894466",
}

BASE_SITE: dict[str, Any] = {"domain": "cluster.example"}


def version(name: str, ver: str, cmdline: str = "console=ttyS0") -> dict[str, Any]:
    base = f"http://boot.cluster.example/{name}/{ver}"
    return {
        "kernel": {"url": f"{base}/vmlinuz", "sha256": SHA["kernel"]},
        "initrd": {"url": f"{base}/initrd.img", "sha256": SHA["initrd"]},
        "rootfs": {"url": f"{base}/root.squashfs", "sha256": SHA["rootfs"]},
        "cmdline": cmdline,
    }


def image(
    name: str = "compute", versions: tuple[str, ...] = ("2024.10", "2024.11")
) -> dict[str, Any]:
    return {
        "name": name,
        "versions": {v: version(name, v, f"console=ttyS0 v={v}") for v in versions},
    }


def host(index: int, mac: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "mac": mac, **extra}


BASE_GROUP: dict[str, Any] = {
    "name": "compute",
    "subnet": "10.23.45.0/24",
    "gateway": "10.23.45.1",
    "hostname": "node%03d",
    "unregistered_range": "10.23.45.200-10.23.45.250",
    "image": "compute@2024.10",
    "hosts": [host(10, "52:54:00:00:00:0a"), host(11, "52:54:00:00:00:0b")],
}


def group(**changes: Any) -> dict[str, Any]:
    """The base group with ``changes`` applied; a value of None removes the key."""
    data = copy.deepcopy(BASE_GROUP)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


FileContent = Mapping[str, Any] | str | None


def _dump(content: Mapping[str, Any] | str) -> str:
    if isinstance(content, str):
        return content
    return yaml.safe_dump(dict(content), sort_keys=False, default_flow_style=False)


def write_inventory(
    root: Path,
    *,
    site: FileContent = BASE_SITE,
    groups: Mapping[str, FileContent] | None = None,
    images: Mapping[str, FileContent] | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write the base site with the given files merged in; return the folder."""
    all_groups: dict[str, FileContent] = {"compute": BASE_GROUP}
    all_groups.update(groups or {})
    all_images: dict[str, FileContent] = {"compute": image()}
    all_images.update(images or {})
    texts: dict[str, str] = {}
    if site is not None:
        texts["site.yaml"] = _dump(site)
    for name, content in all_groups.items():
        if content is not None:
            texts[f"groups/{name}.yaml"] = _dump(content)
    for name, content in all_images.items():
        if content is not None:
            texts[f"images/{name}.yaml"] = _dump(content)
    texts.update(files or {})
    for relative, text in texts.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def load(root: Path, boot_profiles: frozenset[str] | None = None) -> Inventory:
    return load_inventory(FolderSource(root), boot_profiles=boot_profiles)


def problems(root: Path, boot_profiles: frozenset[str] | None = None) -> list[Problem]:
    """Load ``root``, which must be invalid; return every problem reported."""
    with pytest.raises(InventoryError) as caught:
        load(root, boot_profiles)
    return caught.value.problems


def only_problem(root: Path, boot_profiles: frozenset[str] | None = None) -> Problem:
    found = problems(root, boot_profiles)
    assert len(found) == 1, "\n".join(str(p) for p in found)
    return found[0]


def position(root: Path, relative: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column where ``needle`` occurs (the nth time) in a written file."""
    seen = 0
    for number, line in enumerate((root / relative).read_text().splitlines(), start=1):
        column = line.find(needle)
        while column >= 0:
            seen += 1
            if seen == occurrence:
                return number, column + 1
            column = line.find(needle, column + 1)
    raise AssertionError(f"{needle!r} occurs fewer than {occurrence} times in {relative}")


def assert_problem(
    problem: Problem,
    *,
    file: str,
    at: tuple[int, int] | None,
    field: str,
    says: tuple[str, ...] = (),
) -> None:
    """The problem names the file, the position, the field, and says every phrase in ``says``."""
    text = str(problem)
    assert problem.file == file, text
    if at is not None:
        assert (problem.line, problem.column) == at, text
        assert text.startswith(f"{file}:{at[0]}:{at[1]}:"), text
    assert problem.field == field, text
    if field:
        assert f" {field}:" in text, text
    for phrase in says:
        assert phrase in text, f"{phrase!r} not in {text!r}"
