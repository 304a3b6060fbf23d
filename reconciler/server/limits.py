"""Connection limits for ``reconciler serve``: caps in total and per address, a header deadline.

Every machine of the site boots from this service, so no client may starve
the others: a client that opens connections without end is cut off at
``max_connections_per_address`` (a whole flood at ``max_connections``), and a
connection that has not sent a complete request head within
``header_timeout`` is closed (a slow-loris client holds nothing for long).
Idle keep-alive connections close after ``keepalive_timeout`` (aiohttp counts
a connection dribbling bytes of its next request as idle, so this also bounds
a slow head after the first request); request bodies are read under
``body_timeout`` by the handlers that read them.

aiohttp's low-level ``web.Server`` is the protocol factory of every
connection; ``ConnectionGuard`` hooks into its ``connection_made``,
``connection_lost`` and ``request_factory`` to count connections and
requests. ``run_guarded`` runs an app with the guard, as ``web.run_app``
would without it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from reconciler.server.ratelimit import LogThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 1024
    max_per_address: int = 64
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0


class ConnectionGuard:
    """Counts the connections of one ``web.Server`` and closes those over a limit."""

    def __init__(self, server: web.Server, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.refused = 0
        self.timed_out = 0
        self._per_address: Counter[str] = Counter()
        self._address_of: dict[RequestHandler, str] = {}
        self._requests: dict[RequestHandler, int] = {}
        self._throttle = LogThrottle()
        self._made = server.connection_made
        self._lost = server.connection_lost
        self._factory = server.request_factory
        # The server's own hooks, wrapped: instance attributes shadow its methods.
        server.connection_made = self.connection_made  # type: ignore[method-assign]
        server.connection_lost = self.connection_lost  # type: ignore[method-assign]
        server.request_factory = self.request_factory

    @property
    def open_connections(self) -> int:
        return len(self._address_of)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        if self.open_connections >= self.limits.max_connections:
            self._refuse(transport, address, "too many connections in total")
            return
        if self._per_address[address] >= self.limits.max_per_address:
            self._refuse(transport, address, "too many connections from this address")
            return
        self._per_address[address] += 1
        self._address_of[handler] = address
        self._requests[handler] = 0
        loop = asyncio.get_running_loop()
        loop.call_later(self.limits.header_timeout, self._expire, handler, transport)

    def _refuse(self, transport: asyncio.Transport, address: str, why: str) -> None:
        self.refused += 1
        transport.close()
        shown, suppressed = self._throttle.allow(f"{address} {why}")
        if shown:
            log.warning(
                "connection refused",
                extra={"remote": address, "reason": why, "suppressed": suppressed},
            )

    def _expire(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        """Close a connection that has not begun a request within the header deadline."""
        if self._requests.get(handler) == 0 and not transport.is_closing():
            self.timed_out += 1
            transport.close()
            shown, suppressed = self._throttle.allow(f"{self._address_of.get(handler)} slow")
            if shown:
                log.warning(
                    "connection closed: no request head in time",
                    extra={
                        "remote": self._address_of.get(handler),
                        "seconds": self.limits.header_timeout,
                        "suppressed": suppressed,
                    },
                )

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        address = self._address_of.pop(handler, None)
        if address is not None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]
        self._requests.pop(handler, None)
        self._lost(handler, exc)

    def request_factory(self, message: Any, payload: Any, protocol: Any, *args: Any) -> Any:
        if protocol in self._requests:
            self._requests[protocol] += 1
        return self._factory(message, payload, protocol, *args)


async def start_guarded(
    app: web.Application,
    *,
    host: str,
    port: int,
    limits: ConnectionLimits,
    **runner_options: Any,
) -> tuple[web.AppRunner, ConnectionGuard, int]:
    """Set up ``app`` on ``host:port`` behind a guard; the runner, the guard and the port."""
    runner = web.AppRunner(app, keepalive_timeout=limits.keepalive_timeout, **runner_options)
    await runner.setup()
    assert runner.server is not None
    guard = ConnectionGuard(runner.server, limits)
    site = web.TCPSite(runner, host, port, backlog=min(1024, limits.max_connections))
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return runner, guard, bound


def run_guarded(
    app: web.Application, *, host: str, port: int, limits: ConnectionLimits, **options: Any
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly (``web.run_app`` with a guard)."""

    async def main() -> None:
        runner, _, _ = await start_guarded(app, host=host, port=port, limits=limits, **options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
