"""Our OMAPI encoding is byte for byte what pypureomapi (the reference) sends and reads."""

from __future__ import annotations

import pypureomapi as omapi
import pytest

from reconciler.targets.omapi_client import OmapiSession
from reconciler.targets.omapi_wire import OP_UPDATE, Signer, WireError

SECRET = b"cmVjb25jaWxlci10ZXN0LWtleS0wMTIzNDU2Nzg5YWI="


def reference() -> omapi.OmapiHMACMD5Authenticator:
    authenticator = omapi.OmapiHMACMD5Authenticator(b"omapi_key", SECRET)
    authenticator.authid = 7
    return authenticator


def signer() -> Signer:
    return Signer(authid=7, secret=reference().key)


def test_a_create_request_is_what_pypureomapi_would_send() -> None:
    request = OmapiSession.create_host(
        name="node001", mac="52:54:00:00:00:01", ip="10.0.0.1", statements='filename "x";'
    )
    ours = signer().encode(request, tid=12345)
    message = omapi.OmapiMessage(
        opcode=request.opcode, tid=12345, message=list(request.message), obj=list(request.obj)
    )
    message.sign(reference())
    assert ours == message.as_string()


def answer(handle: int, rid: int, *, authenticator: omapi.OmapiAuthenticatorBase) -> bytes:
    message = omapi.OmapiMessage(
        opcode=OP_UPDATE, handle=handle, tid=99, rid=rid, obj=[(b"name", b"node001")]
    )
    message.sign(authenticator)
    wire: bytes = message.as_string()
    return wire


def test_answers_are_cut_out_of_the_stream_as_they_complete() -> None:
    wire = answer(5, 1, authenticator=reference()) + answer(6, 2, authenticator=reference())
    received = bytearray(wire[:30])
    assert signer().decode(received) == [] and len(received) == 30  # half an answer waits
    received += wire[30:]
    answers = signer().decode(received)
    assert [(a.handle, a.rid, a.obj[b"name"]) for a in answers] == [
        (5, 1, b"node001"),
        (6, 2, b"node001"),
    ]
    assert received == bytearray()


def test_an_answer_signed_otherwise_is_refused() -> None:
    other = omapi.OmapiHMACMD5Authenticator(
        b"omapi_key", b"b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXk="
    )
    other.authid = 7
    with pytest.raises(WireError, match="signature"):
        signer().decode(bytearray(answer(5, 1, authenticator=other)))
    unsigned = omapi.OmapiMessage(opcode=OP_UPDATE, rid=1).as_string()  # dhcpd's "who are you"
    with pytest.raises(WireError, match="authenticator"):
        signer().decode(bytearray(unsigned))
