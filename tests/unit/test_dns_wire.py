"""UPDATE message building and batching, and TSIG key files: no server needed."""

from __future__ import annotations

import socket
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest

from reconciler.resources import DnsRecord
from reconciler.targets.base import Action, Change
from reconciler.targets.dns_wire import (
    DnsServerError,
    batch_edits,
    build_update,
    edit_from_change,
)
from reconciler.targets.tsig_key import TsigKeyError, load_key_file, parse_key_text

ZONE = dns.name.from_text("cluster.example.")
SECRET = "JLleq2Msy1kZrPf4TvR7hfqcwSXSNV0N15bgmfitKnU="
KEY_TEXT = f'key "reconciler-key" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'


def a_record(index: int, address: str | None = None, ttl: int = 300) -> DnsRecord:
    return DnsRecord(
        "cluster.example.",
        f"node{index:05d}.cluster.example.",
        "A",
        ttl,
        (address or f"10.23.{index // 250}.{index % 250 + 1}",),
    )


def creates(count: int) -> list[Change]:
    return [Change(Action.CREATE, a_record(i).key, None, a_record(i)) for i in range(count)]


def test_create_update_delete_carry_prerequisites() -> None:
    old, new = a_record(1), a_record(1, "10.9.9.9", ttl=60)
    changes = [
        Change(Action.DELETE, a_record(2).key, a_record(2), None),
        Change(Action.CREATE, a_record(3).key, None, a_record(3)),
        Change(Action.UPDATE, old.key, old, new),
    ]
    key = parse_key_text(KEY_TEXT, source="test")
    message = build_update(ZONE, [edit_from_change(c, ZONE) for c in changes], key=key)
    assert len(message.to_wire()) < 1000
    prereqs = {(r.name.to_text(), r.rdclass, r.rdtype) for r in message.prerequisite}
    # delete and update: the exact old RRset exists (zone class, value dependent) ...
    assert ("node00002.cluster.example.", dns.rdataclass.IN, dns.rdatatype.A) in prereqs
    assert ("node00001.cluster.example.", dns.rdataclass.IN, dns.rdatatype.A) in prereqs
    # ... and a create: the RRset does not exist (class NONE).
    assert ("node00003.cluster.example.", dns.rdataclass.NONE, dns.rdatatype.A) in prereqs
    updates = [
        (r.name.to_text(), r.deleting, r.ttl, [rd.to_text() for rd in r]) for r in message.update
    ]
    assert updates == [
        ("node00002.cluster.example.", dns.rdataclass.ANY, 0, []),  # delete the RRset
        ("node00003.cluster.example.", None, 300, ["10.23.0.4"]),
        ("node00001.cluster.example.", dns.rdataclass.ANY, 0, []),
        ("node00001.cluster.example.", None, 60, ["10.9.9.9"]),
    ]
    assert message.tsig is not None


def test_size_estimate_is_an_upper_bound_and_messages_stay_under_limit() -> None:
    key = parse_key_text(KEY_TEXT, source="test")
    edits = [edit_from_change(c, ZONE) for c in creates(5000)]
    batches = batch_edits(edits, zone=ZONE, max_bytes=64_000, max_changes=100_000)
    assert len(batches) > 1
    for batch in batches:
        wire = build_update(ZONE, batch, key=key).to_wire()
        assert len(wire) <= 64_000
        # Not wastefully small either: the estimate is within 25 % of the real size.
        assert len(wire) > 0.75 * 64_000 or batch is batches[-1]
    assert sum(len(b) for b in batches) == 5000
    assert [e.change.key for b in batches for e in b] == [e.change.key for e in edits]


def test_max_changes_per_message_and_one_change_is_one_message() -> None:
    edits = [edit_from_change(c, ZONE) for c in creates(10)]
    assert [len(b) for b in batch_edits(edits, zone=ZONE, max_bytes=64_000, max_changes=1)] == [
        1
    ] * 10
    assert len(batch_edits(edits[:1], zone=ZONE, max_bytes=64_000, max_changes=4000)) == 1


def test_change_too_big_for_any_message() -> None:
    big = DnsRecord(
        "cluster.example.",
        "big.cluster.example.",
        "A",
        300,
        tuple(f"10.0.{i // 256}.{i % 256}" for i in range(400)),
    )
    edit = edit_from_change(Change(Action.CREATE, big.key, None, big), ZONE)
    with pytest.raises(DnsServerError, match="more than one UPDATE message may carry"):
        batch_edits([edit], zone=ZONE, max_bytes=1024, max_changes=10)


def test_tsig_key_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text("# made by tsig-keygen\n" + KEY_TEXT)
    key = load_key_file(path)
    assert (key.name, key.algorithm, key.secret) == ("reconciler-key", "hmac-sha256", SECRET)
    assert SECRET not in repr(key)
    path.write_text(KEY_TEXT + KEY_TEXT.replace("reconciler-key", "other"))
    with pytest.raises(TsigKeyError, match="several keys"):
        load_key_file(path)
    assert load_key_file(path, key_name="other").name == "other"
    path.write_text(SECRET + "\n")
    assert load_key_file(path, key_name="k", algorithm="hmac-sha512").algorithm == "hmac-sha512"
    with pytest.raises(TsigKeyError, match="no 'key"):
        load_key_file(path)
    path.write_text(KEY_TEXT.replace(SECRET, "not base64 at all!"))
    with pytest.raises(TsigKeyError, match="not valid base64") as caught:
        load_key_file(path)
    assert "not base64" not in str(caught.value)
    with pytest.raises(TsigKeyError, match="hmac-sha256 but the config says hmac-md5"):
        parse_key_text(KEY_TEXT, source="x", algorithm="hmac-md5")
    with pytest.raises(TsigKeyError, match="cannot read TSIG key file"):
        load_key_file(tmp_path / "missing.key")


def test_update_message_is_an_update() -> None:
    message = build_update(ZONE, [edit_from_change(c, ZONE) for c in creates(1)], key=None)
    assert isinstance(message, dns.update.UpdateMessage)
    assert message.zone[0].name == ZONE


def test_silent_server_is_a_timeout_error_naming_zone_and_server(tmp_path: Path) -> None:
    from reconciler.config import RuntimeConfig, SourceConfig
    from reconciler.resources import DesiredState, DnsZone
    from reconciler.targets.base import TargetError
    from reconciler.targets.dns_rfc2136 import build

    key_file = tmp_path / "k.key"
    key_file.write_text(KEY_TEXT)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts connections, never answers
        port = listener.getsockname()[1]
        config = RuntimeConfig(source=SourceConfig(path=tmp_path), state_dir=tmp_path / "state")
        target = build(
            "dns",
            {"server": "127.0.0.1", "port": port, "key_file": str(key_file), "timeout": 0.3},
            config,
        )
        state = DesiredState(dns_zones=(DnsZone("cluster.example.", "forward"),))
        desired = target.desired(state)
        with pytest.raises(TargetError, match=r"did not answer within 0\.3 s") as caught:
            target.read(desired)
        assert f"127.0.0.1:{port}" in str(caught.value) and "cluster.example." in str(caught.value)
        change = creates(1)[0]
        with pytest.raises(TargetError, match=r"did not answer within 0\.3 s"):
            target.apply([change])
