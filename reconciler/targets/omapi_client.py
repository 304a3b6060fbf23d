"""A pipelined OMAPI session on top of pypureomapi, with errors a user can act on.

pypureomapi does one round trip per call and raises bare socket errors or
terse ``OmapiError``s. The DHCP OMAPI backend needs three things more: many
requests in flight on one connection (dhcpd answers them in order, so a sync
of thousands of hosts is not bound by latency), host objects with a name and
statements, and failures turned into one exception type whose message says
what to check and never contains the key. pypureomapi opens the connection
and negotiates the key; the messages after that are encoded and checked by
``omapi_wire``, at a fraction of pypureomapi's cost per message.
"""

from __future__ import annotations

import binascii
import itertools
import os
import socket
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pypureomapi as omapi

from reconciler.targets.omapi_wire import (
    OP_DELETE,
    OP_OPEN,
    OP_UPDATE,
    Answer,
    Request,
    Signer,
    WireError,
)

# Requests in flight on one connection. dhcpd 4.4.3 aborts (dst_api.c REQUIRE on
# its signing context) with 40 signed lookups in flight; 32 held in stress runs,
# 16 keeps a margin and already gets most of the gain (~10,000 lookups/s).
WINDOW = 16
_HW_ETHERNET = struct.pack("!I", 1)
_TRUE = struct.pack("!I", 1)
_HOST = ((b"type", b"host"),)
_CREATE_HOST = (*_HOST, (b"create", _TRUE), (b"exclusive", _TRUE))


class OmapiFailure(Exception):
    """Talking to dhcpd over OMAPI failed; the message says why, without the key."""

    unreachable = False  # nothing listens: dhcpd is not running (yet)


class OmapiUnreachable(OmapiFailure):
    """No connection at all: dhcpd is not running, or not with omapi-port."""

    unreachable = True


@dataclass(frozen=True, slots=True)
class OmapiHost:
    """A host object as dhcpd reports it over OMAPI (statements are not readable)."""

    name: str
    mac: str
    ip: str


@dataclass(frozen=True, slots=True)
class Reply:
    """dhcpd's answer to one request: ok, the object's handle, or why it refused."""

    ok: bool
    handle: int
    obj: dict[bytes, bytes]
    message: str = ""


# ISC result codes dhcpd answers with, where its own text is too terse.
_RESULTS = {18: "a host with this name or MAC already exists", 23: "not found"}


def _status(info: dict[bytes, bytes]) -> tuple[int, str]:
    text = info.get(b"message", b"").decode(errors="replace")
    code = struct.unpack("!I", info[b"result"])[0] if len(info.get(b"result", b"")) == 4 else -1
    explained = f"; {_RESULTS[code]}" if code in _RESULTS else ""
    return code, f"{text or 'refused'}{explained} (result {code})"


