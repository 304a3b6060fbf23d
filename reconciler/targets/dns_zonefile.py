"""The ``dns-zonefile`` target: DNS without dynamic updates, one zone file per zone.

For a BIND (or NSD, Knot) that loads plain zone files. The live state is what
is on disk. A pass rewrites only the zones whose content changed, atomically,
and bumps the SOA serial only then, so secondaries and caches see a new serial
exactly when something changed. Records in a file that the ownership ledger
does not list (added by hand) are reported as unmanaged and kept on every
rewrite. The SOA and apex NS come from the settings and are never "owned".
Reloading the server (``rndc reload``) is left to the operator's hook.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from reconciler.config import RuntimeConfig
from reconciler.plan_cache import LiveFiles
from reconciler.resources import AnyResource, DesiredState, DnsRecord
from reconciler.targets import parse_settings
from reconciler.targets.base import (
    Action,
    ApplyResult,
    Change,
    LiveState,
    OwnershipLedger,
    TargetError,
    atomic_write,
)
from reconciler.targets.dns_records import (
    classify,
    desired_records,
    is_zone_infrastructure,
    records_by_zone,
    zone_of_key,
    zones_of,
    zones_to_read,
)
from reconciler.targets.left_files import LeftFiles
from reconciler.targets.zonefile_format import (
    ParsedZone,
    SoaFields,
    ZoneBody,
    ZoneFileError,
    parse_zone,
    records_if_rendered,
    zone_head,
)

log = logging.getLogger(__name__)


class ZoneFileSettings(BaseModel):
    """Zone files written whole, one per zone, for a server that loads them (BIND, NSD, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Field(
        description="folder of the zone files, <zone>.zone each",
        examples=["/var/lib/bind/reconciler"],
    )
    mname: str = Field(
        description="SOA primary server name, e.g. ns1.cluster.example.",
        examples=["ns1.cluster.example."],
    )
    rname: str = Field(
        description="SOA mailbox as a name, e.g. hostmaster.cluster.example.",
        examples=["hostmaster.cluster.example."],
    )
    nameservers: list[str] = Field(
        min_length=1, description="apex NS names", examples=[["ns1.cluster.example."]]
    )
    refresh: int = Field(default=3600, ge=1, description="SOA refresh, seconds")
    retry: int = Field(default=600, ge=1, description="SOA retry, seconds")
    expire: int = Field(default=1_209_600, ge=1, description="SOA expire, seconds")
    minimum: int = Field(default=300, ge=0, description="SOA minimum (negative-answer TTL)")
    ttl: int = Field(default=3600, ge=0, description="TTL of the SOA and NS records")
    checkzone: str | None = Field(
        default=None,
        description="path of named-checkzone: each new file is checked before it replaces the old",
    )


class ZoneFileTarget:
    """Zone files in one folder; see the module docstring."""

    kind: ClassVar[str] = "dns-zonefile"
    live_update: ClassVar[bool] = False  # the server must reload the zone file
    batch_size: ClassVar[int] = 1_000_000  # one file write carries all of a zone's changes
    read_cost_per_host: ClassVar[float] = 15.0  # µs; the order of a plan's reads (engine)

    def __init__(self, *, name: str, settings: ZoneFileSettings, ledger: OwnershipLedger) -> None:
        self.name = name
        self.settings = settings
        self.ledger = ledger
        self.soa = SoaFields(
            mname=settings.mname,
            rname=settings.rname,
            refresh=settings.refresh,
            retry=settings.retry,
            expire=settings.expire,
            minimum=settings.minimum,
            ttl=settings.ttl,
        )
        self._zones: tuple[str, ...] = ()
        # Each zone file as an apply last left it (written, or found as it should be): its
        # serial and records. A zone without changes whose file still holds it needs no
        # look, and a change to a zone of 100,000 records does not parse its file again
        # (at 100,000 hosts, reading and rendering all 640 zones took 4.5 s per commit).
        self._left: LeftFiles[tuple[int, ZoneBody]] = LeftFiles()

    def path_of(self, zone: str) -> Path:
        stem = zone.rstrip(".") or "root"
        return self.settings.directory / f"{stem}.zone"

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        records, zones = desired_records(state)
        self._zones = tuple(sorted(set(zones).union(map(attrgetter("zone"), records))))
        return records

    def live_files(self, desired: Sequence[AnyResource]) -> LiveFiles:
        """The ledger and every zone file ``read`` reads (``reconciler.plan_cache`` signs them)."""
        zones = self._zones_to_read(desired, self.ledger.load())
        return LiveFiles((str(self.ledger.path), *(str(self.path_of(zone)) for zone in zones)))

    def _zones_to_read(self, desired: Sequence[AnyResource], owned_keys: set[str]) -> list[str]:
        return zones_to_read(self._zones or tuple(zones_of(desired)), owned_keys)

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        owned_keys = self.ledger.load()
        zones = self._zones_to_read(desired, owned_keys)
        wanted = records_by_zone(r for r in desired if isinstance(r, DnsRecord))
        records: list[DnsRecord] = []
        for zone in zones:
            text = self._zone_text(zone)
            if text is None:
                continue
            # A file as an apply wrote it for the records we want: they are what it holds.
            same = records_if_rendered(
                text,
                zone=zone,
                soa=self.soa,
                nameservers=self.settings.nameservers,
                records=wanted.get(zone, ()),
            )
            records.extend(same if same is not None else self._parse(zone, text).records)
        return classify(records, owned_keys, report_infrastructure=False)

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        by_zone: dict[str, list[Change]] = {}
        for change in changes:
            by_zone.setdefault(zone_of_key(change.key), []).append(change)
        self.ledger.widen(c.key for c in changes if c.action is not Action.DELETE)
        result = ApplyResult()
        for zone in sorted(set(self._zones) | set(by_zone)):
            zone_changes = by_zone.get(zone, [])
            if not zone_changes and self._left.recall(self.path_of(zone)) is not None:
                continue
            if self._apply_zone(zone, zone_changes):
                result.writes += 1
                result.notes.append(f"rewrote {self.path_of(zone)}")
            result.applied += len(zone_changes)
            for change in zone_changes:
                log.info(
                    "dns change applied",
                    extra={"target": self.name, "action": change.action.value, "key": change.key},
                )
        self.ledger.narrow(c.key for c in changes if c.action is Action.DELETE)
        return result

    def _zone_text(self, zone: str) -> str | None:
        path = self.path_of(zone)
        try:
            return path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise TargetError(
                self.name, f"cannot read zone file {path}: {error.strerror}"
            ) from None

    def _parse(self, zone: str, text: str) -> ParsedZone:
        try:
            return parse_zone(text, zone=zone, source=str(self.path_of(zone)))
        except ZoneFileError as error:
            raise TargetError(self.name, str(error)) from None

    def _apply_zone(self, zone: str, changes: list[Change]) -> bool:
        """Rewrite one zone file if its content changes; True when it was written."""
        path = self.path_of(zone)
        kept = self._left.recall(path)
        old_serial: int | None
        if kept is not None:
            # The file is still what this target left: its records, without a parse.
            old_serial, body = kept
            if not self._edit(body, changes):
                return False
        else:
            old_text, old_serial, records = self._parsed_zone(zone)
            body = ZoneBody(records)
            self._edit(body, changes)
            unchanged = old_serial is not None and body.text(self._head(zone, old_serial))
            if old_text is not None and old_serial is not None and unchanged == old_text:
                self._left.keep(path, text=old_text, value=(old_serial, body))
                return False
        self._left.forget(path)
        serial = max((old_serial or 0) + 1, int(time.time()))
        text = body.text(self._head(zone, serial))
        if self.settings.checkzone:
            self._check(zone, path=path, text=text)
        try:
            atomic_write(path, text)
        except OSError as error:
            raise TargetError(self.name, f"cannot write zone file {path}: {error}") from None
        self._left.keep(path, text=text, value=(serial, body))
        return True

    @staticmethod
    def _edit(body: ZoneBody, changes: list[Change]) -> bool:
        """Apply the changes to the zone's records; True when one of them changed."""
        changed = False
        for change in changes:
            if change.action is Action.DELETE:
                changed = body.drop(change.key) or changed
            elif isinstance(change.new, DnsRecord):
                changed = body.put(change.key, change.new) or changed
        return changed

    def _parsed_zone(self, zone: str) -> tuple[str | None, int | None, dict[str, DnsRecord]]:
        """The zone file's text, serial and records we may own (nothing when it is missing)."""
        path = self.path_of(zone)
        try:
            old_text = path.read_text()
        except FileNotFoundError:
            return None, None, {}
        except OSError as error:
            raise TargetError(
                self.name, f"cannot read zone file {path}: {error.strerror}"
            ) from None
        try:
            parsed = parse_zone(old_text, zone=zone, source=str(path))
        except ZoneFileError as error:
            raise TargetError(self.name, str(error)) from None
        records = {r.key: r for r in parsed.records if not is_zone_infrastructure(r)}
        return old_text, parsed.serial, records

    def _head(self, zone: str, serial: int) -> str:
        return zone_head(
            zone=zone, soa=self.soa, serial=serial, nameservers=self.settings.nameservers
        )

    def _check(self, zone: str, *, path: Path, text: str) -> None:
        assert self.settings.checkzone is not None
        candidate = path.with_name(f".{path.name}.check")
        try:
            atomic_write(candidate, text)
            completed = subprocess.run(
                [self.settings.checkzone, zone, str(candidate)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TargetError(self.name, f"cannot run {self.settings.checkzone}: {error}") from None
        finally:
            candidate.unlink(missing_ok=True)
        if completed.returncode != 0:
            detail = (completed.stdout + completed.stderr).strip() or "no output"
            raise TargetError(
                self.name, f"named-checkzone rejects the new {path} (old file kept): {detail}"
            )


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> ZoneFileTarget:
    parsed = parse_settings(name, ZoneFileSettings, settings)
    parsed = parsed.model_copy(update={"directory": config.resolve(parsed.directory)})
    ledger = OwnershipLedger(config.resolve(config.state_dir), name)
    return ZoneFileTarget(name=name, settings=parsed, ledger=ledger)
