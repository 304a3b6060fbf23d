"""What a target read last time, kept so a pass with nothing new reads almost nothing.

The watch loop keeps its targets between passes; these caches live in them
(issue 17: a no-op drift pass at 10,000 hosts in well under a second). Every
shortcut falls back to a full read when it could be wrong:

- ``ZoneSnapshots``: a zone's records from its last AXFR with the SOA serial in
  that transfer. A pass asks for the serial first (one signed query) and
  transfers the zone only when the serial moved: every UPDATE, ours or a hand
  edit, and every reload of a changed zone file moves it. A snapshot is also
  dropped after ``max_age`` seconds, for a zone file edited without raising its
  serial.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.resources import DnsRecord
from reconciler.targets.dhcp_hosts import HostBlock, iter_host_blocks

if TYPE_CHECKING:
    from reconciler.targets.omapi_client import OmapiHost

SNAPSHOT_MAX_AGE = 600.0  # seconds; a full AXFR at least this often per zone


@dataclass(frozen=True)
class _Snapshot:
    serial: int
    records: tuple[DnsRecord, ...]
    taken: float


def soa_serial(records: tuple[DnsRecord, ...] | list[DnsRecord]) -> int | None:
    """The serial of the zone's SOA record among ``records`` (None without one)."""
    for record in records:
        if record.rtype == "SOA" and record.values:
            return int(record.values[0].split()[2])
    return None


@dataclass
class ZoneSnapshots:
    """The last transfer of each zone, reused while the zone's serial stays the same."""

    max_age: float = SNAPSHOT_MAX_AGE
    transfers: int = 0  # full transfers done (for tests and benchmarks)
    reused: int = 0  # reads answered from a snapshot
    _zones: dict[str, _Snapshot] = field(default_factory=dict)

    def records(
        self,
        zone: str,
        *,
        serial: Callable[[], int],
        transfer: Callable[[], list[DnsRecord]],
    ) -> list[DnsRecord]:
        """The zone's records: the snapshot when ``serial()`` still matches it."""
        snapshot = self._zones.get(zone)
        now = time.monotonic()
        fresh = snapshot is not None and now - snapshot.taken < self.max_age
        if fresh and snapshot is not None and serial() == snapshot.serial:
            self.reused += 1
            return list(snapshot.records)
        records = transfer()
        self.transfers += 1
        transferred_serial = soa_serial(records)
        if transferred_serial is None:
            self._zones.pop(zone, None)
        else:
            self._zones[zone] = _Snapshot(transferred_serial, tuple(records), now)
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
