"""The ``dns-rfc2136`` target: a BIND with dynamic zones, read by AXFR or IXFR, changed by UPDATE.

No restart, no zone file editing: each managed zone is read whole by a TSIG
signed zone transfer, compared at RRset level (A, PTR, CNAME and their TTLs),
and changed by TSIG signed RFC 2136 UPDATE messages, many RRsets per message
(see ``dns_wire``). Every change carries a prerequisite that the RRset still
holds what was read, so a concurrent edit fails the message with a clear error
and the next pass replans. Only records the ownership ledger lists are changed
or removed; the SOA, the apex NS and records someone added by hand are left
alone and reported as unmanaged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

import dns.name
from pydantic import BaseModel, ConfigDict, Field

from reconciler.config import RuntimeConfig
from reconciler.keyfiles import check_key_file
from reconciler.resources import AnyResource, DesiredState, DnsRecord
from reconciler.targets import parse_settings
from reconciler.targets.base import (
    Action,
    ApplyResult,
    Change,
    LiveState,
    OwnershipLedger,
    TargetError,
)
from reconciler.targets.dns_ixfr import changes_since
from reconciler.targets.dns_records import (
    SIGNING_TYPES,
    classify,
    desired_records,
    is_zone_infrastructure,
    zone_of_key,
    zones_of,
    zones_to_read,
)
from reconciler.targets.dns_wire import (
    DEFAULT_MAX_BYTES,
    TCP_MESSAGE_LIMIT,
    DnsServerError,
    Endpoint,
    RRsetEdit,
    SendStats,
    UpdateSession,
    batch_edits,
    build_update,
    edit_from_change,
    transfer_zone,
    zone_serial,
)
from reconciler.targets.live_cache import ZoneSnapshots
from reconciler.targets.tsig_key import TsigKey, TsigKeyError, load_key_file

log = logging.getLogger(__name__)


class Rfc2136Settings(BaseModel):
    """Records kept exact in a primary DNS server with TSIG-signed RFC 2136 UPDATEs (batched)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(
        description="address of the primary server, e.g. 127.0.0.1", examples=["127.0.0.1"]
    )
    port: int = Field(default=53, ge=1, le=65535, description="the primary's DNS port")
    key_file: Path = Field(
        description="TSIG key as written by tsig-keygen (the secret; mode 0600)",
        examples=["/etc/reconciler/tsig.key"],
    )
    key_name: str | None = Field(default=None, description="key to use if the file has several")
    algorithm: str | None = Field(default=None, description="defaults to the file's algorithm")
    timeout: float = Field(default=10.0, gt=0, description="seconds to wait for each answer")
    transfer_timeout: float = Field(
        default=300.0, gt=0, description="seconds for a whole zone transfer (AXFR or IXFR)"
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1024,
        le=TCP_MESSAGE_LIMIT,
        description="largest UPDATE message; bigger batches are split",
    )
    max_changes_per_message: int = Field(
        default=4000, ge=1, description="most RRset changes in one UPDATE message"
    )


