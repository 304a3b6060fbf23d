"""``POST /nodes/<host>/report``: a node agent says what runs, under the registration guard.

A report moves rollouts forward (a healthy node lets the next wave go), so
only the node itself may send it: the request must come from the host's own
address in the accepted revision, and the kernel's neighbour table must show
the host's MAC behind that address (a request from another machine, from
behind a router or from loopback has no such entry and is refused). Checks run
cheapest first: a token bucket per source address, the address, the
neighbour entry, then the bounded body and its format. The report is kept
(``nodereports.ReportStore``) with the time it arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from reconciler.resources import DhcpHost
from reconciler.server.nodereports import ReportError, ReportStore, normalize_report
from reconciler.server.ratelimit import LogThrottle, RateLimiter
from reconciler.server.registration import NeighbourLookup, RemoteOf, plain_ipv4, request_remote
from reconciler.server.state import Compiled, CompiledInventory, NotReady

log = logging.getLogger(__name__)


class ReportRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ReportHandler:
    """Holds the guards and the store; ``handle`` is the aiohttp handler."""

    def __init__(
        self,
        *,
        compiled: CompiledInventory,
        store: ReportStore,
        limiter: RateLimiter,
        neighbour_mac: NeighbourLookup,
        max_body_bytes: int,
        body_timeout: float = 30.0,
        remote_of: RemoteOf = request_remote,
    ) -> None:
        self.compiled = compiled
        self.store = store
        self.limiter = limiter
        self.neighbour_mac = neighbour_mac
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.remote_of = remote_of
        self.log_throttle = LogThrottle()
        self._hosts: tuple[str, dict[str, DhcpHost]] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/nodes/{host}/report", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        host = request.match_info["host"]
        remote = plain_ipv4(self.remote_of(request))
        try:
            await self._guard(host, remote)
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await self._body(request)
            except TimeoutError:
                raise ReportRefused(
                    408, f"the report did not arrive within {self.body_timeout:g} s"
                ) from None
            report = normalize_report(host, body)
        except ReportRefused as refused:
            shown, suppressed = self.log_throttle.allow(f"{remote} {refused.status}")
            if shown:  # a flood repeats one refusal: the first few lines, then a count
                log.warning("node report refused", extra={"host": host, "remote": remote,
                            "reason": refused.reason, "suppressed": suppressed})  # fmt: skip
            headers = {}
            if refused.status == 429 and remote is not None:
                headers["Retry-After"] = str(max(1, round(self.limiter.retry_after(remote))))
            return web.json_response(
                {"error": refused.reason}, status=refused.status, headers=headers
            )
        except ReportError as error:
            return web.json_response({"error": f"report of {host}: {error}"}, status=400)
        report["received_at"] = round(time.time(), 3)
        report["remote"] = remote
        self.store.save(report)
        log.info("node report", extra={"host": host, "state": report["state"],
                                       "version": report["version"]})  # fmt: skip
        return web.json_response({"stored": True})

    def _host(self, current: Compiled, hostname: str) -> DhcpHost | None:
        if self._hosts is None or self._hosts[0] != current.revision:
            self._hosts = (current.revision, {h.hostname: h for h in current.state.dhcp_hosts})
        return self._hosts[1].get(hostname)

    async def _guard(self, hostname: str, remote: str | None) -> None:
        if remote is None:
            raise ReportRefused(403, "the peer address is unknown")
        if not self.limiter.allow(remote):
            raise ReportRefused(429, f"too many reports from {remote}; slow down")
        try:
            current = await self.compiled.current()
        except NotReady as error:
            raise ReportRefused(503, str(error)) from None
        host = self._host(current, hostname)
        if host is None:
            raise ReportRefused(404, f"{hostname!r} is not a host of the accepted revision")
        if remote != host.ip:
            raise ReportRefused(
                403, f"reports for {hostname} are accepted from {host.ip} only, not {remote}"
            )
        seen = await self.neighbour_mac(remote)
        if seen is None:
            raise ReportRefused(
                403, f"no neighbour entry for {remote}: a report must come from the node's own link"
            )
        if seen != host.mac:
            raise ReportRefused(
                403, f"the neighbour entry of {remote} is {seen}, not {hostname}'s MAC {host.mac}"
            )

    async def _body(self, request: web.Request) -> Any:
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ReportRefused(413, f"report larger than {limit} bytes")
        if request.content_type != "application/json":
            raise ReportRefused(415, "send the report as application/json")
        raw = b""
        while len(raw) <= limit:
            chunk = await request.content.read(limit + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
        if len(raw) > limit:
            raise ReportRefused(413, f"report larger than {limit} bytes")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ReportRefused(400, "the report is not valid JSON") from None