class OmapiSession:
    """One authenticated OMAPI connection to dhcpd."""

    def __init__(
        self, *, host: str, port: int, key_name: str, secret: str, timeout: float = 10.0
    ) -> None:
        self.where = f"{host}:{port}"
        self.key_name = key_name
        self.answered = 0  # requests answered on this connection
        self._signer: Signer | None = None
        self._tid = int.from_bytes(os.urandom(4), "big")
        try:
            self._conn = omapi.Omapi(
                host, port, key_name.encode(), secret.encode(), timeout=timeout
            )
        except (binascii.Error, ValueError):
            raise OmapiFailure("the OMAPI key secret is not valid base64") from None
        except omapi.OmapiError as error:
            raise OmapiFailure(
                f"dhcpd at {self.where} refused the OMAPI key {key_name!r} ({error}); check "
                "the key name and secret against dhcpd.conf's key and omapi-key"
            ) from None
        except TimeoutError:
            raise OmapiFailure(f"dhcpd at {self.where} did not answer within {timeout}s") from None
        except OSError as error:
            raise OmapiUnreachable(
                f"cannot reach dhcpd's OMAPI at {self.where} ({error.strerror or error}); "
                "is dhcpd running with omapi-port set?"
            ) from None

    def _explain(self, error: Exception) -> str:
        text = str(error)
        if "authenticator" in text or "signature" in text:
            # dhcpd accepts any key at open and answers unsigned once it cannot verify.
            return (
                f"dhcpd at {self.where} rejected requests signed with the OMAPI key "
                f"{self.key_name!r}; check the key name and secret against dhcpd.conf"
            )
        return f"OMAPI conversation with {self.where} failed: {text}"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> OmapiSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wire(self) -> tuple[socket.socket, Signer]:
        """The authenticated socket and a signer for our messages on it."""
        if self._signer is None:
            protocol = self._conn.protocol
            authenticator = protocol.authenticators[protocol.defauth]
            self._signer = Signer(authid=protocol.defauth, secret=authenticator.key)
        sock = self._conn.transport.connection if self._conn.transport else None
        if sock is None:
            raise OmapiFailure(f"the OMAPI connection to {self.where} is closed")
        return sock, self._signer

    def pipeline(self, requests: Iterable[Request]) -> Iterator[Reply]:
        """Send requests with up to WINDOW in flight; yield the replies in order.

        Requests go out in batches (one write for as many as the window has
        room for) and answers are read as they arrive, so neither side waits
        for the other's round trip."""
        sock, signer = self._wire()
        waiting: deque[int] = deque()  # tids sent and not answered, oldest first
        answers: deque[Answer] = deque()
        received = bytearray()
        pending = iter(requests)
        more = True
        try:
            while True:
                if more and not answers and len(waiting) < WINDOW:
                    room = WINDOW - len(waiting)
                    batch: list[bytes] = []
                    for request in itertools.islice(pending, room):
                        self._tid = (self._tid + 1) & 0xFFFFFFFF
                        batch.append(signer.encode(request, tid=self._tid))
                        waiting.append(self._tid)
                    more = len(batch) == room
                    if batch:
                        sock.sendall(b"".join(batch))
                if not waiting:
                    return
                while not answers:
                    data = sock.recv(1 << 16)
                    if not data:
                        raise OSError("dhcpd closed the connection")
                    received += data
                    answers.extend(signer.decode(received))
                answer, tid = answers.popleft(), waiting.popleft()
                if answer.rid != tid:
                    raise WireError(f"answer to request {answer.rid} where {tid} was due")
                self.answered += 1
                yield self._reply(answer)
        except WireError as error:
            raise OmapiFailure(self._explain(error)) from None
        except TimeoutError:
            raise OmapiFailure(
                f"dhcpd at {self.where} stopped answering ({self.answered} requests answered "
                "on this connection, dhcpd keeps those); run again once it answers"
            ) from None
        except OSError as error:
            raise OmapiFailure(
                f"lost the OMAPI connection to {self.where}: {error.strerror or error} "
                f"({self.answered} requests answered on it; dhcpd keeps those, run again for "
                "the rest)"
            ) from None

    @staticmethod
    def _reply(answer: Answer) -> Reply:
        if answer.opcode == OP_UPDATE:
            return Reply(True, answer.handle, answer.obj)
        code, message = _status(answer.message)
        return Reply(code == 0, 0, {}, message)  # a status of 0 is success (delete)

    # --- message builders -------------------------------------------------

    @staticmethod
    def open_host(*, name: str | None = None, mac: str | None = None) -> Request:
        obj: list[tuple[bytes, bytes]] = []
        if name is not None:
            obj.append((b"name", name.encode()))
        if mac is not None:
            obj.append((b"hardware-address", omapi.pack_mac(mac)))
            obj.append((b"hardware-type", _HW_ETHERNET))
        return Request(OP_OPEN, message=_HOST, obj=tuple(obj))

    @staticmethod
    def create_host(*, name: str, mac: str, ip: str, statements: str) -> Request:
        return Request(
            OP_OPEN,
            message=_CREATE_HOST,
            obj=(
                (b"name", name.encode()),
                (b"hardware-address", omapi.pack_mac(mac)),
                (b"hardware-type", _HW_ETHERNET),
                (b"ip-address", omapi.pack_ip(ip)),
                (b"statements", statements.encode()),
            ),
        )

    @staticmethod
    def delete(handle: int) -> Request:
        return Request(OP_DELETE, handle=handle)

    # --- reading ------------------------------------------------------------

    @staticmethod
    def host_of(reply: Reply) -> OmapiHost | None:
        if not reply.ok or not reply.obj:
            return None
        raw = reply.obj
        try:
            ip = omapi.unpack_ip(raw[b"ip-address"]) if b"ip-address" in raw else ""
            mac = omapi.unpack_mac(raw[b"hardware-address"]) if b"hardware-address" in raw else ""
        except ValueError:
            ip = mac = ""
        return OmapiHost(name=raw.get(b"name", b"").decode(errors="replace"), mac=mac, ip=ip)

    def lookup_hosts_by_name(self, names: list[str]) -> dict[str, OmapiHost]:
        replies = self.pipeline(self.open_host(name=n) for n in names)
        found = {name: self.host_of(reply) for name, reply in zip(names, replies, strict=True)}
        return {name: host for name, host in found.items() if host is not None}

    def lookup_hosts_by_mac(self, macs: list[str]) -> dict[str, OmapiHost]:
        replies = self.pipeline(self.open_host(mac=m) for m in macs)
        found = {mac: self.host_of(reply) for mac, reply in zip(macs, replies, strict=True)}
        return {mac: host for mac, host in found.items() if host is not None}
