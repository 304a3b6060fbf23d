"""What a target read last time, kept so a pass with nothing new reads almost nothing.

The watch loop keeps its targets between passes; these caches live in them
(issue 17: a no-op drift pass at 10,000 hosts in well under a second). Every
shortcut falls back to a full read when it could be wrong:

- ``ZoneSnapshots``: a zone's records from its last transfer with the SOA serial
  in that transfer. A pass asks for the serial first (one signed query) and
  transfers nothing while it stays: every UPDATE, ours or a hand edit, and
  every reload of a changed zone file moves it. When it moved, an IXFR from the
  serial we hold brings only the differences, applied to the copy; a server
  that answers with the whole zone (its journal lost or too short) gives the
  copy anew, and differences that do not fit the copy (a removal of a value it
  lacks, a gap between serials) are thrown away for a full AXFR. A snapshot is
  also replaced by a full AXFR after ``max_age`` seconds, for a zone file
  edited without raising its serial.
- ``LeasesTail``: dhcpd appends to its leases file and now and then rewrites it
  whole (a new file renamed over the old). The tail reader parses only the bytes
  appended since the last read; a new inode or a file shorter than what was
  read means a rewrite, and the file is read again from the start.
- ``HostLookups``: dhcpd's OMAPI answers per host name and MAC. dhcpd writes
  every host object change (over OMAPI, ours or anyone's) to its leases file
  before it answers, and a restart (the only way hosts in dhcpd.conf change)
  rewrites that file; so an answer stays true until the leases tail shows a
  block with that name or MAC, and all are asked again after a rewrite.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.resources import DnsRecord
from reconciler.targets.dhcp_hosts import HostBlock, iter_host_blocks

if TYPE_CHECKING:
    from reconciler.targets.omapi_client import OmapiHost

SNAPSHOT_MAX_AGE = 600.0  # seconds; a full AXFR at least this often per zone


_RRsetKey = tuple[str, str]  # (owner name, type)


@dataclass(frozen=True)
class _Snapshot:
    serial: int
    records: dict[_RRsetKey, DnsRecord]
    taken: float  # when the last full transfer was made


@dataclass(frozen=True, slots=True)
class RecordValue:
    """One resource record of an IXFR difference (value normalised as AXFR reads it)."""

    name: str
    rtype: str
    ttl: int
    value: str


@dataclass(frozen=True)
class ZoneDelta:
    """One IXFR difference sequence: what took the zone from serial ``start`` to ``end``
    (the old SOA among ``removed``, the new one among ``added``)."""

    start: int
    end: int
    removed: tuple[RecordValue, ...]
    added: tuple[RecordValue, ...]


@dataclass(frozen=True)
class Incremental:
    """A server's answer to an IXFR: the differences, or the whole zone instead."""

    deltas: tuple[ZoneDelta, ...] = ()
    full: list[DnsRecord] | None = None


def soa_serial(records: Iterable[DnsRecord]) -> int | None:
    """The serial of the zone's SOA record among ``records`` (None without one)."""
    for record in records:
        if record.rtype == "SOA" and record.values:
            return int(record.values[0].split()[2])
    return None


def apply_deltas(
    zone: str, records: dict[_RRsetKey, DnsRecord], serial: int, deltas: Iterable[ZoneDelta]
) -> tuple[int, dict[_RRsetKey, DnsRecord]] | None:
    """The zone after ``deltas``, starting from ``records`` at ``serial``; None when
    they do not fit (a gap in the serials, a removed value the copy does not hold)."""
    touched: dict[_RRsetKey, tuple[int, set[str]]] = {}

    def values_at(key: _RRsetKey) -> tuple[int, set[str]]:
        if key not in touched:
            old = records.get(key)
            touched[key] = (old.ttl, set(old.values)) if old else (0, set())
        return touched[key]

    for delta in deltas:
        if delta.start != serial:
            return None
        for rr in delta.removed:
            _, values = values_at((rr.name, rr.rtype))
            if rr.value not in values:
                return None
            values.discard(rr.value)
        for rr in delta.added:
            key = (rr.name, rr.rtype)
            _, values = values_at(key)
            values.add(rr.value)
            touched[key] = (rr.ttl, values)
        serial = delta.end
    updated = dict(records)
    for (name, rtype), (ttl, values) in touched.items():
        if values:
            updated[(name, rtype)] = DnsRecord(zone, name, rtype, ttl, tuple(sorted(values)))
        else:
            updated.pop((name, rtype), None)
    return serial, updated


