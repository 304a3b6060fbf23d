"""RFC 2136 UPDATE messages and AXFR reads: the only code that speaks DNS to a server.

``dns-rfc2136`` plans at RRset level; this module turns a plan's changes into
UPDATE messages and sends them. Each RRset change carries a prerequisite that
the RRset still holds what the plan read (RFC 2136 2.4.2 "RRset exists, value
dependent" for deletes and updates, 2.4.3 "RRset does not exist" for creates),
so an edit made between plan and apply makes the whole message fail instead of
being overwritten. Many changes go into one message: the size of each change
is estimated conservatively (only the zone suffix compressed) and messages are
cut before ``max_bytes``; the real wire size is measured and reported.
Failures become ``DnsServerError`` with a message naming zone and server.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.IN.A import A

from reconciler.resources import DnsRecord
from reconciler.targets.base import Action, Change
from reconciler.targets.dns_records import SIGNING_TYPES, normalise_values
from reconciler.targets.tsig_key import TsigKey

IN = dns.rdataclass.IN
# Largest DNS message over TCP is 65535 bytes; stay clearly below it.
TCP_MESSAGE_LIMIT = 65_535
DEFAULT_MAX_BYTES = 64_000
# Header, zone section and a TSIG record with a 64-byte MAC, generously.
_MESSAGE_OVERHEAD = 12 + 4 + 300

_CONFLICT_RCODES = {
    dns.rcode.NXRRSET: "an RRset the plan read has changed or gone",
    dns.rcode.YXRRSET: "an RRset the plan would create already exists",
    dns.rcode.NXDOMAIN: "a name the plan read is gone",
    dns.rcode.YXDOMAIN: "a name the plan would create is already in use",
}


class DnsServerError(Exception):
    """A server answered with an error or not at all; the message says what to fix."""


class ConcurrentChangeError(DnsServerError):
    """A prerequisite failed: someone changed the zone between plan and apply."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    timeout: float
    key: TsigKey
    transfer_lifetime: float = 300.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def transfer(self, zone: str, **extra: Any) -> Iterator[dns.message.Message]:
        """A zone transfer (AXFR, or what ``extra`` asks for) signed with the key."""
        key = self.key.to_dnspython()
        return dns.query.xfr(  # type: ignore[no-any-return]
            self.host,
            zone,
            port=self.port,
            timeout=self.timeout,
            lifetime=self.transfer_lifetime,
            keyring={key.name: key},
            keyname=key.name,
            keyalgorithm=key.algorithm,
            relativize=False,
            **extra,
        )


@dataclass(frozen=True, slots=True)
class RRsetEdit:
    """One change of a plan as the RRs it puts into a message."""

    change: Change
    owner: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    old: tuple[dns.rdata.Rdata, ...] | None  # prerequisite: exactly these; None: must not exist
    ttl: int
    new: tuple[dns.rdata.Rdata, ...] | None  # None: delete the RRset
    size: int  # estimated wire bytes (an upper bound)


@dataclass(slots=True)
class SendStats:
    """What went over the wire: tests and the benchmark read it."""

    messages: int = 0
    rrset_changes: int = 0
    bytes_sent: int = 0
    largest_message: int = 0

    def add(self, other: SendStats) -> None:
        self.messages += other.messages
        self.rrset_changes += other.rrset_changes
        self.bytes_sent += other.bytes_sent
        self.largest_message = max(self.largest_message, other.largest_message)


def rdatas_of(record: DnsRecord) -> tuple[dns.rdata.Rdata, ...]:
    """The record's data as dnspython rdata; A, PTR and CNAME built directly (fast)."""
    rtype = record.rtype
    if rtype == "A":
        return tuple(A(IN, dns.rdatatype.A, v) for v in record.values)  # type: ignore[no-untyped-call]
    if rtype in ("PTR", "CNAME"):
        rdtype = dns.rdatatype.from_text(rtype)
        cls = PTR if rtype == "PTR" else CNAME
        return tuple(cls(IN, rdtype, dns.name.from_text(v)) for v in record.values)
    rdtype = dns.rdatatype.from_text(rtype)
    return tuple(dns.rdata.from_text(IN, rdtype, v) for v in record.values)


def _rdata_length(rd: dns.rdata.Rdata) -> int:
    """Uncompressed wire length of an rdata, without rendering the common ones."""
    if isinstance(rd, A):
        return 4
    if isinstance(rd, PTR | CNAME):
        return _name_wire_length(rd.target)
    return len(rd.to_wire() or b"")


def _name_wire_length(name: dns.name.Name) -> int:
    return sum(len(label) + 1 for label in name.labels)


def _owner_cost(owner: dns.name.Name, zone: dns.name.Name) -> int:
    """Bytes of the owner name when only the zone suffix is compressed (a pointer)."""
    if owner == zone or not owner.is_subdomain(zone):
        return _name_wire_length(owner) if owner != zone else 2
    relative = owner.relativize(zone)
    return _name_wire_length(relative) + 2  # its own labels, then a pointer


