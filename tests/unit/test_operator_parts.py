"""The operator's own parts: spec to runtime config, secrets as files, status, state ConfigMaps.

The ConfigMap round trip runs against a small in-memory stand-in for the three
API calls ``StateMaps`` makes (get, create/patch, list/delete); the operator
against a whole (emulated) apiserver is in tests/integration/test_operator_kmock.py.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from reconciler.operator.kube import KubeError
from reconciler.operator.site import SpecError, runtime_config, secrets_digest
from reconciler.operator.spec import SiteSpec
from reconciler.operator.statefiles import (
    PART_BYTES,
    decode_journal,
    ledger_bytes,
    pack,
    unpack,
)
from reconciler.operator.statemap import StateMaps
from reconciler.operator.status import events_between, site_status
from reconciler.statefiles import mirror_state
from reconciler.targets.base import OwnershipLedger
from reconciler.watch.status import Status, TargetStatus

SPEC = {
    "source": {"url": "file:///srv/inventory.git", "ref": "main"},
    "boot": {"http_url": "http://10.23.45.2:8080", "tftp_server": "10.23.45.2"},
    "targets": [
        {
            "name": "dhcp",
            "type": "dhcp-omapi",
            "settings": {"server": "10.23.45.2", "leases_file": "/var/lib/dhcp/dhcpd.leases"},
            "secretRef": {"name": "keys", "items": {"key_file": "omapi"}},
        }
    ],
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_spec_becomes_the_runtime_config_watch_uses_with_secrets_as_0600_files(
    tmp_path: Path,
) -> None:
    spec = SiteSpec.model_validate(SPEC)
    secrets = {("ns", "keys"): {"omapi": b64("c2VjcmV0\n")}}
    config = runtime_config(spec, namespace="ns", work_dir=tmp_path, secrets=secrets)
    assert config.watch.remote == "file:///srv/inventory.git"
    assert config.source.rev == "main" and config.boot.http_url == "http://10.23.45.2:8080"
    key_file = Path(config.targets["dhcp"].settings()["key_file"])
    assert key_file.read_text() == "c2VjcmV0\n"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_a_missing_secret_or_key_is_a_clear_error_without_values(tmp_path: Path) -> None:
    spec = SiteSpec.model_validate(SPEC)
    with pytest.raises(SpecError, match="Secret 'keys' not found in ns; create it with the label"):
        runtime_config(spec, namespace="ns", work_dir=tmp_path, secrets={})
    secrets = {("ns", "keys"): {"other": b64("hunter2")}}
    with pytest.raises(SpecError, match="has no key 'omapi'; its keys: other") as caught:
        runtime_config(spec, namespace="ns", work_dir=tmp_path, secrets=secrets)
    assert "hunter2" not in str(caught.value)


def test_bad_target_settings_name_the_spec_field(tmp_path: Path) -> None:
    bad = {**SPEC, "targets": [{"name": "dhcp", "type": "dhcp-omapi", "settings": {}}]}
    spec = SiteSpec.model_validate(bad)
    config = runtime_config(spec, namespace="ns", work_dir=tmp_path, secrets={})
    from reconciler.config import ConfigError
    from reconciler.engine import Engine

    with pytest.raises(ConfigError, match="key_file"):
        Engine(config)


def test_the_secrets_digest_changes_when_a_used_secret_rotates() -> None:
    spec = SiteSpec.model_validate(SPEC)
    before = secrets_digest(spec, "ns", {("ns", "keys"): {"omapi": b64("a")}})
    unrelated = secrets_digest(
        spec, "ns", {("ns", "keys"): {"omapi": b64("a")}, ("ns", "x"): {"k": b64("b")}}
    )
    after = secrets_digest(spec, "ns", {("ns", "keys"): {"omapi": b64("b")}})
    assert before == unrelated != after


def test_status_follows_flux_and_kstatus() -> None:
    status = Status(attempted_revision="c2", accepted_revision="c1")
    status.set_condition("Ready", True, reason="ReconciliationSucceeded", message="applied c1")
    status.targets["dns"] = TargetStatus(ok=False, error="named down", pending=2)
    body = site_status(status, generation=3, counts={"hosts": 8}, suspended=False)
    assert body["observedGeneration"] == 3
    assert (body["lastAttemptedRevision"], body["lastAppliedRevision"]) == ("c2", "c1")
    ready = body["conditions"][0]
    assert ready["status"] == "True" and ready["lastTransitionTime"].endswith("Z")
    assert body["targets"][0] == {**body["targets"][0], "name": "dns", "ok": False, "pending": 2}
    suspended = site_status(status, generation=3, counts={}, suspended=True)
    ready = next(c for c in suspended["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Suspended"


def test_events_come_once_per_thing_that_happened() -> None:
    before = Status(accepted_revision="c1")
    after = Status(accepted_revision="c2")
    after.set_condition("Stalled", True, reason="UntrustedSignature", message="commit c3 unsigned")
    after.targets["dhcp"] = TargetStatus(ok=False, error="dhcpd down")
    reasons = [e.reason for e in events_between(before, after)]
    assert reasons == ["Applied", "Refused", "Failed"]
    assert events_between(after, after) == []


class FakeMaps:
    """get/create/merge_patch/list/delete of ConfigMaps, in memory."""

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, Any]] = {}
        self.fail_after: int | None = None
        self.calls: list[str] = []  # "create NAME", "patch NAME", ...

    def get(self, path: str) -> dict[str, Any] | None:
        self.calls.append(f"get {path.rsplit('/', 1)[1]}")
        return self.maps.get(path.rsplit("/", 1)[1])

    def create(self, _path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(f"create {name}")
        if self.fail_after is not None:
            if self.fail_after == 0:
                raise KubeError(0, "connection lost")
            self.fail_after -= 1
        if name in self.maps:
            raise KubeError(409, f"configmaps {name!r} already exists")
        self.maps[name] = body
        return body

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        name = path.rsplit("/", 1)[1]
        self.calls.append(f"patch {name}")
        current = self.maps[name]
        for field, value in patch.items():  # a JSON merge patch, two levels deep
            if isinstance(value, dict):
                current[field] = {**(current.get(field) or {}), **value}
            elif value is not None:
                current[field] = value
        return current

    def list(self, _path: str, *, labels: str) -> list[dict[str, Any]]:
        return list(self.maps.values())

    def delete(self, path: str) -> None:
        self.calls.append(f"delete {path.rsplit('/', 1)[1]}")
        self.maps.pop(path.rsplit("/", 1)[1], None)


def state_maps(api: FakeMaps) -> StateMaps:
    return StateMaps(api, namespace="ns", site="lab", owner={"uid": "1"})  # type: ignore[arg-type]


def test_state_round_trips_through_configmaps_in_parts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "ledgers").mkdir(parents=True)
    (state / "ledgers" / "dhcp.json").write_bytes(os.urandom(PART_BYTES * 2))  # incompressible
    (state / "accepted.json").write_text('{"revision": "c1"}\n')
    (state / "watch").mkdir()
    (state / "watch" / "mirror.git").write_text("not state")
    api = FakeMaps()
    maps = state_maps(api)
    assert maps.save(state) is True
    assert maps.save(state) is False  # unchanged: nothing written
    parts = [n for n in api.maps if n.startswith("site-lab-state-")]
    assert len(parts) == 3
    assert api.maps["site-lab-accepted"]["data"]["accepted.json"] == '{"revision": "c1"}\n'

    restored = tmp_path / "other"
    assert state_maps(api).restore(restored) == 2
    assert (restored / "ledgers" / "dhcp.json").read_bytes() == (
        state / "ledgers" / "dhcp.json"
    ).read_bytes()
    assert not (restored / "watch").exists()


def test_a_replica_killed_while_writing_parts_leaves_the_previous_state_whole(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "accepted.json").write_text("first\n")
    api = FakeMaps()
    state_maps(api).save(state)
    (state / "accepted.json").write_text("second\n" + "x" * 100)
    (state / "big").write_bytes(os.urandom(PART_BYTES * 2))
    api.fail_after = 1  # the second part of the new state never arrives
    with pytest.raises(KubeError):
        state_maps(api).save(state)
    restored = tmp_path / "restored"
    state_maps(api).restore(restored)
    assert (restored / "accepted.json").read_text() == "first\n"


def test_a_state_archive_cannot_write_outside_the_state_dir(tmp_path: Path) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="leaves the state dir"):
        unpack(buffer.getvalue(), tmp_path / "state")
    assert not (tmp_path / "escape").exists()


def test_packing_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    first = pack(tmp_path)
    os.utime(tmp_path / "a", (1, 1))
    assert pack(tmp_path) == first


def ledger(state: Path, keys: set[str]) -> Path:
    path = state / "dhcp.owned.json"
    path.write_bytes(ledger_bytes(keys))
    return path


def test_a_widened_ledger_reaches_the_head_journal_in_one_small_patch(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger(state, {"node01"})
    (state / "status.json").write_text('{"passes": 1}')
    api = FakeMaps()
    maps = state_maps(api)
    assert maps.save(state) is True
    api.calls.clear()
    maps.record_ledger(ledger(state, {"node01", "node02"}), state_dir=state)
    assert api.calls == ["patch site-lab-state"]  # no part written, nothing listed
    maps.record_ledger(ledger(state, {"node02"}), state_dir=state)  # narrowed: nothing new
    assert api.calls == ["patch site-lab-state"]

    # A replica killed now: its successor owns node01 and node02, though no full save ran.
    restored = tmp_path / "restored"
    state_maps(api).restore(restored)
    text = (restored / "dhcp.owned.json").read_text()
    assert '"node01"' in text and '"node02"' in text

    # The full save of the pass replaces the parts and empties the journal in one switch.
    api.calls.clear()
    assert maps.save(state) is True
    assert [c.split()[0] for c in api.calls] == ["create", "patch", "delete"]
    again = tmp_path / "again"
    state_maps(api).restore(again)
    assert (again / "dhcp.owned.json").read_bytes() == ledger_bytes({"node02"})


def journal_of(api: FakeMaps) -> dict[str, list[str]]:
    return decode_journal(api.maps["site-lab-state"]["binaryData"].get("journal"))


def test_a_ledger_widened_through_the_hook_journals_exactly_its_new_keys(tmp_path: Path) -> None:
    """The keys come with the write (no re-read); after a save they are the journal's base."""
    state = (tmp_path / "state").resolve()
    state.mkdir()
    owned = OwnershipLedger(state, "dhcp")
    owned.widen({"node01"})
    api = FakeMaps()
    maps = state_maps(api)
    assert maps.save(state) is True
    mirror_state(state, lambda path, keys: maps.record_ledger(path, state_dir=state, keys=keys))
    try:
        owned.widen({"node02"})
        assert journal_of(api) == {"dhcp.owned.json": ["node02"]}
        assert maps.save(state) is True  # the base is now node01 + node02, as told by the hook
        owned.widen({"node03"})
        assert journal_of(api) == {"dhcp.owned.json": ["node03"]}
        # The ledger rewritten behind the hook's back: the save's base is what the file holds.
        (state / "dhcp.owned.json").write_bytes(ledger_bytes({"node01"}))
        assert maps.save(state) is True
        owned.widen({"node02", "node04"})
        assert journal_of(api) == {"dhcp.owned.json": ["node02", "node04"]}
    finally:
        mirror_state(state, None)
    restored = tmp_path / "restored"
    state_maps(api).restore(restored)
    assert (restored / "dhcp.owned.json").read_bytes() == ledger_bytes(
        {"node01", "node02", "node04"}
    )


