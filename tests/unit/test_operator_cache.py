"""The file manifests travel beside the operator's state, never on a commit's path.

They are a cache (see reconciler/targets/manifest.py): the state parts a commit
waits for leave them out, the status worker's ``tidy`` writes them afterwards,
and a replica that takes over with them missing, torn or older than the state
plans exactly what it would with them: only the files get read again. The
ConfigMaps live in the in-memory stand-in of test_operator_parts.py; the file
targets are real, on a copy of inventory-example.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from reconciler.engine import Engine
from tests.unit.site_fixture import Site
from tests.unit.test_operator_parts import FakeMaps, state_maps


def apply(engine: Engine) -> int:
    report = engine.apply(engine.plan(engine.compile(engine.load()), revision="test"))
    assert report.ok, [o.error for o in report.outcomes]
    return sum(o.result.writes for o in report.outcomes if o.result)


def archived_names(api: FakeMaps, prefix: str) -> set[str]:
    parts = sorted(n for n in api.maps if n.startswith(prefix))
    blob = b"".join(base64.b64decode(api.maps[n]["binaryData"]["part"]) for n in parts)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as packed:
        return set(packed.getnames())


def manifests(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state.glob("*.files.json"))}


def test_manifests_are_written_after_the_status_and_restored_on_takeover(site: Site) -> None:
    apply(site.engine())
    state = site.root / "state"
    written = manifests(state)
    assert written  # the file targets keep manifests
    api = FakeMaps()
    maps = state_maps(api)
    assert maps.save(state, tidy=False) is True  # what a commit waits for
    names = archived_names(api, "site-lab-state-")
    assert names and not any(n.endswith(".files.json") for n in names)
    assert not any(n.startswith("site-lab-cache-") for n in api.maps)
    assert maps.untidy
    maps.tidy()  # the status worker, after the status patch
    assert archived_names(api, "site-lab-cache-") == set(written)
    assert not maps.untidy
    calls = len(api.calls)
    assert maps.save(state) is False and len(api.calls) == calls  # nothing new: nothing written

    successor = site.root / "successor"
    state_maps(api).restore(successor)
    assert manifests(successor) == written


@pytest.mark.parametrize("cache", ["missing", "older", "torn"])
def test_a_takeover_without_a_current_cache_plans_no_change_and_writes_nothing(
    site: Site, cache: str
) -> None:
    apply(site.engine())
    state = site.root / "state"
    api = FakeMaps()
    state_maps(api).save(state)  # state and cache of the first revision
    first_cache = {n: m for n, m in api.maps.items() if n.startswith("site-lab-cache-")}
    first_cache = copy.deepcopy(first_cache)  # the stand-in patches maps in place

    site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:12:34:99"')
    assert apply(site.engine()) > 0
    maps = state_maps(api)
    maps.restore(site.root / "scratch")  # a replica that goes on from what the maps hold
    maps.save(state)
    current = manifests(state)
    if cache == "missing":
        for name in first_cache:
            del api.maps[name]
    elif cache == "older":
        api.maps.update(first_cache)
    else:  # killed mid-write: part 0 names a digest its bytes do not match
        part = api.maps["site-lab-cache-0"]
        part["binaryData"]["part"] = part["binaryData"]["part"][:-8] + "AAAAAAA="

    shutil.rmtree(state)  # the active replica is gone with its disk
    out = site.root / "out"
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    state_maps(api).restore(state)
    if cache == "older":
        assert manifests(state) != current  # stale entries for the host that moved
    else:
        assert manifests(state) == {}

    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    assert not plan.has_changes, [(t.target, c.key) for t in plan.targets for c in t.changes]
    assert apply(site.engine()) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes
    assert manifests(state)  # the reads were remembered again


def test_a_cache_archive_cannot_overwrite_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "accepted.json").write_text("mine\n")
    (state / "dhcp.files.json").write_text("{}")
    api = FakeMaps()
    state_maps(api).save(state)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as packed:
        for name, data in (("dhcp.files.json", b"{}"), ("accepted.json", b"forged\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            packed.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    api.maps["site-lab-cache-0"]["data"]["digest"] = hashlib.sha256(blob).hexdigest()[:16]
    api.maps["site-lab-cache-0"]["binaryData"]["part"] = base64.b64encode(blob).decode()
    restored = tmp_path / "restored"
    state_maps(api).restore(restored)
    assert (restored / "accepted.json").read_text() == "mine\n"
    assert not (restored / "dhcp.files.json").exists()  # refused whole: files get read
