"""``GET /nodes/<host>.json``: each node's assignment, with ETags and long polling.

Every node agent asks for its assignment again and again, so an unchanged one
must cost almost nothing: the answer carries an ``ETag`` (a digest of the
body), and a request with ``If-None-Match`` and ``?wait=SECONDS`` is held
until the assignment changes or the time is up (then ``304``). Held requests
do not poll: they all wait on one ``asyncio.Event`` that is replaced and set
when another revision is accepted, and one task (running only while somebody
waits) checks the accepted revision every ``refresh_seconds``. Bodies and
ETags are computed once per host and revision. When serve stops, held
requests answer at once instead of delaying the shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

from aiohttp import web

from reconciler.server.state import Compiled, CompiledInventory, NotReady

MAX_WAIT_SECONDS = 60.0
ABSENT_ETAG = '"absent"'  # a host without an assignment: long polls until it gets one


class RevisionSignal:
    """One event per accepted revision: set (and replaced) when the revision changes."""

    def __init__(self, compiled: CompiledInventory, *, interval: float) -> None:
        self.compiled = compiled
        self.interval = max(interval, 0.05)
        self.revision: str | None = None
        self.latest: Compiled | None = None  # what woken requests answer from
        self.waiters = 0
        self.closing = False
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def observe(self, current: Compiled) -> None:
        """Note the revision a request saw; a new one wakes every waiting request."""
        if current.key != self.revision:
            self.revision, self.latest = current.key, current
            event, self._event = self._event, asyncio.Event()
            event.set()

    async def wait(self, timeout: float) -> None:
        """Return when the revision changes or ``timeout`` seconds passed."""
        event = self._event
        self.waiters += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="revision-signal")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            self.waiters -= 1

    async def _watch(self) -> None:
        """The one loop behind all waiting requests; ends when nobody waits."""
        while self.waiters > 0:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(NotReady):
                self.observe(await self.compiled.current())

    def release_all(self) -> None:
        """The service is stopping: every held request answers now (304), none waits out."""
        self.closing = True
        self._event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class AssignmentCache:
    """Body and ETag per host for one revision (rebuilt lazily when the revision changes)."""

    def __init__(self) -> None:
        self.revision: str | None = None
        self.answers: dict[str, tuple[bytes, str]] = {}

    def answer(self, current: Compiled, host: str) -> tuple[bytes, str] | None:
        if current.key != self.revision:
            self.revision, self.answers = current.key, {}
        found = self.answers.get(host)
        if found is None:
            node = current.nodes.get(host)
            if node is None:
                return None
            body = json.dumps(node.to_dict(), sort_keys=True, separators=(",", ":")).encode()
            found = (body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
            self.answers[host] = found
        return found


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _wait_seconds(request: web.Request) -> float:
    text = request.query.get("wait")
    if text is None:
        return 0.0
    try:
        wait = float(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"wait={text!r}: give seconds, such as wait=55\n") from None
    if not 0 <= wait < float("inf"):
        raise web.HTTPBadRequest(text=f"wait={text!r}: give seconds, such as wait=55\n")
    return min(wait, MAX_WAIT_SECONDS)


class NodeHandlers:
    """The aiohttp handler of ``/nodes/<host>.json``."""

    def __init__(self, compiled: CompiledInventory, *, refresh_seconds: float) -> None:
        self.compiled = compiled
        self.signal = RevisionSignal(compiled, interval=refresh_seconds)
        self.cache = AssignmentCache()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/nodes/{host}.json", self.assignment)]

    async def _current(self) -> Compiled:
        try:
            current = await self.compiled.current()
        except NotReady as error:
            raise web.HTTPServiceUnavailable(text=f"{error}\n") from None
        self.signal.observe(current)
        return current

    async def assignment(self, request: web.Request) -> web.StreamResponse:
        host = request.match_info["host"]
        wait = _wait_seconds(request)
        if_none_match = request.headers.get("If-None-Match")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        current = await self._current()
        while True:
            found = self.cache.answer(current, host)
            etag = ABSENT_ETAG if found is None else found[1]
            remaining = deadline - loop.time()
            if not _matches(if_none_match, etag) or remaining <= 0 or self.signal.closing:
                break
            await self.signal.wait(remaining)
            current = self.signal.latest or current  # no per-request recheck after a wake-up
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _matches(if_none_match, etag):
            return web.Response(status=304, headers=headers)
        if found is None:
            return web.Response(
                status=404, text=f"no image is assigned to {host!r}\n", headers=headers
            )
        return web.Response(body=found[0], content_type="application/json", headers=headers)
