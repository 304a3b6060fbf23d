"""HTTP helpers of the watch loop: status, metrics and webhooks, for any aiohttp app.

``status_routes`` answers ``/status`` from ``status.json`` (so a separate
``reconciler serve`` process can mount it too) and ``/metrics`` from the loop's
registry. ``reconciler watch --listen HOST:PORT`` runs them, with the webhook
routes, in a thread beside the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from reconciler.server.limits import ConnectionLimits, start_guarded
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.status import StatusStore
from reconciler.watch.webhooks import webhook_routes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_handler(store: StatusStore) -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        status = store.load()
        ready = status.condition("Ready")
        code = 200 if ready is not None and ready.status else 503
        return web.json_response(status.to_dict(), status=code)

    return handle


def metrics_handler(metrics: WatchMetrics) -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        body, content_type = metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    return handle


def status_routes(store: StatusStore, metrics: WatchMetrics | None = None) -> list[web.RouteDef]:
    routes = [web.get("/status", status_handler(store))]
    if metrics is not None:
        routes.append(web.get("/metrics", metrics_handler(metrics)))
    return routes


class BackgroundServer:
    """An aiohttp app on its own event loop in a daemon thread; ``stop`` shuts it down."""

    def __init__(
        self,
        routes: list[web.RouteDef],
        *,
        host: str,
        port: int,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.app = web.Application()
        self.app.add_routes(routes)
        self.host, self.port = host, port
        self.limits = limits or ConnectionLimits()  # the same caps as serve's defaults
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._runner, _, self.port = self._loop.run_until_complete(
            start_guarded(
                self.app,
                host=self.host,
                port=self.port,
                limits=self.limits,
                access_log=None,
                # Stopping must not wait long for a client still sending (a refused body).
                shutdown_timeout=5,
            )
        )
        self._thread.start()

    def stop(self) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            future.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def watch_routes(
    *,
    store: StatusStore,
    metrics: WatchMetrics,
    trigger: Callable[[str], None],
    secret: bytes | None,
) -> list[web.RouteDef]:
    routes = status_routes(store, metrics)
    if secret:
        routes += webhook_routes(trigger, secret)
    return routes
