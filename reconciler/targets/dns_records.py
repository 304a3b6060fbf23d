"""What the two DNS backends share: picking, normalising and classifying RRsets.

Both ``dns-zonefile`` and ``dns-rfc2136`` compare the compiled records against
what they read, so both sides must be written the same way (lower-case owner
names, sorted unique values), and both split what they read into what the
ownership ledger says is ours and what is someone else's. The SOA and the apex
NS records belong to the zone, never to the reconciler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter

from reconciler.resources import AnyResource, DesiredState, DnsRecord
from reconciler.shared_runs import middles
from reconciler.targets.base import LiveState

# Types whose data is a domain name: compared case-insensitively.
NAME_VALUED_TYPES = frozenset({"PTR", "CNAME", "NS", "DNAME"})
# DNSSEC records a signing server adds itself: neither ours nor anybody's drift.
SIGNING_TYPES = frozenset({"RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY"})
# Apex records that make the zone a zone.
ZONE_INFRASTRUCTURE_TYPES = frozenset({"SOA", "NS"})


def absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def normalise_values(rtype: str, values: Iterable[str]) -> tuple[str, ...]:
    if rtype in NAME_VALUED_TYPES:
        return tuple(sorted({absolute(v) for v in values}))
    return tuple(sorted(set(values)))


def _is_absolute(name: str) -> bool:
    """Whether ``absolute(name) == name``."""
    return name[-1:] == "." and name == name.lower() and name == name.strip()


# Zones and types already found normal: a site has a few hundred zones and a few types
# for 200,000 records, so each is checked once (issue 17). Strings: never stale.
_NORMAL_ZONES: set[str] = set()
_NORMAL_TYPES: set[str] = set()
_MEMO_LIMIT = 4096


def _is_normal(record: DnsRecord) -> bool:
    """Whether ``normalise(record) == record`` (what compile and the readers give)."""
    values = record.values
    name = record.name
    if type(values) is not tuple or name[-1:] != "." or name != name.lower():
        return False
    if name != name.strip():  # (``_is_absolute(name)``, without a call)
        return False
    zone, rtype = record.zone, record.rtype
    if zone not in _NORMAL_ZONES:
        if not _is_absolute(zone):
            return False
        if len(_NORMAL_ZONES) < _MEMO_LIMIT:
            _NORMAL_ZONES.add(zone)
    if rtype not in _NORMAL_TYPES:
        if rtype != rtype.upper():
            return False
        if len(_NORMAL_TYPES) < _MEMO_LIMIT:
            _NORMAL_TYPES.add(rtype)
    if len(values) > 1 and not all(map(str.__lt__, values, values[1:])):  # sorted, unique
        return False
    return rtype not in NAME_VALUED_TYPES or all(map(_is_absolute, values))


def normalise(record: DnsRecord) -> DnsRecord:
    """The record as both sides of a diff write it (the record itself when it already is)."""
    if _is_normal(record):
        return record
    rtype = record.rtype.upper()
    return DnsRecord(
        zone=absolute(record.zone),
        name=absolute(record.name),
        rtype=rtype,
        ttl=record.ttl,
        values=normalise_values(rtype, record.values),
    )


class _NormalisedRecords:
    """The normalised form of each record of the latest compile (issue 17).

    A compile reuses the record objects of every unchanged host, in the same order,
    so a one-host commit normalises a handful of records instead of all 200,000 of
    a 100,000-host site: the records shared with the latest call, at its head and
    its tail (found in C, ``reconciler.shared_runs``), take its normalised objects
    as they are, and records between are found by identity. So an unchanged record
    keeps its normalised object, which lets a plan tell unchanged records by
    identity. Only the latest call's records and results are kept.
    """

    def __init__(self) -> None:
        self._records: Sequence[DnsRecord] = ()
        self._normal: list[DnsRecord] = []  # _normal[i] is normalise(_records[i])

    def of(self, records: Sequence[DnsRecord]) -> list[DnsRecord]:
        old, normal = self._records, self._normal
        old_middle, new_middle, head, tail = middles(old, records)
        known = {id(r): n for r, n in zip(old_middle, normal[head : len(old) - tail], strict=True)}
        if known:
            middle = [known.get(id(r)) or normalise(r) for r in new_middle]
        else:  # the first call: all of them
            middle = list(map(normalise, new_middle))
        result = normal[:head] + middle + normal[len(normal) - tail :]
        self._records, self._normal = records, result
        return result


_normalised = _NormalisedRecords()


def desired_records(state: DesiredState) -> tuple[list[DnsRecord], tuple[str, ...]]:
    """The normalised records of a compiled state, and the zones they belong in."""
    zones = tuple(sorted({absolute(z.name) for z in state.dns_zones}))
    return _normalised.of(state.dns_records), zones


def is_zone_infrastructure(record: DnsRecord) -> bool:
    return record.name == record.zone and record.rtype in ZONE_INFRASTRUCTURE_TYPES


def zone_of_key(key: str) -> str:
    return key.split(" ", 1)[0]


def zones_to_read(zones: Sequence[str], owned_keys: Iterable[str]) -> list[str]:
    """Managed zones, plus any zone the ledger still holds records in (to remove them)."""
    ledger_zones = set(map(itemgetter(0), map(str.split, owned_keys, repeat(" "), repeat(1))))
    return sorted(ledger_zones.union(zones))  # (``zone_of_key`` of each, without a call)


def zones_of(desired: Sequence[AnyResource]) -> list[str]:
    """Zones named by desired records (for a read() called without desired())."""
    return sorted({r.zone for r in desired if isinstance(r, DnsRecord)})


def classify(
    records: Iterable[DnsRecord], owned_keys: set[str], *, report_infrastructure: bool
) -> LiveState:
    """Split what was read into ours and not ours. SOA/NS at the apex are never ours."""
    records = list(records)
    keys = list(map(_KEY, records))
    apex = any(map(str.__eq__, map(_NAME, records), map(_ZONE, records)))
    if not apex and owned_keys.issuperset(keys):  # a no-op plan: all ours, in one pass in C
        return LiveState(owned=dict(zip(keys, records, strict=True)), unmanaged={})
    owned: dict[str, AnyResource] = {}
    unmanaged: dict[str, AnyResource] = {}
    for key, record in zip(keys, records, strict=True):
        if record.name == record.zone and record.rtype in ZONE_INFRASTRUCTURE_TYPES:
            if report_infrastructure:
                unmanaged[key] = record
        elif key in owned_keys:
            owned[key] = record
        else:
            unmanaged[key] = record
    return LiveState(owned=owned, unmanaged=unmanaged)


def records_by_zone(records: Iterable[DnsRecord]) -> Mapping[str, list[DnsRecord]]:
    records = list(records)
    zones = list(map(_ZONE, records))
    grouped: dict[str, list[DnsRecord]] = {zone: [] for zone in dict.fromkeys(zones)}
    for zone, record in zip(zones, records, strict=True):
        grouped[zone].append(record)
    return grouped


_KEY, _NAME, _ZONE = attrgetter("key"), attrgetter("name"), attrgetter("zone")
