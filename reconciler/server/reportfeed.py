"""``GET /reports``: the node agents' last reports, for a rollout controller in another pod.

Outside a cluster ``serve`` and ``watch`` share a state dir, and the rollout
controller reads ``reports/<host>.json`` there. In a cluster the operator runs
in pods of its own: it pulls the reports from serve over HTTP on each rollout
pass (``[watch] reports_url``, a Site's ``spec.reports``). Serve needs no
credentials for the Kubernetes API that way.

Reports move rollouts forward and their check outputs say things about the
nodes, so the endpoint answers only a bearer token: the contents of
``[serve] reports_token_file`` (a mounted Secret, read on each request so a
rotation needs no restart), compared in constant time. Without that setting
the endpoint is off (404 saying how to turn it on); with the file missing (an
optional Secret not created yet) it answers 503 saying so. Only the reports of
hosts in the accepted revision are sent, newest as stored.

A rollout pass pulls every few seconds while a wave waits, and the reports
(about half a kB per node) mostly did not change in between. So the answer
carries an ``ETag`` naming the reports held and the accepted revision; a
request whose ``If-None-Match`` names it gets ``304 Not Modified`` without a
body, and the puller keeps using its last copy. The body of one ETag is
encoded once, whoever asks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

from aiohttp import ETag, web

from reconciler.server.nodereports import ReportStore
from reconciler.server.ratelimit import LogThrottle
from reconciler.server.state import CompiledInventory, NotReady

log = logging.getLogger(__name__)


class ReportFeed:
    """Holds the store, the accepted inventory and the token file; ``handle`` answers."""

    def __init__(
        self, *, compiled: CompiledInventory, store: ReportStore, token_file: Path | None
    ) -> None:
        self.compiled = compiled
        self.store = store
        self.token_file = token_file
        self.log_throttle = LogThrottle()
        self._hosts: tuple[str, frozenset[str]] | None = None
        self._body: tuple[str, bytes] | None = None  # the last answer, by its ETag

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/reports", self.handle)]

    def _token(self) -> bytes | None:
        assert self.token_file is not None
        try:
            token = self.token_file.read_bytes().strip()
        except OSError:
            return None
        return token or None

    async def handle(self, request: web.Request) -> web.Response:
        if self.token_file is None:
            return _error(404, "node reports are not offered: set [serve] reports_token_file")
        token = self._token()
        if token is None:
            return _error(503, f"{self.token_file} is missing or empty: create the Secret")
        offered = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(offered, b"Bearer " + token):
            shown, suppressed = self.log_throttle.allow(str(request.remote))
            if shown:
                log.warning("node reports refused: wrong or no token",
                            extra={"remote": request.remote, "suppressed": suppressed})  # fmt: skip
            return _error(401, "send the token of [serve] reports_token_file as 'Bearer <token>'")
        try:
            current = await self.compiled.current()
        except NotReady as error:
            return _error(503, str(error))
        etag = reports_etag(store_version=self.store.version, revision=current.revision)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _names(request.if_none_match, etag):
            return web.Response(status=304, headers=headers)
        if self._body is None or self._body[0] != etag:
            if self._hosts is None or self._hosts[0] != current.revision:
                hosts = frozenset(host.hostname for host in current.state.dhcp_hosts)
                self._hosts = (current.revision, hosts)
            accepted = self._hosts[1]
            reports = {host: r for host, r in self.store.all().items() if host in accepted}
            body = json.dumps({"revision": current.revision, "reports": reports}).encode()
            self._body = (etag, body)
        return web.Response(body=self._body[1], content_type="application/json", headers=headers)


def reports_etag(*, store_version: str, revision: str) -> str:
    """The quoted ETag of the reports held (``ReportStore.version``) under ``revision``."""
    digest = hashlib.blake2b(f"{store_version}/{revision}".encode(), digest_size=12)
    return f'"{digest.hexdigest()}"'


def _names(tags: tuple[ETag, ...] | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, or ``*``)."""
    return tags is not None and any(tag.value == "*" or f'"{tag.value}"' == etag for tag in tags)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
