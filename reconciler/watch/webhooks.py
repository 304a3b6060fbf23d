"""Webhook checks: a push announced by GitHub, GitLab or any HMAC-signing sender.

A webhook only *triggers* a pass (the loop then fetches and decides what to
apply by itself), but an unauthenticated trigger would still let anyone make
the reconciler fetch in a loop, so each request is checked against the shared
secret: GitHub's ``X-Hub-Signature-256: sha256=<hex>`` (HMAC-SHA256 of the
body), GitLab's ``X-Gitlab-Token: <secret>``, or a generic
``X-Signature-256: [sha256=]<hex>``. Comparisons are constant-time.
``webhook_routes`` gives aiohttp routes for the HTTP service to mount.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

MAX_BODY = 5 * 1024 * 1024


def hmac_sha256_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_hmac(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Generic HMAC-SHA256: ``signature`` is the hex digest, with or without ``sha256=``."""
    if not secret or not signature:
        return False
    given = signature.strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256=") :]
    return hmac.compare_digest(hmac_sha256_hex(secret, body), given.lower())


def verify_github(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub: ``X-Hub-Signature-256`` must be ``sha256=`` + HMAC-SHA256(secret, body)."""
    if not header or not header.startswith("sha256="):
        return False
    return verify_hmac(secret, body, header)


def verify_gitlab(secret: bytes, header: str | None) -> bool:
    """GitLab: ``X-Gitlab-Token`` carries the secret itself."""
    if not secret or header is None:
        return False
    return hmac.compare_digest(secret, header.encode())


def read_secret(path: Path) -> bytes:
    return path.read_bytes().strip()


def webhook_routes(trigger: Callable[[str], None], secret: bytes) -> list[web.RouteDef]:
    """POST /webhook/github, /webhook/gitlab, /webhook (generic HMAC): 202 and a pass, or 401."""

    async def accept(request: web.Request, check: Callable[[bytes], bool]) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "body too large"}, status=413)
        body = await request.read()
        if not check(body):
            return web.json_response({"error": "bad or missing signature"}, status=401)
        if request.headers.get("X-GitHub-Event") == "ping":
            return web.json_response({"ok": True, "ping": True})
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
