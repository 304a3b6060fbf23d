"""Caches of a long-running process: the next revision gives exactly what a fresh load would."""

from __future__ import annotations

import pytest

import reconciler.inventory.load as load_module
import reconciler.inventory.load_cache as load_cache_module
from reconciler.compile import compile_inventory
from reconciler.compile_cache import CompileCache
from reconciler.inventory.host_entries import header_mapping
from reconciler.inventory.load import load_inventory
from reconciler.inventory.load_cache import LoadCache
from reconciler.inventory.sources import FolderSource
from reconciler.model.problems import InventoryError
from tests.unit.site_fixture import Site


def test_only_changed_files_are_parsed_again(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = LoadCache()
    source = FolderSource(site.inventory)
    load_inventory(source, cache=cache)
    parsed: list[str] = []

    def counting_header(text: str) -> dict[str, object]:
        parsed.append(text)
        return header_mapping(text)

    monkeypatch.setattr(load_module, "parse_yaml_marked", None)  # no file is parsed whole
    monkeypatch.setattr(load_cache_module, "header_mapping", counting_header)
    site.edit("groups/gpu.yaml", "first_address: 10.23.46.100", "first_address: 10.23.46.110")
    inventory = load_inventory(source, cache=cache)
    assert len(parsed) == 1 and "GPU" in parsed[0]  # the header of the changed file only
    monkeypatch.undo()
    assert inventory == load_inventory(FolderSource(site.inventory))


def test_a_cached_good_file_does_not_hide_a_new_problem(site: Site) -> None:
    cache = LoadCache()
    load_inventory(FolderSource(site.inventory), cache=cache)
    site.edit("groups/gpu.yaml", '"52:54:00:aa:00:02"', '"52:54:00:12:34:0a"')
    with pytest.raises(InventoryError, match="already used"):
        load_inventory(FolderSource(site.inventory), cache=cache)


CHANGES = [
    ("groups/compute.yaml", "image: compute@2024.10", "image: compute@2024.11"),
    ("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:12:34:99"'),
    ("groups/compute.yaml", "    aliases: [login]", "    aliases: [login, ssh]"),
    ("groups/gpu.yaml", 'hostname: "gpu%02d"', 'hostname: "gpu%03d"'),
    ("groups/gpu.yaml", "first_address: 10.23.46.100", "first_address: 10.23.46.110"),
    ("site.yaml", "ttl: 300", "ttl: 600"),
    ("images/compute.yaml", "console=ttyS0 quiet mitigations=auto", "console=ttyS1"),
]


@pytest.mark.parametrize(("file", "old", "new"), CHANGES)
def test_a_cached_compile_equals_a_fresh_one(site: Site, file: str, old: str, new: str) -> None:
    cache = CompileCache()
    compile_inventory(load_inventory(FolderSource(site.inventory)), cache=cache)
    site.edit(file, old, new)
    inventory = load_inventory(FolderSource(site.inventory))
    assert compile_inventory(inventory, cache=cache) == compile_inventory(inventory)


@pytest.mark.parametrize(("file", "old", "new"), CHANGES)
def test_hosts_the_load_cache_reuses_compile_as_fresh_ones(
    site: Site, file: str, old: str, new: str
) -> None:
    """The compile cache finds reused Host objects by identity: what they compile to
    must still follow every change around them (group, site, image)."""
    loads, compiles = LoadCache(), CompileCache()
    source = FolderSource(site.inventory)
    before = compile_inventory(load_inventory(source, cache=loads), cache=compiles)
    site.edit(file, old, new)
    cached = compile_inventory(load_inventory(source, cache=loads), cache=compiles)
    assert cached == compile_inventory(load_inventory(source)) != before
