"""A git host on 127.0.0.1: ``git http-backend`` behind HTTP Basic authentication.

Tests of anything that fetches or pushes over smart HTTP with credentials (the
watch loop's remote, the operator's source Secret, serve's registration push)
need a server that, like a real git host, answers 401 until git sends the
right user and token. This is git's own CGI program (what git hosts and Apache
setups run) behind a small threaded HTTP server; it serves every repository
under ``root``, records the user names it was sent and counts the requests it
let in.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class GitHttpHost:
    """What a running host serves, where, who came, and how many requests it let in."""

    root: Path
    port: int
    seen_users: list[str] = field(default_factory=list)
    authorised: int = 0

    def url(self, repo: Path) -> str:
        """The http URL of ``repo`` (a folder under root), without credentials."""
        return f"http://127.0.0.1:{self.port}/{repo.relative_to(self.root).as_posix()}"


class _Handler(BaseHTTPRequestHandler):
    """Basic authentication in front of ``git http-backend`` for every request."""

    host: GitHttpHost
    user: str
    password: str

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return None

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        self.host.seen_users.append(user)
        if user != self.user or password != self.password:
            return False
        self.host.authorised += 1
        return True

    def _serve(self) -> None:
        if not self._authorised():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": str(self.host.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": self.user,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line]
        status = next((int(v.split()[0]) for k, v in headers if k == "Status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key != "Status":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve


@contextmanager
def git_http_host(root: Path, *, user: str, password: str) -> Iterator[GitHttpHost]:
    """Serve the repositories under ``root`` on 127.0.0.1 to ``user``:``password`` only."""
    host = GitHttpHost(root=root, port=0)
    handler = type("Host", (_Handler,), {"host": host, "user": user, "password": password})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    host.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