def edit_from_change(change: Change, zone: dns.name.Name) -> RRsetEdit:
    record = change.new if change.new is not None else change.old
    assert isinstance(record, DnsRecord)
    owner = dns.name.from_text(record.name)
    rdtype = dns.rdatatype.from_text(record.rtype)
    old = rdatas_of(change.old) if isinstance(change.old, DnsRecord) else None
    new = rdatas_of(change.new) if isinstance(change.new, DnsRecord) else None
    owner_cost = _owner_cost(owner, zone)
    # Every RR: owner + type, class, TTL, rdlength (10 bytes) + rdata. The owner is
    # counted in full each time: a compression pointer reaches only the first
    # 16 KiB of a message, so later repeats cannot always point back.
    rr_sizes: list[int] = []
    if old is not None:
        rr_sizes.extend(10 + _rdata_length(rd) for rd in old)
    else:
        rr_sizes.append(10)  # "RRset does not exist"
    if change.action is not Action.CREATE:
        rr_sizes.append(10)  # delete the RRset
    if new is not None:
        rr_sizes.extend(10 + _rdata_length(rd) for rd in new)
    size = sum(rr_sizes) + owner_cost * len(rr_sizes)
    ttl = change.new.ttl if isinstance(change.new, DnsRecord) else 0
    return RRsetEdit(change, owner, rdtype, old, ttl, new, size)


def batch_edits(
    edits: Sequence[RRsetEdit], *, zone: dns.name.Name, max_bytes: int, max_changes: int
) -> list[list[RRsetEdit]]:
    """Cut the edits of one zone into messages of at most ``max_bytes`` and ``max_changes``."""
    budget = max_bytes - _MESSAGE_OVERHEAD - _name_wire_length(zone)
    batches: list[list[RRsetEdit]] = []
    current: list[RRsetEdit] = []
    used = 0
    for edit in edits:
        if edit.size > budget:
            raise DnsServerError(
                f"the change of {edit.change.key} alone needs about {edit.size} bytes, "
                f"more than one UPDATE message may carry ({max_bytes})"
            )
        if current and (used + edit.size > budget or len(current) >= max_changes):
            batches.append(current)
            current, used = [], 0
        current.append(edit)
        used += edit.size
    if current:
        batches.append(current)
    return batches


def build_update(
    zone: dns.name.Name, edits: Iterable[RRsetEdit], *, key: TsigKey | None
) -> dns.update.UpdateMessage:
    """One UPDATE: all prerequisites, then the updates in plan order (deletes first)."""
    message = dns.update.UpdateMessage(zone)
    for edit in edits:
        if edit.old is not None:
            message.present(edit.owner, *edit.old)
        else:
            message.absent(edit.owner, edit.rdtype)
        if edit.change.action is not Action.CREATE:
            message.delete(edit.owner, edit.rdtype)
        if edit.new is not None:
            message.add(edit.owner, edit.ttl, *edit.new)
    if key is not None:
        tsig = key.to_dnspython()
        message.use_tsig(tsig, tsig.name, algorithm=tsig.algorithm)
    return message


class UpdateSession:
    """One TCP connection to the server, carrying UPDATE messages one after another."""

    def __init__(self, endpoint: Endpoint, stats: SendStats) -> None:
        self.endpoint = endpoint
        self.stats = stats
        self._sock: socket.socket | None = None

    def __enter__(self) -> UpdateSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self, zone: str) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection(
                    (self.endpoint.host, self.endpoint.port), timeout=self.endpoint.timeout
                )
            except OSError as error:
                raise DnsServerError(unreachable(self.endpoint, zone, error)) from None
        return self._sock

    def send(self, message: dns.update.UpdateMessage, *, zone: str, changes: int) -> None:
        try:
            wire = message.to_wire(max_size=TCP_MESSAGE_LIMIT)
        except dns.exception.TooBig:
            raise DnsServerError(
                f"update of zone {zone}: message over {TCP_MESSAGE_LIMIT} bytes; "
                "lower max_message_bytes"
            ) from None
        sock = self._connect(zone)
        expiration = time.time() + self.endpoint.timeout
        try:
            dns.query.send_tcp(sock, wire, expiration)
            response, _ = dns.query.receive_tcp(
                sock, expiration, keyring=self.endpoint.key.keyring(), request_mac=message.mac
            )
        except (OSError, EOFError, dns.exception.DNSException) as error:
            self.__exit__()
            raise DnsServerError(
                describe_failure(error, endpoint=self.endpoint, zone=zone, what="update")
            ) from None
        self.stats.messages += 1
        self.stats.rrset_changes += changes
        self.stats.bytes_sent += len(wire)
        self.stats.largest_message = max(self.stats.largest_message, len(wire))
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        if rcode in _CONFLICT_RCODES:
            raise ConcurrentChangeError(
                f"zone {zone} on {self.endpoint.where} changed since the plan was read "
                f"({dns.rcode.to_text(rcode)}: {_CONFLICT_RCODES[rcode]}); nothing in this "
                "message was applied; run again to replan"
            )
        raise DnsServerError(update_rcode_message(rcode, endpoint=self.endpoint, zone=zone))


