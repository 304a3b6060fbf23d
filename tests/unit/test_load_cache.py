"""The load cache's shortcuts, each where it would be wrong: a commit that changes hosts is
checked against the whole site, and every problem is still reported with file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import reconciler.inventory.load as load_module
import reconciler.inventory.load_cache as load_cache_module
from reconciler.compile import compile_inventory
from reconciler.inventory.load import load_inventory
from reconciler.inventory.load_cache import LoadCache
from reconciler.inventory.sources import FolderSource
from reconciler.model.inventory import Inventory
from reconciler.model.problems import InventoryError
from tests.unit.site_fixture import Site

GPU02 = '  - index: 2\n    mac: "52:54:00:aa:00:02"\n'


class Loads:
    """Loads of one site through one cache, counting what was parsed."""

    def __init__(self, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
        self.site = site
        self.cache = LoadCache()
        self.whole: list[str] = []  # files parsed whole
        self.entries: list[str] = []  # host entries parsed alone
        self._count(monkeypatch, load_module, "parse_yaml_marked", self.whole)
        self._count(monkeypatch, load_cache_module, "parse_entry", self.entries)
        self.load()  # the first load reads everything

    @staticmethod
    def _count(monkeypatch: pytest.MonkeyPatch, module: object, name: str, log: list[str]) -> None:
        real: Callable[..., object] = getattr(module, name)

        def counting(text: str, *args: object) -> object:
            log.append(text)
            return real(text, *args)

        monkeypatch.setattr(module, name, counting)

    def load(self) -> Inventory:
        self.whole.clear()
        self.entries.clear()
        return load_inventory(FolderSource(self.site.inventory), cache=self.cache)

    def fresh(self) -> Inventory:
        """A load without the cache (what it parses is not counted)."""
        whole, entries = list(self.whole), list(self.entries)
        try:
            return load_inventory(FolderSource(self.site.inventory))
        finally:
            self.whole[:], self.entries[:] = whole, entries

    def append(self, relative: str, text: str) -> None:
        path = self.site.inventory / relative
        path.write_text(path.read_text() + text)


@pytest.fixture
def loads(site: Site, monkeypatch: pytest.MonkeyPatch) -> Loads:
    return Loads(site, monkeypatch)


def problem_lines(error: InventoryError) -> list[str]:
    return [str(p) for p in error.problems]


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return lines[occurrence - 1]


def test_a_changed_host_is_the_only_entry_parsed(loads: Loads) -> None:
    loads.site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:12:34:99"')
    inventory = loads.load()
    assert loads.whole == [] and len(loads.entries) == 1
    assert inventory == loads.fresh()
    assert inventory.groups[0].hosts[2].mac == "52:54:00:12:34:99"


def test_an_added_host_is_checked_against_the_whole_site(loads: Loads) -> None:
    loads.append("groups/gpu.yaml", '  - index: 3\n    mac: "52:54:00:12:34:0a"\n')
    with pytest.raises(InventoryError) as caught:
        loads.load()
    gpu = loads.site.inventory / "groups/gpu.yaml"
    line = line_of(gpu, '"52:54:00:12:34:0a"')
    assert any(
        p.startswith(f"groups/gpu.yaml:{line}:") and "MAC 52:54:00:12:34:0a is already used" in p
        for p in problem_lines(caught.value)
    ), problem_lines(caught.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - index: 3\n    mac: '52:54:00:aa:00:03'\n    aliases: [svc1]\n", "'svc1'"),
        ("  - index: 3\n    mac: '52:54:00:aa:00:03'\n    name: node010\n", "already used"),
        ("  - index: 3\n    mac: '52:54:00:aa:00:03'\n    address: 10.23.45.10\n", "outside"),
        ("  - index: 2\n    mac: '52:54:00:aa:00:03'\n", "used twice"),
        (
            "  - index: 2\n    mac: '52:54:00:aa:00:03'\n    name: x\n    address: 10.23.46.9\n",
            "twice",
        ),
        ("  - index: 101\n    mac: '52:54:00:aa:00:03'\n", "is the gateway"),  # .201: a range
        ("  - index: 3\n    mac: '52:54:00:aa:00:03'\n    image: compute@9\n", "no version"),
    ],
)
def test_a_new_host_breaking_any_rule_is_refused(loads: Loads, entry: str, message: str) -> None:
    loads.append("groups/gpu.yaml", entry)
    with pytest.raises(InventoryError) as caught:
        loads.load()
    fresh = problem_lines(caught.value)
    with pytest.raises(InventoryError) as again:
        loads.fresh()
    assert fresh == problem_lines(again.value)  # the same problems as a load without cache
    assert any(message in p or "unregistered range" in p for p in fresh), fresh


def test_a_new_host_on_an_address_registration_would_give_is_refused(loads: Loads) -> None:
    """compute enrols machines at indexes 21-40, i.e. 10.23.45.21-40: a service host
    given 10.23.45.25 makes index 25 unusable, which only the registration rule sees."""
    loads.append("groups/service.yaml", "  - index: 2\n    mac: '52:54:00:bb:00:02'\n")
    loads.load()  # svc2 is 10.23.45.152: fine
    assert loads.whole == []
    loads.append(
        "groups/service.yaml",
        "  - index: 3\n    mac: '52:54:00:bb:00:03'\n    address: 10.23.45.25\n",
    )
    with pytest.raises(InventoryError, match="index 25 would be invalid"):
        loads.load()


def test_a_pasted_copy_of_an_entry_is_refused(loads: Loads) -> None:
    loads.append("groups/gpu.yaml", GPU02)
    with pytest.raises(InventoryError, match="used twice"):
        loads.load()


def test_a_removed_host_disappears_and_frees_its_mac_name_and_address(loads: Loads) -> None:
    loads.site.edit("groups/gpu.yaml", GPU02, "")
    inventory = loads.load()
    assert loads.whole == []
    assert [h.index for h in inventory.groups[1].hosts] == [1]
    assert compile_inventory(inventory) == compile_inventory(loads.fresh())
    # gpu02's MAC, moved to a new compute host, and gpu02's alias for it
    loads.append("groups/compute.yaml", "  - index: 15\n    mac: '52:54:00:aa:00:02'\n")
    loads.site.edit("groups/service.yaml", "aliases: [monitor]", "aliases: [monitor, gpu02]")
    assert loads.load() == loads.fresh()
    assert loads.whole == []


def test_a_host_moved_to_another_group_is_checked_there(loads: Loads) -> None:
    loads.site.edit("groups/gpu.yaml", GPU02, "")
    loads.append("groups/service.yaml", GPU02)
    inventory = loads.load()
    assert loads.whole == [] and loads.entries == []  # the entry's host is reused
    assert inventory == loads.fresh()
    assert [h.index for h in inventory.groups[2].hosts] == [1, 2]


def test_after_a_refused_revision_the_next_is_checked_against_the_last_valid_one(
    loads: Loads,
) -> None:
    loads.site.edit("groups/gpu.yaml", '"52:54:00:aa:00:02"', '"52:54:00:12:34:0a"')
    with pytest.raises(InventoryError):
        loads.load()
    loads.site.edit("groups/gpu.yaml", '"52:54:00:12:34:0a"', '"52:54:00:aa:00:09"')
    loads.site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:aa:00:02"')
    assert loads.load() == loads.fresh()
    assert loads.whole == []
    loads.site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:aa:00:09"')
    with pytest.raises(InventoryError, match="already used"):
        loads.load()


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("images/compute.yaml", "console=ttyS0 quiet mitigations=auto", "console=ttyS1"),
        ("site.yaml", "ttl: 300", "ttl: 600"),
        ("groups/compute.yaml", "image: compute@2024.10", "image: compute@2024.11"),
        ("groups/gpu.yaml", 'hostname: "gpu%02d"', 'hostname: "node%03d"'),  # clashes now
    ],
)
def test_a_change_beyond_hosts_is_checked_whole(
    loads: Loads, file: str, old: str, new: str
) -> None:
    before = compile_inventory(loads.load())
    loads.site.edit(file, old, new)
    try:
        expected = loads.fresh()
    except InventoryError as error:
        with pytest.raises(InventoryError) as caught:
            loads.load()
        assert problem_lines(caught.value) == problem_lines(error)
        return
    inventory = loads.load()
    assert inventory == expected
    assert compile_inventory(inventory) == compile_inventory(expected) != before


def test_a_file_that_does_not_cut_into_entries_is_still_loaded_right(loads: Loads) -> None:
    """Anchors tie entries together: no shortcut for that file, the same result."""
    loads.site.edit("groups/gpu.yaml", "image: compute@2024.11", "image: &img compute@2024.11")
    loads.append("groups/gpu.yaml", "  - index: 3\n    mac: '52:54:00:aa:00:03'\n    image: *img\n")
    assert loads.load() == loads.fresh()
    loads.site.edit("groups/gpu.yaml", "'52:54:00:aa:00:03'", "'52:54:00:aa:00:04'")
    assert loads.load() == loads.fresh()
    assert loads.whole != []
