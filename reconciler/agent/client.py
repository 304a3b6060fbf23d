"""The agent's side of HTTP with ``reconciler serve``: fetch the assignment, post reports.

Fetching is a conditional GET: the agent sends the ETag of the assignment it
has, and with ``?wait=`` serve holds the request until the assignment changes
(or answers 304 when the time is up), so a node learns of a change at once
while costing the server one idle connection.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.agent import AGENT_VERSION

MAX_ASSIGNMENT_BYTES = 1 << 20


class ServerError(Exception):
    """serve could not be reached or answered something unusable."""


@dataclass(frozen=True)
class Fetched:
    """One answer: 200 with a body, 304 (unchanged) or 404 (nothing assigned)."""

    status: int
    body: Any = None
    etag: str | None = None


class Server(Protocol):
    def fetch(self, *, etag: str | None, wait: float) -> Fetched: ...

    def report(self, body: dict[str, Any]) -> None: ...


class HttpServer:
    """``Server`` over HTTP with urllib (standard library only)."""

    def __init__(self, base_url: str, host: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = host
        self.timeout = timeout
        self.headers = {"User-Agent": f"reconciler-agent/{AGENT_VERSION}"}

    def fetch(self, *, etag: str | None, wait: float) -> Fetched:
        url = f"{self.base_url}/nodes/{urllib.parse.quote(self.host)}.json"
        headers = dict(self.headers)
        if etag is not None:
            headers["If-None-Match"] = etag
            if wait > 0:
                url += f"?wait={wait:g}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout + wait) as response:
                raw = response.read(MAX_ASSIGNMENT_BYTES + 1)
                new_etag = response.headers.get("ETag")
        except urllib.error.HTTPError as error:
            if error.code in (304, 404):
                return Fetched(error.code, None, error.headers.get("ETag") or etag)
            raise ServerError(f"GET {url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ServerError(f"GET {url}: {getattr(error, 'reason', error)}") from None
        if len(raw) > MAX_ASSIGNMENT_BYTES:
            raise ServerError(f"GET {url}: the assignment is larger than 1 MiB")
        try:
            return Fetched(200, json.loads(raw), new_etag)
        except ValueError:
            raise ServerError(f"GET {url}: the answer is not JSON") from None

    def report(self, body: dict[str, Any]) -> None:
        url = f"{self.base_url}/nodes/{urllib.parse.quote(self.host)}/report"
        data = json.dumps(body, sort_keys=True).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={**self.headers, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):
                return
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode(errors="replace").strip()
            raise ServerError(f"POST {url}: HTTP {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ServerError(f"POST {url}: {getattr(error, 'reason', error)}") from None