def transfer_zone(endpoint: Endpoint, zone: str) -> list[DnsRecord]:
    """Every RRset of ``zone`` by AXFR signed with the key (DNSSEC records left out)."""
    rrsets: dict[tuple[dns.name.Name, int], tuple[int, set[str]]] = {}
    try:
        for message in endpoint.transfer(zone):
            for rrset in message.answer:
                entry = rrsets.get((rrset.name, rrset.rdtype))
                texts = {rd.to_text() for rd in rrset}
                if entry is None:
                    rrsets[(rrset.name, rrset.rdtype)] = (rrset.ttl, texts)
                else:
                    entry[1].update(texts)
    except (OSError, EOFError, dns.exception.DNSException) as error:
        raise DnsServerError(
            describe_failure(error, endpoint=endpoint, zone=zone, what="zone transfer")
        ) from None
    records: list[DnsRecord] = []
    for (name, rdtype), (ttl, values) in rrsets.items():
        rtype = dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]
        if rtype in SIGNING_TYPES:
            continue
        records.append(
            DnsRecord(zone, name.to_text().lower(), rtype, ttl, normalise_values(rtype, values))
        )
    return records


def zone_serial(endpoint: Endpoint, zone: str) -> int:
    """The serial of ``zone``'s SOA as the server has it now (one signed query)."""
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    key = endpoint.key.to_dnspython()
    query.use_tsig({key.name: key}, keyname=key.name, algorithm=key.algorithm)
    try:
        # TCP, like the transfer: a server that is down refuses at once (UDP would time out).
        response = dns.query.tcp(query, endpoint.host, port=endpoint.port, timeout=endpoint.timeout)
    except (OSError, EOFError, dns.exception.DNSException) as error:
        raise DnsServerError(
            describe_failure(error, endpoint=endpoint, zone=zone, what="SOA query")
        ) from None
    origin = dns.name.from_text(zone)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.SOA and rrset.name == origin and len(rrset):
            return int(rrset[0].serial)
    rcode = dns.rcode.to_text(response.rcode())
    raise DnsServerError(
        f"SOA query for zone {zone} at {endpoint.where} answered {rcode} without the zone's "
        "SOA; is the zone on that server?"
    )


def unreachable(endpoint: Endpoint, zone: str, error: OSError) -> str:
    reason = error.strerror or type(error).__name__
    return (
        f"cannot reach DNS server {endpoint.where} for zone {zone}: {reason}; "
        "is named running and listening there?"
    )


def describe_failure(error: Exception, *, endpoint: Endpoint, zone: str, what: str) -> str:
    """A sentence for the user about an exception from dnspython or the socket."""
    key = endpoint.key.name
    if isinstance(error, dns.xfr.TransferError):
        rcode = error.rcode
        if rcode == dns.rcode.NOTAUTH:
            return (
                f"{what} of zone {zone} from {endpoint.where} failed: NOTAUTH; the zone is "
                f"not on that server, or it rejected TSIG key {key!r}"
            )
        if rcode == dns.rcode.REFUSED:
            return (
                f"{what} of zone {zone} from {endpoint.where} was REFUSED; the zone is not on "
                f"that server, or its allow-transfer does not include key {key!r}"
            )
        return f"{what} of zone {zone} from {endpoint.where} failed: {dns.rcode.to_text(rcode)}"
    if isinstance(error, dns.tsig.PeerError | dns.message.UnknownTSIGKey):
        return (
            f"{what} of zone {zone} on {endpoint.where}: the server rejected TSIG key {key!r} "
            f"({type(error).__name__}); check the key name, algorithm and secret agree with "
            "named.conf"
        )
    if isinstance(error, dns.tsig.BadSignature | dns.tsig.BadTime):
        return (
            f"{what} of zone {zone} on {endpoint.where}: the answer's TSIG signature does not "
            f"verify with key {key!r}; check the secret"
        )
    if isinstance(error, dns.exception.Timeout | TimeoutError):
        return (
            f"{what} of zone {zone}: DNS server {endpoint.where} did not answer within "
            f"{endpoint.timeout:g} s"
        )
    if isinstance(error, OSError):
        return unreachable(endpoint, zone, error)
    if isinstance(error, EOFError):
        return f"{what} of zone {zone}: DNS server {endpoint.where} closed the connection"
    return f"{what} of zone {zone} on {endpoint.where} failed: {type(error).__name__}: {error}"


def update_rcode_message(rcode: dns.rcode.Rcode, *, endpoint: Endpoint, zone: str) -> str:
    name = dns.rcode.to_text(rcode)
    hints = {
        dns.rcode.REFUSED: f"zone {zone} is not dynamic on that server (no allow-update or "
        f"update-policy), or key {endpoint.key.name!r} may not update it",
        dns.rcode.NOTAUTH: f"the server is not authoritative for zone {zone} (is the zone "
        "configured there?), or it rejected the TSIG key",
        dns.rcode.NOTZONE: f"a name in the update is not inside zone {zone}",
        dns.rcode.SERVFAIL: "the server failed to apply it; see its log",
    }
    hint = hints.get(rcode, "see the server's log")
    return f"update of zone {zone} on {endpoint.where} failed: {name}: {hint}"
