"""Names from BIND: zone files (parsed by dnspython) or a zone transfer from a server.

Only A and PTR records matter to an import: they give each address its name
and let ``infer`` check that forward, reverse and DHCP agree. A zone file
without ``$ORIGIN`` gets its origin from ``ORIGIN=FILE`` on the command line
or from its file name (``db.cluster.example``, ``cluster.example.zone``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.exception
import dns.name
import dns.rdatatype
import dns.zone

from reconciler.importer.records import DnsName, ImportFailure, Sources, Where
from reconciler.targets.dns_wire import DnsServerError, Endpoint, transfer_zone
from reconciler.targets.tsig_key import TsigKey

_SUFFIXES = (".zone", ".db", ".hosts", ".dns")


def origin_from_file_name(path: Path) -> str | None:
    """``db.cluster.example`` or ``cluster.example.zone`` -> ``cluster.example``."""
    name = path.name
    if name.startswith("db."):
        name = name[3:]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name if "." in name else None


def split_zone_argument(argument: str) -> tuple[str | None, Path]:
    """``ORIGIN=FILE`` or ``FILE``."""
    origin, sep, file = argument.partition("=")
    return (origin, Path(file)) if sep else (None, Path(argument))


def _failing_line(text: str, origin: dns.name.Name | None, reported: int) -> int:
    """The line a zone syntax error is on. dnspython reads a record's data up to the end
    of its line before it complains, and then names the next line: parse the lines
    before the reported one, and if they fail too, the record before is the culprit."""
    if reported <= 1:
        return reported
    head = "".join(text.splitlines(keepends=True)[: reported - 1])
    try:
        dns.zone.from_text(head, origin=origin, relativize=False, check_origin=False)
    except dns.exception.SyntaxError:
        return reported - 1
    except dns.exception.DNSException:
        return reported
    return reported


def read_zone_file(argument: str, sources: Sources) -> None:
    origin_text, path = split_zone_argument(argument)
    where = Where(str(path))
    try:
        text = path.read_text()
    except OSError as error:
        raise ImportFailure(where, f"cannot read the zone file: {error.strerror}") from None
    origin_text = origin_text or (None if "$ORIGIN" in text else origin_from_file_name(path))
    try:
        origin = dns.name.from_text(origin_text) if origin_text else None
        zone = dns.zone.from_text(text, origin=origin, relativize=False, filename=str(path))
    except dns.zone.UnknownOrigin:
        raise ImportFailure(
            where,
            "expected $ORIGIN in the file or an origin: pass --zone ORIGIN=FILE "
            "(for example --zone cluster.example=db.cluster)",
        ) from None
    except dns.exception.DNSException as error:
        # dnspython's syntax errors already read "file:line: message".
        file, line, message = [*str(error).split(":", 2), "", ""][:3]
        if line.strip().isdigit():
            number = _failing_line(text, origin, int(line))
            lines = text.splitlines()
            shown = lines[number - 1].strip() if number <= len(lines) else ""
            raise ImportFailure(
                Where(file, number),
                f"{message.strip().rstrip('.')} in {shown!r}: expected NAME [TTL] [IN] TYPE "
                "DATA, the data as its type defines it (A: an IPv4 address; PTR, NS: a name)",
            ) from None
        raise ImportFailure(where, str(error)) from None
    assert zone.origin is not None
    _add_records(
        sources,
        origin=zone.origin.to_text(),
        rrsets=[(name, rdataset) for name, rdataset in zone.iterate_rdatasets()],
        where=where,
    )


def read_axfr(argument: str, sources: Sources, *, key: TsigKey | None, timeout: float) -> None:
    """``SERVER[#PORT]:ZONE`` transferred with the TSIG key (named allows transfers by key)."""
    server, sep, zone = argument.rpartition(":")
    host, _, port_text = server.partition("#")
    where = Where(f"axfr {argument}")
    if not sep or not host or not zone or (port_text and not port_text.isdigit()):
        raise ImportFailure(
            where, "expected --axfr SERVER[#PORT]:ZONE, e.g. 127.0.0.1#53:cluster.example"
        )
    if key is None:
        raise ImportFailure(where, "a zone transfer needs --tsig-key FILE (a BIND key file)")
    endpoint = Endpoint(host=host, port=int(port_text or 53), timeout=timeout, key=key)
    origin = zone.rstrip(".") + "."
    try:
        records = transfer_zone(endpoint, origin)
    except DnsServerError as error:
        raise ImportFailure(where, str(error)) from None
    for record in records:
        if record.rtype not in ("A", "PTR"):
            continue
        owner = record.name.rstrip(".").lower()
        for value in record.values:
            _add_one(
                sources, rtype=record.rtype, owner=owner, value=value, ttl=record.ttl, where=where
            )
    if any(r.rtype == "A" for r in records):
        sources.zones.append(origin.rstrip("."))


def _add_records(
    sources: Sources,
    *,
    origin: str,
    rrsets: list[tuple[dns.name.Name, dns.rdataset.Rdataset]],
    where: Where,
) -> None:
    forward = False
    for name, rdataset in rrsets:
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        if rtype not in ("A", "PTR"):
            continue
        owner = name.to_text().rstrip(".").lower()
        for rdata in rdataset:
            forward |= rtype == "A"
            _add_one(
                sources,
                rtype=rtype,
                owner=owner,
                value=rdata.to_text(),
                ttl=rdataset.ttl,
                where=where,
            )
    if forward:
        sources.zones.append(origin.rstrip("."))


def _add_one(
    sources: Sources, *, rtype: str, owner: str, value: str, ttl: int, where: Where
) -> None:
    if rtype == "A":
        sources.forward.append(DnsName(owner, ipaddress.IPv4Address(value), where, ttl))
        return
    address = _address_of_reverse(owner)
    if address is not None:
        sources.reverse.append(DnsName(value.rstrip(".").lower(), address, where, ttl))


def _address_of_reverse(owner: str) -> ipaddress.IPv4Address | None:
    """``11.45.23.10.in-addr.arpa`` -> 10.23.45.11; None for anything else."""
    if not owner.endswith(".in-addr.arpa"):
        return None
    octets = owner[: -len(".in-addr.arpa")].split(".")
    if len(octets) != 4:
        return None
    try:
        return ipaddress.IPv4Address(".".join(reversed(octets)))
    except ValueError:
        return None
