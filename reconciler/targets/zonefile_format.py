"""The zone file text the ``dns-zonefile`` target writes, and a fast reader for it.

A site of 10,000 hosts has 20,000 RRsets; every pass reads them back, so the
reader must be quick. The writer therefore uses one canonical shape: every
record on its own line as ``<absolute name> <ttl> IN <type> <data>``, no
``$ORIGIN``, no ``$TTL``, no parentheses, sorted. The fast reader splits such
lines and nothing more. A file someone edited by hand may use any zone file
syntax (relative names, blank owners, ``$ORIGIN``, multi-line records, quoted
strings): when any line is not in the canonical shape, the whole file is
parsed by dnspython's zone parser instead, since such lines depend on the lines
before them. The next rewrite puts the file back into the canonical shape.
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, count, islice
from operator import attrgetter

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from reconciler.resources import DnsRecord
from reconciler.targets.dns_records import absolute, is_zone_infrastructure, normalise_values

_SPECIAL_IN_NAME = frozenset('();"\\')
_SPECIAL_IN_DATA = frozenset("();\\")  # quotes alone are fine: TXT data is kept verbatim


class ZoneFileError(Exception):
    """A zone file that neither reader understands; the message names the line."""


@dataclass(frozen=True, slots=True)
class SoaFields:
    mname: str
    rname: str
    refresh: int
    retry: int
    expire: int
    minimum: int
    ttl: int


@dataclass(frozen=True, slots=True)
class ParsedZone:
    serial: int | None
    records: list[DnsRecord]  # every RRset, SOA and NS included
    canonical: bool  # True when the fast reader understood every line


def render_zone(
    *,
    zone: str,
    soa: SoaFields,
    serial: int,
    nameservers: Iterable[str],
    records: Iterable[DnsRecord],
) -> str:
    """The whole file. ``records`` must not contain the apex SOA/NS (they come from settings)."""
    head = zone_head(zone=zone, soa=soa, serial=serial, nameservers=nameservers)
    return head + "".join(map(record_lines, sorted(records, key=_order)))


def zone_head(*, zone: str, soa: SoaFields, serial: int, nameservers: Iterable[str]) -> str:
    """The comment, SOA and apex NS lines that start a zone file."""
    lines = [
        f"; zone {zone} -- written by the reconciler (dns-zonefile target).",
        "; Records it does not own are kept; the others come from the inventory.",
        f"{zone} {soa.ttl} IN SOA {absolute(soa.mname)} {absolute(soa.rname)} "
        f"{serial} {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}",
    ]
    lines.extend(f"{zone} {soa.ttl} IN NS {absolute(ns)}" for ns in sorted(set(nameservers)))
    return "\n".join(lines) + "\n"


def record_lines(record: DnsRecord) -> str:
    values = record.values
    if len(values) == 1:  # most RRsets: one line, without a generator (issue 17)
        return f"{record.name} {record.ttl} IN {record.rtype} {values[0]}\n"
    prefix = f"{record.name} {record.ttl} IN {record.rtype} "
    return "".join(f"{prefix}{value}\n" for value in values)


def _order(record: DnsRecord) -> tuple[str, str]:
    return (record.name, record.rtype)


class ZoneBody:
    """A zone's records by key and their lines in file order, so a change of one record
    re-renders one record (``render_zone`` writes the same text)."""

    def __init__(self, records: dict[str, DnsRecord]) -> None:
        self.records = records
        ordered = sorted(records.values(), key=_order)
        self._order = list(map(_order, ordered))
        self._lines = list(map(record_lines, ordered))

    def put(self, key: str, record: DnsRecord) -> bool:
        """Add or replace a record; False when it was there as it is."""
        old = self.records.get(key)
        if old == record:
            return False
        if old is not None:
            self._remove(old)
        self.records[key] = record
        at = bisect.bisect_left(self._order, _order(record))
        self._order.insert(at, _order(record))
        self._lines.insert(at, record_lines(record))
        return True

    def drop(self, key: str) -> bool:
        old = self.records.pop(key, None)
        if old is None:
            return False
        self._remove(old)
        return True

    def _remove(self, record: DnsRecord) -> None:
        at = bisect.bisect_left(self._order, _order(record))
        del self._order[at], self._lines[at]

    def text(self, head: str) -> str:
        return head + "".join(self._lines)


# What the canonical reader would not give back as written: line breaks of any kind
# (``str.splitlines``), its special characters, quotes, tabs, "$" (a directive at the
# start of a line); then two spaces in a row (an empty or padded field), a space ending
# a line (an empty value) or starting one. One character class, then plain substring
# searches: a regular expression with the pieces as alternatives took 3x as long.
_NOT_AS_WRITTEN = re.compile('[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029();\\\\"\t$]')
_SPACING = ("  ", " \n", "\n ")


def records_if_rendered(
    text: str,
    *,
    zone: str,
    soa: SoaFields,
    nameservers: Iterable[str],
    records: Sequence[DnsRecord],
) -> Sequence[DnsRecord] | None:
    """``records`` when ``text`` is exactly what ``render_zone`` writes for them (at the
    serial ``text`` holds) and reading it gives each of them back as it is; otherwise
    None, and the text must be parsed.

    The common case of a no-op pass (a zone file as the last apply wrote it) then costs
    a render and a string comparison instead of a parse: 210,000 records at 100,000
    hosts. Each condition under which ``parse_zone`` would read the same text back as
    other records is checked, over all records at once: any doubt means None.
    """
    head_lines = text.split("\n", 3)
    if len(head_lines) < 4:
        return None
    soa_fields = head_lines[2].split()
    if len(soa_fields) != 11 or not soa_fields[6].isdigit():
        return None
    head = zone_head(zone=zone, soa=soa, serial=int(soa_fields[6]), nameservers=nameservers)
    ordered = sorted(records, key=_NAME)  # strings sort faster than (name, type) tuples
    names = list(map(_NAME, ordered))
    if any(map(operator.eq, names, islice(names, 1, None))):  # a name of several types
        ordered = sorted(records, key=_ORDER)
    body = "".join(map(record_lines, ordered))
    if len(text) != len(head) + len(body) or not text.startswith(head) or not text.endswith(body):
        return None
    return records if _read_back_as_written(body, zone=zone, records=ordered) else None


def _read_back_as_written(body: str, *, zone: str, records: list[DnsRecord]) -> bool:
    """Whether ``_parse_canonical`` reads ``body`` (``records`` rendered, sorted) back as
    ``records`` themselves (they are normalised: ``dns_records.normalise``)."""
    if not records:
        return True
    name_list = list(map(_NAME, records))
    names = "\n".join(name_list) + "\n"
    rtype_list = list(map(_RTYPE, records))
    rtypes = set(rtype_list)
    values = list(map(_VALUES, records))
    return (
        all(values)  # an RRset without values has no line
        and body.count("\n") == sum(map(len, values))  # one line a value: no line breaks
        and _NOT_AS_WRITTEN.search(body) is None
        and not any(map(f"\n{body}".__contains__, _SPACING))
        and " " not in names
        and names.count(".\n") == len(records)  # every name absolute
        and names == names.lower()
        and all(rtype.isalnum() and rtype.isupper() and rtype != "SOA" for rtype in rtypes)
        and min(map(_TTL, records)) >= 0
        and _one_per_name_and_type(name_list, rtype_list)
        and set(map(_ZONE, records)) == {zone}
        and (zone not in name_list or not any(map(is_zone_infrastructure, records)))
    )


def _one_per_name_and_type(names: list[str], rtypes: list[str]) -> bool:
    """Whether no two neighbours share name and type (the records are sorted by both):
    tuples of the two for each record took as long as the rest of the check."""
    same_name = compress(count(), map(operator.eq, names, islice(names, 1, None)))
    return all(rtypes[at] != rtypes[at + 1] for at in same_name)


_NAME, _RTYPE, _TTL, _ZONE = (attrgetter(f) for f in ("name", "rtype", "ttl", "zone"))
_VALUES, _ORDER = attrgetter("values"), attrgetter("name", "rtype")


def parse_zone(text: str, *, zone: str, source: str) -> ParsedZone:
    """Read a zone file: the fast path for canonical files, dnspython for anything else."""
    fast = _parse_canonical(text, zone)
    if fast is not None:
        return fast
    return _parse_with_dnspython(text, zone=zone, source=source)


def _parse_canonical(text: str, zone: str) -> ParsedZone | None:
    rrsets: dict[tuple[str, str], tuple[int, list[str]]] = {}
    serial: int | None = None
    for line in text.splitlines():
        if not line or line[0] == ";":
            continue
        first = line[0]
        if first in " \t$":
            return None
        parts = line.split(None, 4)
        if len(parts) != 5 or parts[2] != "IN" or not parts[1].isdigit():
            return None
        name, ttl_text, _, rtype, data = parts
        if name[-1] != "." or not rtype.isalnum() or not rtype.isupper():
            return None
        if not _SPECIAL_IN_DATA.isdisjoint(data) or not _SPECIAL_IN_NAME.isdisjoint(name):
            return None
        data = data.rstrip()
        if rtype == "SOA":
            fields = data.split()
            if len(fields) != 7 or not fields[2].isdigit():
                return None
            serial = int(fields[2])
        name = name.lower()
        entry = rrsets.get((name, rtype))
        if entry is None:
            rrsets[(name, rtype)] = (int(ttl_text), [data])
        else:
            entry[1].append(data)
    records = [
        DnsRecord(zone, name, rtype, ttl, normalise_values(rtype, values))
        for (name, rtype), (ttl, values) in rrsets.items()
    ]
    return ParsedZone(serial=serial, records=records, canonical=True)


def _parse_with_dnspython(text: str, *, zone: str, source: str) -> ParsedZone:
    try:
        parsed = dns.zone.from_text(
            text,
            origin=dns.name.from_text(zone),
            relativize=False,
            check_origin=False,
            filename=source,
        )
    except dns.exception.DNSException as error:
        raise ZoneFileError(f"{source}: not a valid zone file for {zone}: {error}") from None
    records: list[DnsRecord] = []
    serial: int | None = None
    for name, rdataset in parsed.iterate_rdatasets():
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        values = [rd.to_text() for rd in rdataset]
        if rdataset.rdtype == dns.rdatatype.SOA and name == parsed.origin:
            serial = int(next(iter(rdataset)).serial)
        records.append(
            DnsRecord(
                zone,
                name.to_text().lower(),
                rtype,
                int(rdataset.ttl),
                normalise_values(rtype, values),
            )
        )
    return ParsedZone(serial=serial, records=records, canonical=False)