@dataclass
class ZoneSnapshots:
    """The last transfer of each zone, reused while the zone's serial stays the same
    and brought up to date by IXFR when it moved."""

    max_age: float = SNAPSHOT_MAX_AGE
    transfers: int = 0  # full transfers done (for tests and benchmarks)
    incremental: int = 0  # snapshots brought up to date by IXFR differences
    reused: int = 0  # reads answered from a snapshot
    _zones: dict[str, _Snapshot] = field(default_factory=dict)

    def records(
        self,
        zone: str,
        *,
        serial: Callable[[], int],
        transfer: Callable[[], list[DnsRecord]],
        changes_since: Callable[[int], Incremental] | None = None,
    ) -> list[DnsRecord]:
        """The zone's records: the snapshot when ``serial()`` still matches it, the
        snapshot plus ``changes_since(its serial)`` (IXFR) when it moved, else
        ``transfer()`` (AXFR)."""
        snapshot = self._zones.get(zone)
        now = time.monotonic()
        if snapshot is not None and now - snapshot.taken < self.max_age:
            if serial() == snapshot.serial:
                self.reused += 1
                return list(snapshot.records.values())
            if changes_since is not None:
                answer = changes_since(snapshot.serial)
                if answer.full is not None:
                    return self._keep(zone, answer.full, now)
                brought = apply_deltas(zone, snapshot.records, snapshot.serial, answer.deltas)
                if brought is not None and answer.deltas:
                    self.incremental += 1
                    self._zones[zone] = _Snapshot(brought[0], brought[1], snapshot.taken)
                    return list(brought[1].values())
        return self._keep(zone, transfer(), now)

    def _keep(self, zone: str, records: list[DnsRecord], now: float) -> list[DnsRecord]:
        self.transfers += 1
        transferred_serial = soa_serial(records)
        if transferred_serial is None:
            self._zones.pop(zone, None)
        else:
            by_key = {(r.name, r.rtype): r for r in records}
            self._zones[zone] = _Snapshot(transferred_serial, by_key, now)
        return records

    def forget(self, zone: str | None = None) -> None:
        """Drop one zone's snapshot, or all (after our own UPDATEs failed midway)."""
        if zone is None:
            self._zones.clear()
        else:
            self._zones.pop(zone, None)


@dataclass
class LeasesTail:
    """The host blocks of a dhcpd leases file, parsed incrementally between reads."""

    path: Path
    full_reads: int = 0  # reads from the start (for tests and benchmarks)
    _identity: tuple[int, int] | None = None  # (device, inode) of the file read
    _offset: int = 0  # bytes consumed: up to the end of the last complete block
    _hosts: dict[str, HostBlock] = field(default_factory=dict)
    # What the reads since the last ``take_changes`` saw: for ``HostLookups``.
    _rewritten: bool = True
    _names: set[str] = field(default_factory=set)
    _macs: set[str] = field(default_factory=set)

    def take_changes(self) -> tuple[bool, set[str], set[str]]:
        """(file rewritten, host names, MACs) in blocks read since the last call."""
        changes = (self._rewritten, self._names, self._macs)
        self._rewritten, self._names, self._macs = False, set(), set()
        return changes

    def hosts(self) -> dict[str, HostBlock]:
        """Every host block dhcpd keeps (the last of a name wins; deleted ones removed).

        Raises OSError (FileNotFoundError when missing) like ``Path.read_bytes``."""
        with self.path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            identity = (info.st_dev, info.st_ino)
            if identity != self._identity or info.st_size < self._offset:
                self._identity, self._offset, self._hosts = identity, 0, {}
                self.full_reads += 1
                self._rewritten = True
            handle.seek(self._offset)
            appended = handle.read()
        # Parse whole top-level blocks only: dhcpd may be half-way through a write.
        end = appended.rfind(b"\n}\n")
        if end >= 0:
            complete = appended[: end + 3]
            self._offset += len(complete)
            for block in iter_host_blocks(complete.decode(errors="replace")):
                self._names.add(block.name)
                if block.mac:
                    self._macs.add(block.mac.lower())
                if block.deleted:
                    self._hosts.pop(block.name, None)
                else:
                    self._hosts[block.name] = block
        return dict(self._hosts)


@dataclass
class HostLookups:
    """dhcpd's OMAPI answers by host name and by MAC, asked again only when they may
    have changed (see the module docstring)."""

    asked: int = 0  # names and MACs asked of dhcpd (for tests and benchmarks)
    _by_name: dict[str, OmapiHost | None] = field(default_factory=dict)
    _by_mac: dict[str, OmapiHost | None] = field(default_factory=dict)

    def forget_changed(self, leases: LeasesTail) -> None:
        rewritten, names, macs = leases.take_changes()
        if rewritten:
            self._by_name.clear()
            self._by_mac.clear()
            return
        for name in names:
            self._by_name.pop(name, None)
        for mac, host in list(self._by_mac.items()):
            if mac in macs or (host is not None and host.name in names):
                del self._by_mac[mac]

    def forget_all(self) -> None:
        self._by_name.clear()
        self._by_mac.clear()

    def by_name(
        self, names: list[str], ask: Callable[[list[str]], dict[str, OmapiHost]]
    ) -> dict[str, OmapiHost]:
        return self._lookup(self._by_name, names, ask)

    def by_mac(
        self, macs: list[str], ask: Callable[[list[str]], dict[str, OmapiHost]]
    ) -> dict[str, OmapiHost]:
        return self._lookup(self._by_mac, [m.lower() for m in macs], ask)

    def _lookup(
        self,
        known: dict[str, OmapiHost | None],
        keys: list[str],
        ask: Callable[[list[str]], dict[str, OmapiHost]],
    ) -> dict[str, OmapiHost]:
        unknown = [key for key in keys if key not in known]
        if unknown:
            found = ask(unknown)
            self.asked += len(unknown)
            for key in unknown:
                known[key] = found.get(key)
        return {key: host for key in keys if (host := known[key]) is not None}
