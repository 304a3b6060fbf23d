"""``POST /register``: the guarded door through which unknown machines enrol themselves.

Checks run cheapest first, and every outcome is written to the audit log with
the MAC the request claimed: a token bucket per source address and one for
everybody (so many addresses together cannot flood git either), a bounded
body that is a UTF-8 form or JSON object with a ``mac`` field, a MAC a network
card can have (not broadcast, multicast or zero), an open registration window
for the requester's subnet in the inventory being served (no git read), and
the kernel's neighbour entry for the requester, which must show that MAC. A
request without a neighbour entry (routed, or sent from the server itself) is
refused unless the group sets ``allow_routed``. A full disk refuses too. Only
then is the enrolment run, one at a time (an asyncio lock, and the branch head
read again inside), so concurrent requests never share an index.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from reconciler.model.types import check_station_mac, normalize_mac
from reconciler.server.audit import AuditLog, Decision
from reconciler.server.enrol import Enrolled, Enroller, Refused, open_groups_for
from reconciler.server.ratelimit import LogThrottle, RateLimiter
from reconciler.server.state import Compiled, CompiledInventory, NotReady
from reconciler.statelock import StateLock, StateLocked

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
NeighbourLookup = Callable[[str], Awaitable[str | None]]
RemoteOf = Callable[[web.Request], str | None]
EVERYONE = "*"  # the key of the global bucket
SHOWN_MAC = 64  # characters of a claimed MAC kept in the audit log
CLAIMED = web.RequestKey("claimed_mac", str)  # the MAC text the request claimed


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


def _decode(body: bytes, charset: str | None) -> str:
    """The body as text: UTF-8 (or ASCII) only; Refused 400 for anything else."""
    if charset is not None:
        try:
            name = codecs.lookup(charset).name
        except LookupError:
            name = ""
        if name not in ("utf-8", "ascii"):
            raise Refused(400, f"charset {charset[:40]!r} is not accepted; send UTF-8")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the request body is not valid UTF-8") from None


def parse_mac_field(body: bytes, content_type: str, charset: str | None) -> Any:
    """The ``mac`` value of a form or JSON object body (None without one); Refused if malformed."""
    if content_type not in (FORM, "application/json"):
        raise Refused(415, 'send the MAC as a form (mac=...) or as JSON ({"mac": "..."})')
    text = _decode(body, charset)
    if content_type == FORM:
        try:
            values = parse_qs(text, strict_parsing=bool(text), max_num_fields=16).get("mac")
        except ValueError:
            raise Refused(400, "the request body is not valid form data") from None
        return values[0] if values else None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, 'the JSON body must be an object such as {"mac": "..."}')
    return data.get("mac")


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
        global_limiter: RateLimiter | None = None,
        body_timeout: float = 30.0,
    ) -> None:
        self.enroller = enroller
        self.compiled = compiled
        self.audit = audit
        self.limiter = limiter
        self.global_limiter = global_limiter
        self.neighbour_mac = neighbour_mac
        self.remote_of = remote_of
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.allow_get = allow_get
        self.log_throttle = LogThrottle()
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
        try:
            mac = await self._checked_mac(request, remote)
            assert remote is not None
            routed = await self._check_origin(remote, mac)
            if self.enroller is None:
                raise Refused(503, "registration needs a git source: set [source] repo")
            if not self.audit.has_room():
                raise Refused(
                    503,
                    f"no space left for the audit log {self.audit.path}; registrations are "
                    "refused until space is freed",
                )
            async with self._lock:
                enrolled = await asyncio.to_thread(
                    self._enrol_locked, self.enroller, mac, remote, routed=routed
                )
        except Refused as refused:
            claimed = request.get(CLAIMED)
            self._record(Decision(False, refused.status, refused.reason, remote, claimed))
            headers = {}
            if refused.status == 429 and remote is not None:
                headers["Retry-After"] = str(max(1, round(self._retry_after(remote))))
            elif refused.retry_after is not None:
                headers["Retry-After"] = str(refused.retry_after)
            return web.json_response(
                {"error": refused.reason}, status=refused.status, headers=headers
            )
        body = enrolled.to_dict()
        reason = "enrolled" if enrolled.new else "already registered in this group"
        self._record(Decision(True, 200, reason, remote, mac, body))
        return web.json_response(body)

    def _enrol_locked(self, enroller: Enroller, mac: str, remote: str, *, routed: bool) -> Enrolled:
        """Enrol under the state dir's lock: one writer at a time (apply, watch, this).

        A registration pushed to a remote writes nothing apply or watch use (its
        work repository is serve's own, the remote's fast-forward check serialises
        writers), so it does not wait behind a long watch pass.
        """
        if self.state_lock is None or enroller.remote is not None:
            return enroller.enrol(mac, remote, routed=routed)
        try:
            self.state_lock.acquire()
        except StateLocked as error:
            raise Refused(503, f"busy, try again shortly: {error}") from None
        try:
            return enroller.enrol(mac, remote, routed=routed)
        finally:
            self.state_lock.release()

    def _retry_after(self, remote: str) -> float:
        wait = self.limiter.retry_after(remote)
        if self.global_limiter is not None:
            wait = max(wait, self.global_limiter.retry_after(EVERYONE))
        return wait

    def _record(self, decision: Decision) -> None:
        self.audit.record(decision)
        extra = {"remote": decision.remote, "mac": decision.mac, "reason": decision.reason}
        if decision.accepted:
            log.info("registration accepted", extra=extra)
            return
        # A flood repeats the same refusal: log the first few, then count them.
        shown, suppressed = self.log_throttle.allow(f"{decision.remote} {decision.status}")
        if shown:
            log.info("registration refused", extra={**extra, "suppressed": suppressed})

    async def _checked_mac(self, request: web.Request, remote: str | None) -> str:
        """The normalised MAC; Refused if not. The claim is kept in ``request[CLAIMED]``."""
        if remote is None or not isinstance(ipaddress.ip_address(remote), ipaddress.IPv4Address):
            raise Refused(403, f"cannot register from {remote!r}: only IPv4 peers can register")
        field: Any = None
        problem: Refused | None = None
        try:
            async with asyncio.timeout(self.body_timeout):
                field = await self._mac_field(request)
        except Refused as refused:
            problem = refused
        except TimeoutError:
            problem = Refused(
                408, f"the request body did not arrive within {self.body_timeout:g} s"
            )
        if isinstance(field, str):
            request[CLAIMED] = field[:SHOWN_MAC]
        if not self.limiter.allow(remote):
            raise Refused(429, f"too many registration requests from {remote}; slow down")
        if self.global_limiter is not None and not self.global_limiter.allow(EVERYONE):
            raise Refused(429, "too many registration requests from everyone together; slow down")
        if problem is not None:
            raise problem
        if field is None:
            raise Refused(400, "the request has no 'mac' field")
        if not isinstance(field, str):
            raise Refused(400, "the 'mac' field must be a string")
        try:
            return check_station_mac(normalize_mac(field))
        except ValueError as error:
            raise Refused(400, str(error)[:200]) from None

    async def _check_origin(self, remote: str, mac: str) -> bool:
        """Refuse what the served inventory or the neighbour table rule out; True if routed.

        The window check uses the accepted revision in memory (no git read);
        before any revision is accepted the enroller checks at the branch head.
        """
        try:
            current: Compiled | None = await self.compiled.current()
        except NotReady:
            current = None
        address = ipaddress.IPv4Address(remote)
        # A known MAC gets its answer from the enroller, window open or not.
        cheap = current is not None and mac not in current.state.hosts_by_mac
        if current is not None and cheap:
            open_groups_for(current.inventory, address, routed=False)
        seen = await self.neighbour_mac(remote)
        if seen is not None and seen != mac:
            raise Refused(403, f"MAC {mac} does not match the neighbour entry of {remote} ({seen})")
        routed = seen is None
        if current is not None and cheap and routed:
            open_groups_for(current.inventory, address, routed=True)
        return routed

    async def _mac_field(self, request: web.Request) -> Any:
        max_size = self.max_body_bytes
        if request.method == "GET":
            if request.can_read_body:
                raise Refused(400, "GET /register takes the MAC in the query, not a body")
            return request.query.get("mac")
        if request.content_length is not None and request.content_length > max_size:
            raise Refused(413, f"request body larger than {max_size} bytes")
        if request.content_type == MULTIPART:
            try:
                form = await request.post()
            except Exception:  # aiohttp's parser raises many kinds on garbage
                raise Refused(400, "the request body is not valid multipart form data") from None
            return form.get("mac")
        body = b""
        while len(body) <= max_size:
            chunk = await request.content.read(max_size + 1 - len(body))
            if not chunk:
                return parse_mac_field(body, request.content_type, request.charset)
            body += chunk
        raise Refused(413, f"request body larger than {max_size} bytes")