def test_a_pass_that_only_counted_itself_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.json").write_text('{"passes": 1, "updated": 5.0, "good_revision": "c1"}')
    api = FakeMaps()
    maps = state_maps(api)
    maps.save(state)
    api.calls.clear()
    (state / "status.json").write_text('{"passes": 2, "updated": 6.0, "good_revision": "c1"}')
    assert maps.save(state) is False
    assert api.calls == []
    (state / "status.json").write_text('{"passes": 3, "updated": 7.0, "good_revision": "c2"}')
    assert maps.save(state) is True


def test_the_first_ledger_write_without_a_head_saves_the_whole_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    api = FakeMaps()
    maps = state_maps(api)
    maps.record_ledger(ledger(state, {"node01"}), state_dir=state)
    restored = tmp_path / "restored"
    assert state_maps(api).restore(restored) == 1
    assert '"node01"' in (restored / "dhcp.owned.json").read_text()


def test_the_webhook_secret_file_missing_turns_webhooks_off_and_a_bad_one_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from reconciler.config import ConfigError
    from reconciler.operator.webhook import load_secret

    assert load_secret(tmp_path / "absent") is None
    assert "git webhooks off" in caplog.text
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(ConfigError, match=r"--webhook-secret-file: .* is empty"):
        load_secret(empty)
    shared = tmp_path / "shared"
    shared.write_text("s3cret\n")
    shared.chmod(0o666)
    with pytest.raises(ConfigError, match="every user may write"):
        load_secret(shared)
    shared.chmod(0o600)
    assert load_secret(shared) == b"s3cret"


def test_tidying_late_never_deletes_the_parts_the_head_names(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    api = FakeMaps()
    maps = state_maps(api)
    for text in ("first\n", "second\n", "first\n"):  # back to the same bytes: the same parts
        (state / "accepted.json").write_text(text)
        maps.save(state, tidy=False)  # the status patch after each save failed: no tidy yet
    maps.tidy()
    restored = tmp_path / "restored"
    assert state_maps(api).restore(restored) == 1
    assert (restored / "accepted.json").read_text() == "first\n"
    assert len([n for n in api.maps if n.startswith("site-lab-state-")]) == 1


def test_a_takeover_writes_the_plain_accepted_record_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "accepted.json").write_text('{"revision": "c1"}\n')
    api = FakeMaps()
    state_maps(api).save(state)
    del api.maps["site-lab-accepted"]  # killed after the head switch, before the record
    restored = tmp_path / "restored"
    successor = state_maps(api)
    successor.restore(restored)
    successor.save(restored)
    assert api.maps["site-lab-accepted"]["data"]["accepted.json"] == '{"revision": "c1"}\n'
