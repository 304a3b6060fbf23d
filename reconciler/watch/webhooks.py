"""Webhook checks: a push announced by GitHub, GitLab or any HMAC-signing sender.

A webhook only *triggers* a pass (the loop then fetches and decides what to
apply by itself), but an unauthenticated trigger would still let anyone make
the reconciler fetch in a loop, so each request is checked against the shared
secret: GitHub's ``X-Hub-Signature-256: sha256=<hex>`` (HMAC-SHA256 of the
body), GitLab's ``X-Gitlab-Token: <secret>``, or a generic
``X-Signature-256: [sha256=]<hex>``. Comparisons are constant-time, on
bytes, so a header with non-ASCII characters is a plain 401. Bodies up to 25
MiB (GitHub's limit for a delivery) are read whatever the app's own request
size limit is, and a delivery id seen before (``X-GitHub-Delivery``,
``X-Gitlab-Event-UUID``: a retry, or a captured request sent again) is
answered without triggering another pass. ``webhook_routes`` gives aiohttp
routes for the HTTP service to mount.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from reconciler.config import ConfigError, RuntimeConfig
from reconciler.keyfiles import read_key_file

MAX_BODY = 25 * 1024 * 1024  # GitHub caps a delivery's payload at 25 MB
BODY_TIMEOUT = 60.0  # seconds to receive a whole body
DELIVERY_HEADERS = ("X-GitHub-Delivery", "X-Gitlab-Event-UUID")
REMEMBERED_DELIVERIES = 10_000


def _ascii(text: str) -> bytes | None:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return None


def hmac_sha256_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_hmac(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Generic HMAC-SHA256: ``signature`` is the hex digest, with or without ``sha256=``."""
    given = _ascii(signature.strip()) if signature else None
    if not secret or not given:
        return False
    if given.lower().startswith(b"sha256="):
        given = given[len(b"sha256=") :]
    return hmac.compare_digest(hmac_sha256_hex(secret, body).encode(), given.lower())


def verify_github(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub: ``X-Hub-Signature-256`` must be ``sha256=`` + HMAC-SHA256(secret, body)."""
    if not header or not header.startswith("sha256="):
        return False
    return verify_hmac(secret, body, header)


def verify_gitlab(secret: bytes, header: str | None) -> bool:
    """GitLab: ``X-Gitlab-Token`` carries the secret itself."""
    given = _ascii(header) if header is not None else None
    if not secret or given is None:
        return False
    return hmac.compare_digest(secret, given)


def read_secret(path: Path) -> bytes:
    """The webhook secret in ``path``; ConfigError if missing, open to others, or empty."""
    secret = read_key_file(path, setting="watch.webhook_secret_file")
    if not secret:
        raise ConfigError(f"watch.webhook_secret_file: {path} is empty; put the secret in it")
    return secret


def load_webhook_secret(config: RuntimeConfig) -> bytes | None:
    """The configured webhook secret, or None when webhooks are not configured."""
    path = config.watch.webhook_secret_file
    return read_secret(config.resolve(path)) if path is not None else None


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes | None:
    """The whole body, or None when it is larger than ``limit`` (the app's size limit aside)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(BODY_TIMEOUT):
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


class SeenDeliveries:
    """Delivery ids already acted on, the newest ``size`` of them."""

    def __init__(self, size: int = REMEMBERED_DELIVERIES) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, request: web.Request) -> bool:
        """False when the request's delivery id was seen before; remembers it otherwise."""
        ids = [f"{h}:{request.headers[h]}" for h in DELIVERY_HEADERS if h in request.headers]
        if not ids:
            return True
        if any(i in self._ids for i in ids):
            return False
        for i in ids:
            self._ids[i] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


def webhook_routes(trigger: Callable[[str], None], secret: bytes) -> list[web.RouteDef]:
    """POST /webhook/github, /webhook/gitlab, /webhook (generic HMAC): 202 and a pass, or 401."""

    seen = SeenDeliveries()

    async def accept(request: web.Request, check: Callable[[bytes], bool]) -> web.Response:
        try:
            body = await read_body(request)
        except TimeoutError:
            return web.json_response({"error": "body not received in time"}, status=408)
        if body is None:
            return web.json_response({"error": f"body larger than {MAX_BODY} bytes"}, status=413)
        if not check(body):
            return web.json_response({"error": "bad or missing signature"}, status=401)
        if request.headers.get("X-GitHub-Event") == "ping":
            return web.json_response({"ok": True, "ping": True})
        if not seen.first_time(request):
            return web.json_response({"ok": True, "duplicate": True})
        trigger("webhook")
        return web.json_response({"ok": True}, status=202)

    async def github(request: web.Request) -> web.Response:
        header = request.headers.get("X-Hub-Signature-256")
        return await accept(request, lambda body: verify_github(secret, body, header))

    async def gitlab(request: web.Request) -> web.Response:
        header = request.headers.get("X-Gitlab-Token")
        return await accept(request, lambda _body: verify_gitlab(secret, header))

    async def generic(request: web.Request) -> web.Response:
        header = request.headers.get("X-Signature-256")
        return await accept(request, lambda body: verify_hmac(secret, body, header))

    return [
        web.post("/webhook/github", github),
        web.post("/webhook/gitlab", gitlab),
        web.post("/webhook", generic),
    ]
