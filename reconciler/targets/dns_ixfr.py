"""IXFR reads: what changed in a zone since a serial, as the server's journal tells it.

A drift pass that finds a zone's serial moved (a hand edit, our own UPDATE)
asks for the differences since the serial of its cached copy instead of the
whole zone (RFC 1995). The answer comes in one of three shapes, told apart by
its records:

- only the current SOA: nothing to tell (the server thinks we are up to date);
- SOA(new), then pairs of sequences "SOA(old), removed records..., SOA(newer),
  added records...", then SOA(new): the differences, oldest first;
- SOA(new), then every record of the zone, then SOA(new): the whole zone, which
  a server sends when its journal does not reach back to our serial.

The caching (applying differences to the copy, falling back to AXFR) lives in
``live_cache``; this module only speaks DNS and turns the answer into records
normalised exactly as ``dns_wire.transfer_zone`` does.
"""

from __future__ import annotations

import dns.exception
import dns.rdatatype
import dns.rrset

from reconciler.resources import DnsRecord
from reconciler.targets.dns_records import SIGNING_TYPES, normalise_values
from reconciler.targets.dns_wire import DnsServerError, Endpoint, describe_failure
from reconciler.targets.live_cache import Incremental, RecordValue, ZoneDelta

_SOA = dns.rdatatype.SOA


def _value(rrset: dns.rrset.RRset) -> RecordValue:
    rtype = dns.rdatatype.to_text(rrset.rdtype)
    (value,) = normalise_values(rtype, [rrset[0].to_text()])
    return RecordValue(rrset.name.to_text().lower(), rtype, rrset.ttl, value)


def changes_since(endpoint: Endpoint, zone: str, serial: int) -> Incremental:
    """The server's IXFR answer for ``zone`` from ``serial``, signed with the key."""
    answer: list[dns.rrset.RRset] = []
    try:
        for message in endpoint.transfer(
            zone,
            rdtype=dns.rdatatype.IXFR,
            serial=serial,
            # a serial behind ours (zone file restored, journal lost): answered with the
            # SOA alone, which sends the caller to a full transfer
            raise_on_serial_went_backwards=False,
        ):
            answer.extend(message.answer)  # one record per RRset for IXFR, in order
    except (OSError, EOFError, dns.exception.DNSException) as error:
        raise DnsServerError(
            describe_failure(error, endpoint=endpoint, zone=zone, what="incremental transfer")
        ) from None
    return parse_ixfr(zone, answer)


def parse_ixfr(zone: str, answer: list[dns.rrset.RRset]) -> Incremental:
    """The differences (or the whole zone) in an IXFR answer's records, in order."""
    if len(answer) < 2 or answer[0].rdtype != _SOA:
        return Incremental()  # up to date as far as the server knows
    if answer[1].rdtype != _SOA:
        return Incremental(full=_whole_zone(zone, answer[:-1]))
    deltas: list[ZoneDelta] = []
    position, last = 1, len(answer) - 1  # answer[last] is the closing SOA
    while position < last:
        old = answer[position]
        removed, position = _until_soa(answer, position + 1, last)
        if position >= last:
            raise DnsServerError(f"incremental transfer of zone {zone}: a sequence without end")
        new = answer[position]
        added, position = _until_soa(answer, position + 1, last)
        deltas.append(
            ZoneDelta(
                start=int(old[0].serial),
                end=int(new[0].serial),
                removed=(_value(old), *removed),
                added=(_value(new), *added),
            )
        )
    return Incremental(deltas=tuple(deltas))


def _until_soa(
    answer: list[dns.rrset.RRset], position: int, last: int
) -> tuple[list[RecordValue], int]:
    values: list[RecordValue] = []
    while position < last and answer[position].rdtype != _SOA:
        if dns.rdatatype.to_text(answer[position].rdtype) not in SIGNING_TYPES:
            values.append(_value(answer[position]))
        position += 1
    return values, position


def _whole_zone(zone: str, answer: list[dns.rrset.RRset]) -> list[DnsRecord]:
    rrsets: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for rrset in answer:
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        if rtype in SIGNING_TYPES:
            continue
        entry = rrsets.setdefault((rrset.name.to_text().lower(), rtype), (rrset.ttl, []))
        entry[1].extend(rd.to_text() for rd in rrset)
    return [
        DnsRecord(zone, name, rtype, ttl, normalise_values(rtype, values))
        for (name, rtype), (ttl, values) in rrsets.items()
    ]
