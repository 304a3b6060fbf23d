"""Registration pushes over smart HTTP with Basic credentials, as to a real git host.

The remote is git's own ``git http-backend`` (the CGI program git hosts and
Apache setups run) behind a small HTTP server on 127.0.0.1 that demands Basic
credentials, so git must ask for them (``GIT_ASKPASS``) exactly as with a git
host. The tests check the token reaches the server, and never the answer, the
audit log or the files serve keeps.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from serve_site import FakeNeighbours, accept, git, make_config, make_repo, serve_app
from test_registration_push import register, settings

from reconciler.config import ConfigError

USER, TOKEN = "registration-bot", "s3cr3t-t0ken-4242"


class GitHost(BaseHTTPRequestHandler):
    """Basic authentication in front of ``git http-backend`` for every request."""

    root: Path
    seen_users: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
        return None

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        self.seen_users.append(user)
        return user == USER and password == TOKEN

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
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": USER,
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


@pytest.fixture
def git_host(tmp_path: Path) -> Iterator[tuple[Path, int, list[str]]]:
    """The bare remote under a served root, the port on 127.0.0.1, and the users that came."""
    remote = make_repo(tmp_path, bare=True)
    git(remote, "config", "http.receivepack", "true")
    seen: list[str] = []
    handler = type("Host", (GitHost,), {"root": remote.parent, "seen_users": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield remote, server.server_address[1], seen
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def files_under(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("where", ["url", "file"])
def test_a_registration_is_pushed_with_the_credentials_and_they_stay_secret(
    tmp_path: Path, git_host: tuple[Path, int, list[str]], where: str
) -> None:
    remote, port, seen = git_host
    plain = f"http://127.0.0.1:{port}/{remote.name}"
    config = make_config(tmp_path, remote)
    accept(config)
    if where == "url":
        changes: dict[str, Any] = {"push_url": plain.replace("://", f"://{USER}:{TOKEN}@")}
    else:
        secret = tmp_path / "push-token"
        secret.write_text(f"{USER}:{TOKEN}\n")
        changes = {"push_url": plain, "push_credentials_file": secret}
    app = serve_app(config, settings(tmp_path, **changes), FakeNeighbours())

    status, body, _ = register(app)
    assert status == 200, body
    assert body["commit"] == git(remote, "rev-parse", "main").strip()
    assert USER in seen  # git asked for the credentials and sent them
    kept = files_under(tmp_path / "state") + (tmp_path / "audit.jsonl").read_text()
    assert TOKEN not in kept and TOKEN not in str(body)


def test_wrong_credentials_answer_503_without_showing_them(
    tmp_path: Path, git_host: tuple[Path, int, list[str]]
) -> None:
    remote, port, _ = git_host
    before = git(remote, "rev-parse", "main").strip()
    config = make_config(tmp_path, remote)
    accept(config)
    url = f"http://{USER}:wr0ng-t0ken-777@127.0.0.1:{port}/{remote.name}"
    app = serve_app(config, settings(tmp_path, push_url=url), FakeNeighbours())
    status, body, headers = register(app)
    assert status == 503, body
    assert "Retry-After" in headers
    assert f"http://***@127.0.0.1:{port}/" in body["error"]
    assert "wr0ng" not in body["error"] and "wr0ng" not in (tmp_path / "audit.jsonl").read_text()
    assert git(remote, "rev-parse", "main").strip() == before


def test_a_credentials_file_anyone_may_write_is_refused_and_a_missing_one_is_a_503(
    tmp_path: Path,
) -> None:
    remote = make_repo(tmp_path, bare=True)
    config = make_config(tmp_path, remote)
    accept(config)
    secret = tmp_path / "push-token"
    secret.write_text(f"{USER}:{TOKEN}\n")
    secret.chmod(0o666)
    url = remote.as_uri()
    with pytest.raises(ConfigError, match=r"serve\.push_credentials_file: every user may write"):
        serve_app(
            config, settings(tmp_path, push_url=url, push_credentials_file=secret), FakeNeighbours()
        )
    missing = settings(tmp_path, push_url=url, push_credentials_file=tmp_path / "absent")
    status, body, _ = register(serve_app(config, missing, FakeNeighbours()))
    assert status == 503 and "cannot read [serve] push_credentials_file" in body["error"]
