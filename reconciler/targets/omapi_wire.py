"""OMAPI messages to and from bytes, signed and checked with HMAC-MD5, without pypureomapi's cost.

An initial sync of 10,000 hosts is 10,000 create messages and as many answers.
pypureomapi builds each message through a byte-at-a-time buffer, serialises it
twice (once to sign, once to send), reads the socket 2 KiB at a time and
parses the answers with a generator chain, then serialises each answer again
to check its signature: about 200 µs of Python per message, more than dhcpd
needs to handle it. Here a request is one ``struct.pack`` and one HMAC, and an
answer is sliced out of the received bytes and its signature checked over
those very bytes (RFC-less, as dhcpd's omapip/protocol.c lays them out:
authid, authlen, opcode, handle, id, rid, message pairs, object pairs, each
pair list ended by a zero key length, then the signature).

pypureomapi still opens the connection and negotiates the key; this module
only takes over the messages after that.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

OP_OPEN, OP_REFRESH, OP_UPDATE, OP_NOTIFY, OP_STATUS, OP_DELETE = 1, 2, 3, 4, 5, 6
_HEADER = struct.Struct("!IIIIII")  # authid, authlen, opcode, handle, tid, rid
_KEY_LEN = struct.Struct("!H")
_VALUE_LEN = struct.Struct("!I")
_END = b"\x00\x00"


class WireError(Exception):
    """An answer that is not a well-formed, correctly signed OMAPI message."""


@dataclass(frozen=True, slots=True)
class Request:
    """One OMAPI request: an open (lookup or create) or a delete."""

    opcode: int
    message: tuple[tuple[bytes, bytes], ...] = ()
    obj: tuple[tuple[bytes, bytes], ...] = ()
    handle: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """dhcpd's answer to the request whose tid is ``rid``."""

    opcode: int
    handle: int
    rid: int
    message: dict[bytes, bytes]
    obj: dict[bytes, bytes]


def _pairs(items: tuple[tuple[bytes, bytes], ...]) -> bytes:
    return (
        b"".join(
            _KEY_LEN.pack(len(key)) + key + _VALUE_LEN.pack(len(value)) + value
            for key, value in items
        )
        + _END
    )


class Signer:
    """Encodes requests and decodes answers for one authenticated connection."""

    def __init__(self, *, authid: int, secret: bytes) -> None:
        self.authid = authid
        self._secret = secret
        self._authlen = hashlib.md5().digest_size

    def _sign(self, body: bytes) -> bytes:
        return hmac.digest(self._secret, body, "md5")

    def encode(self, request: Request, *, tid: int) -> bytes:
        body = (
            _HEADER.pack(self.authid, self._authlen, request.opcode, request.handle, tid, 0)[4:]
            + _pairs(request.message)
            + _pairs(request.obj)
        )
        return _VALUE_LEN.pack(self.authid) + body + self._sign(body)

    def decode(self, buffer: bytearray) -> list[Answer]:
        """The complete answers at the start of ``buffer``, removed from it."""
        answers: list[Answer] = []
        offset = 0
        while True:
            parsed = self._one(buffer, offset)
            if parsed is None:
                break
            answer, offset = parsed
            answers.append(answer)
        del buffer[:offset]
        return answers

    def _one(self, data: bytearray, start: int) -> tuple[Answer, int] | None:
        if len(data) - start < _HEADER.size:
            return None
        authid, authlen, opcode, handle, _tid, rid = _HEADER.unpack_from(data, start)
        offset = start + _HEADER.size
        message, offset_or_none = _read_pairs(data, offset)
        if offset_or_none is None:
            return None
        obj, end = _read_pairs(data, offset_or_none)
        if end is None or len(data) < end + authlen:
            return None
        signature = bytes(data[end : end + authlen])
        if authid != self.authid or authlen != self._authlen:
            raise WireError(f"answer signed with authenticator {authid}, not ours")
        if not hmac.compare_digest(self._sign(bytes(data[start + 4 : end])), signature):
            raise WireError("answer signature does not verify")
        return Answer(opcode, handle, rid, message, obj), end + authlen


def _read_pairs(data: bytearray, offset: int) -> tuple[dict[bytes, bytes], int | None]:
    pairs: dict[bytes, bytes] = {}
    size = len(data)
    while True:
        if size < offset + 2:
            return pairs, None
        (key_len,) = _KEY_LEN.unpack_from(data, offset)
        offset += 2
        if key_len == 0:
            return pairs, offset
        if size < offset + key_len + 4:
            return pairs, None
        key = bytes(data[offset : offset + key_len])
        offset += key_len
        (value_len,) = _VALUE_LEN.unpack_from(data, offset)
        offset += 4
        if size < offset + value_len:
            return pairs, None
        pairs[key] = bytes(data[offset : offset + value_len])
        offset += value_len
