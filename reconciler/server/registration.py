"""``POST /register``: the guarded door through which unknown machines enrol themselves.

Checks run cheapest first, and every outcome is written to the audit log:
a token bucket per source address, a bounded body that is a form or JSON with
a ``mac`` field, a MAC that parses, and the kernel's neighbour entry for the
requester, which must show that MAC when there is one. Only then is the
enrolment run, one at a time (an asyncio lock, and the branch head read again
inside), so concurrent requests never share an index.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.model.types import normalize_mac
from reconciler.server.audit import AuditLog, Decision
from reconciler.server.enrol import Enrolled, Enroller, Refused
from reconciler.server.ratelimit import RateLimiter
from reconciler.server.state import CompiledInventory
from reconciler.statelock import StateLock, StateLocked

log = logging.getLogger(__name__)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NeighbourLookup = Callable[[str], Awaitable[str | None]]
RemoteOf = Callable[[web.Request], str | None]


def request_remote(request: web.Request) -> str | None:
    """The peer address of the connection (never a header a client could forge)."""
    return request.remote


def plain_ipv4(remote: str | None) -> str | None:
    """``::ffff:10.0.0.5`` -> ``10.0.0.5``; other addresses as they are; None if unparsable."""
    if remote is None:
        return None
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class RegistrationHandler:
    """Holds the guards and the enroller; ``handle`` is the aiohttp handler."""

    def __init__(
        self,
        *,
        enroller: Enroller | None,
        compiled: CompiledInventory,
        audit: AuditLog,
        limiter: RateLimiter,
        neighbour_mac: NeighbourLookup,
        max_body_bytes: int,
        allow_get: bool = True,
        remote_of: RemoteOf = request_remote,
        state_lock: StateLock | None = None,
    ) -> None:
        self.enroller = enroller
        self.compiled = compiled
        self.audit = audit
        self.limiter = limiter
        self.neighbour_mac = neighbour_mac
        self.remote_of = remote_of
        self.max_body_bytes = max_body_bytes
        self.allow_get = allow_get
        self._lock = asyncio.Lock()
        self.state_lock = state_lock

    def routes(self) -> list[web.RouteDef]:
        routes = [web.post("/register", self.handle)]
        if self.allow_get:
            # iPXE builds without PARAM_CMD (Debian's among them) cannot POST: they ask
            # GET /register?mac=..., under exactly the same guards.
            routes.append(web.get("/register", self.handle, allow_head=False))
        return routes

    async def handle(self, request: web.Request) -> web.Response:
        remote = plain_ipv4(self.remote_of(request))
        mac: str | None = None
        try:
            mac = await self._checked_mac(request, remote)
            assert remote is not None
            if self.enroller is None:
                raise Refused(503, "registration needs a git source: set [source] repo")
            async with self._lock:
                enrolled = await asyncio.to_thread(self._enrol_locked, self.enroller, mac, remote)
        except Refused as refused:
            self._record(Decision(False, refused.status, refused.reason, remote, mac))
            headers = {}
            if refused.status == 429 and remote is not None:
                headers["Retry-After"] = str(max(1, round(self.limiter.retry_after(remote))))
            return web.json_response(
                {"error": refused.reason}, status=refused.status, headers=headers
            )
        body = enrolled.to_dict()
        reason = "enrolled" if enrolled.new else "already registered in this group"
        self._record(Decision(True, 200, reason, remote, mac, body))
        return web.json_response(body)

    def _enrol_locked(self, enroller: Enroller, mac: str, remote: str) -> Enrolled:
        """Enrol under the state dir's lock: one writer at a time (apply, watch, this)."""
        if self.state_lock is None:
            return enroller.enrol(mac, remote)
        try:
            self.state_lock.acquire()
        except StateLocked as error:
            raise Refused(503, f"busy, try again shortly: {error}") from None
        try:
            return enroller.enrol(mac, remote)
        finally:
            self.state_lock.release()

    def _record(self, decision: Decision) -> None:
        self.audit.record(decision)
        log.info(
            "registration " + ("accepted" if decision.accepted else "refused"),
            extra={"remote": decision.remote, "mac": decision.mac, "reason": decision.reason},
        )

    async def _checked_mac(self, request: web.Request, remote: str | None) -> str:
        if remote is None or not isinstance(ipaddress.ip_address(remote), ipaddress.IPv4Address):
            raise Refused(403, f"cannot register from {remote!r}: only IPv4 peers can register")
        if not self.limiter.allow(remote):
            raise Refused(429, f"too many registration requests from {remote}; slow down")
        text = await self._mac_field(request)
        if text is None:
            raise Refused(400, "the request has no 'mac' field")
        if not isinstance(text, str):
            raise Refused(400, "the 'mac' field must be a string")
        try:
            mac = normalize_mac(text)
        except ValueError as error:
            raise Refused(400, str(error)) from None
        seen = await self.neighbour_mac(remote)
        if seen is not None and seen != mac:
            raise Refused(403, f"MAC {mac} does not match the neighbour entry of {remote} ({seen})")
        return mac

    async def _mac_field(self, request: web.Request) -> Any:
        max_size = self.max_body_bytes
        if request.method == "GET":
            if request.can_read_body:
                raise Refused(400, "GET /register takes the MAC in the query, not a body")
            return request.query.get("mac")
        if request.content_length is not None and request.content_length > max_size:
            raise Refused(413, f"request body larger than {max_size} bytes")
        try:
            if request.content_type in FORM_TYPES:
                form = await request.post()
                value: Any = form.get("mac")
            elif request.content_type == "application/json":
                data = json.loads(await request.text())
                value = data.get("mac") if isinstance(data, dict) else None
            else:
                raise Refused(415, 'send the MAC as a form (mac=...) or as JSON ({"mac": "..."})')
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, f"request body larger than {max_size} bytes") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise Refused(400, "the request body is not valid form data or JSON") from None
        return value