class Rfc2136Target:
    """Dynamic zones on one server; see the module docstring."""

    kind: ClassVar[str] = "dns-rfc2136"
    live_update: ClassVar[bool] = True
    batch_size: ClassVar[int] = 4000  # RRset changes per UPDATE message at most

    def __init__(self, *, name: str, settings: Rfc2136Settings, ledger: OwnershipLedger) -> None:
        self.name = name
        self.settings = settings
        self.ledger = ledger
        self.stats = SendStats()  # cumulative over this object's applies
        self._zones: tuple[str, ...] = ()
        self._key: TsigKey | None = None
        # Types found at each owner name by the last read: for the CNAME checks.
        self._types_at: dict[str, set[str]] | None = None
        # The last transfer of each zone, reused while its SOA serial stays the same
        # and brought up to date by IXFR when it moved.
        self.snapshots = ZoneSnapshots()

    @property
    def endpoint(self) -> Endpoint:
        if self._key is None:
            try:
                self._key = load_key_file(
                    self.settings.key_file,
                    key_name=self.settings.key_name,
                    algorithm=self.settings.algorithm,
                )
            except TsigKeyError as error:
                raise TargetError(self.name, str(error)) from None
        return Endpoint(
            host=self.settings.server,
            port=self.settings.port,
            timeout=self.settings.timeout,
            key=self._key,
            transfer_lifetime=self.settings.transfer_timeout,
        )

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        records, zones = desired_records(state)
        self._zones = tuple(sorted(set(zones).union(map(attrgetter("zone"), records))))
        return records

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        owned_keys = self.ledger.load()
        managed = set(self._zones or zones_of(desired))
        endpoint = self.endpoint
        records: list[DnsRecord] = []
        for zone in zones_to_read(sorted(managed), owned_keys):
            try:
                records.extend(
                    self.snapshots.records(
                        zone,
                        serial=partial(zone_serial, endpoint, zone),
                        transfer=partial(transfer_zone, endpoint, zone),
                        changes_since=partial(changes_since, endpoint, zone),
                    )
                )
            except DnsServerError as error:
                if zone in managed:
                    raise TargetError(self.name, str(error)) from None
                # A zone the inventory dropped and the server no longer has: its
                # records went with it.
                log.warning("dns zone only in ledger unreadable, skipped: %s", error)
        types_at: dict[str, set[str]] = {}
        for record in records:
            types_at.setdefault(record.name, set()).add(record.rtype)
        self._types_at = types_at
        return classify(records, owned_keys, report_infrastructure=True)

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        if not changes:
            return result
        self._refuse_infrastructure(changes)
        self._check_cname_conflicts(changes)
        endpoint = self.endpoint
        by_zone: dict[str, list[Change]] = {}
        for change in changes:
            by_zone.setdefault(zone_of_key(change.key), []).append(change)
        batches: list[tuple[str, list[RRsetEdit]]] = []
        for zone, zone_changes in by_zone.items():
            origin = dns.name.from_text(zone)
            try:
                edits = [edit_from_change(c, origin) for c in zone_changes]
                zone_batches = batch_edits(
                    edits,
                    zone=origin,
                    max_bytes=self.settings.max_message_bytes,
                    max_changes=min(self.settings.max_changes_per_message, self.batch_size),
                )
            except (DnsServerError, ValueError, SyntaxError) as error:
                raise TargetError(self.name, f"zone {zone}: {error}") from None
            batches.extend((zone, batch) for batch in zone_batches)

        self.ledger.widen(c.key for c in changes if c.action is not Action.DELETE)
        done: list[Change] = []
        sent = SendStats()
        try:
            with UpdateSession(endpoint, sent) as session:
                for zone, batch in batches:
                    message = build_update(dns.name.from_text(zone), batch, key=endpoint.key)
                    session.send(message, zone=zone, changes=len(batch))
                    for edit in batch:
                        done.append(edit.change)
                        log.info(
                            "dns change applied",
                            extra={
                                "target": self.name,
                                "action": edit.change.action.value,
                                "key": edit.change.key,
                            },
                        )
        except DnsServerError as error:
            applied = {c.key for c in done}
            # Keys widened for creates and adoptions that did not happen are not ours.
            self.ledger.narrow(
                c.key
                for c in changes
                if c.key not in applied and (c.action is Action.CREATE or c.adopt)
            )
            self.ledger.narrow(c.key for c in done if c.action is Action.DELETE)
            raise TargetError(
                self.name, f"{error} ({len(done)} of {len(changes)} changes were applied)"
            ) from None
        finally:
            self.stats.add(sent)
        self.ledger.narrow(c.key for c in changes if c.action is Action.DELETE)
        result.applied = len(done)
        result.writes = sent.messages
        result.notes.append(
            f"{sent.messages} UPDATE message(s) to {endpoint.where}, {sent.bytes_sent} bytes, "
            f"largest {sent.largest_message} bytes"
        )
        return result

    def _refuse_infrastructure(self, changes: Sequence[Change]) -> None:
        for change in changes:
            record = change.new if change.new is not None else change.old
            if isinstance(record, DnsRecord) and is_zone_infrastructure(record):
                raise TargetError(
                    self.name,
                    f"refusing to change {change.key}: the SOA and apex NS records belong to "
                    "the server's configuration, not to the inventory",
                )

    def _check_cname_conflicts(self, changes: Sequence[Change]) -> None:
        """A CNAME cannot share its name; BIND would silently ignore such an add."""
        if self._types_at is None:
            return
        # Only the names these changes touch (a copy of every name costs ~0.2 s at 100k).
        touched = {
            record.name
            for change in changes
            for record in (change.old, change.new)
            if isinstance(record, DnsRecord)
        }
        after = {name: set(self._types_at.get(name, ())) for name in touched}
        for change in changes:
            if change.action is Action.DELETE and isinstance(change.old, DnsRecord):
                after.get(change.old.name, set()).discard(change.old.rtype)
        for change in changes:
            if change.action is Action.CREATE and isinstance(change.new, DnsRecord):
                after.setdefault(change.new.name, set()).add(change.new.rtype)
        for change in changes:
            if change.action is not Action.CREATE or not isinstance(change.new, DnsRecord):
                continue
            types = after.get(change.new.name, set()) - SIGNING_TYPES
            if "CNAME" in types and len(types) > 1:
                others = ", ".join(sorted(types - {"CNAME"}))
                raise TargetError(
                    self.name,
                    f"{change.new.name} would have a CNAME and {others} records; a CNAME "
                    "cannot share its name (an alias collides with a host or a hand-made "
                    "record); rename one of them",
                )


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> Rfc2136Target:
    parsed = parse_settings(name, Rfc2136Settings, settings)
    parsed = parsed.model_copy(update={"key_file": config.resolve(parsed.key_file)})
    check_key_file(parsed.key_file, setting=f"targets.{name}.key_file")
    ledger = OwnershipLedger(config.resolve(config.state_dir), name)
    return Rfc2136Target(name=name, settings=parsed, ledger=ledger)
