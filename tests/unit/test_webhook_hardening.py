"""Webhooks on ``serve`` and on ``watch --listen``, over real loopback servers:
real-size payloads, odd signature headers, replayed deliveries, a missing secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from reconciler.cli import app as cli
from reconciler.config import ConfigError
from reconciler.server.settings import ServeSettings
from reconciler.watch.http import BackgroundServer, watch_routes
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.status import StatusStore
from reconciler.watch.wakeup import wakeup_path
from reconciler.watch.webhooks import MAX_BODY
from tests.unit.serve_site import FakeNeighbours, make_config, make_repo, serve_app

SECRET = b"hook-secret-for-tests"


@dataclass
class Receiver:
    base: str
    fired: Callable[[], int]  # triggers since the last call


class AppThread:
    """The whole ``serve`` app on loopback, on its own event loop in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, shutdown_timeout=2)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = int(self.runner.addresses[0][1])
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _serve_receiver(tmp_path: Path) -> tuple[Receiver, Callable[[], None]]:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    (tmp_path / "webhook.secret").write_bytes(SECRET + b"\n")
    (tmp_path / "webhook.secret").chmod(0o600)
    watch = config.watch.model_copy(update={"webhook_secret_file": Path("webhook.secret")})
    config = config.model_copy(update={"watch": watch})
    state_dir = config.resolve(config.state_dir)
    server = AppThread(
        serve_app(config, ServeSettings(audit_log=tmp_path / "a.jsonl"), FakeNeighbours())
    )

    def fired() -> int:
        path = wakeup_path(state_dir)
        if not path.exists():
            return 0
        path.unlink()
        return 1

    return Receiver(f"http://127.0.0.1:{server.port}", fired), server.stop


def _watch_receiver(tmp_path: Path) -> tuple[Receiver, Callable[[], None]]:
    calls: list[str] = []
    routes = watch_routes(
        store=StatusStore(tmp_path), metrics=WatchMetrics(), trigger=calls.append, secret=SECRET
    )
    server = BackgroundServer(routes, host="127.0.0.1", port=0)
    server.start()

    def fired() -> int:
        count = len(calls)
        calls.clear()
        return count

    return Receiver(f"http://127.0.0.1:{server.port}", fired), server.stop


@pytest.fixture(params=["serve", "watch-listen"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    make = _serve_receiver if request.param == "serve" else _watch_receiver
    found, stop = make(tmp_path)
    try:
        yield found
    finally:
        stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"null")


def github_push(commits: int) -> bytes:
    """A push event shaped like GitHub's: repository, pusher, and many commits with files."""
    author = {"name": "A. Person", "email": "a@example.org", "username": "aperson"}
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "a" * 40,
            "after": "b" * 40,
            "repository": {"id": 1, "full_name": "site/inventory", "private": True},
            "pusher": {"name": "aperson", "email": "a@example.org"},
            "commits": [
                {
                    "id": f"{i:040x}",
                    "tree_id": f"{i + 1:040x}",
                    "message": f"register node{i:03d} (52:54:00:00:{i % 256:02x}:01) in compute\n"
                    + "x" * 400,
                    "timestamp": "2026-11-30T06:00:00Z",
                    "author": author,
                    "committer": author,
                    "added": [f"groups/group{i}.yaml"],
                    "removed": [],
                    "modified": [f"groups/compute{j}.yaml" for j in range(8)],
                }
                for i in range(commits)
            ],
        }
    ).encode()


def signed(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


def test_real_size_payloads_are_accepted(receiver: Receiver) -> None:
    body = github_push(2500)
    assert len(body) > 2 * 1024 * 1024
    status, answer = post(f"{receiver.base}/webhook/github", body, signed(body, "d-1"))
    assert (status, answer) == (202, {"ok": True})
    assert receiver.fired() == 1
    gitlab = {"X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event-UUID": "u-1"}
    status, _ = post(f"{receiver.base}/webhook/gitlab", body, gitlab)
    assert status == 202 and receiver.fired() == 1


def test_a_payload_over_25_mib_is_413(receiver: Receiver) -> None:
    body = b" " * (MAX_BODY + 1)
    status, _ = post(f"{receiver.base}/webhook/github", body, signed(body, "d-big"))
    assert status == 413 and receiver.fired() == 0


def raw_post(base: str, path: str, header: bytes) -> int:
    """POST with a header line as raw bytes (clients refuse non-ASCII); the status code."""
    host, port = base.removeprefix("http://").split(":")
    body = b"{}"
    request = (
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n"
        ).encode()
        + header
        + b"\r\n\r\n"
        + body
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/webhook/github", "X-Hub-Signature-256: sha256=é".encode()),
        ("/webhook/github", b"X-Hub-Signature-256: sha256=\xff\xfe"),
        ("/webhook/gitlab", "X-Gitlab-Token: sécret".encode()),
        ("/webhook/gitlab", b"X-Gitlab-Token: \xff"),
        ("/webhook", "X-Signature-256: ü".encode()),
    ],
)
def test_non_ascii_signature_headers_are_401(receiver: Receiver, path: str, header: bytes) -> None:
    assert raw_post(receiver.base, path, header) == 401
    assert receiver.fired() == 0


def test_a_replayed_delivery_is_ignored(receiver: Receiver) -> None:
    body = github_push(3)
    url = f"{receiver.base}/webhook/github"
    assert post(url, body, signed(body, "delivery-7"))[0] == 202
    assert receiver.fired() == 1
    status, answer = post(url, body, signed(body, "delivery-7"))
    assert status == 200 and answer["duplicate"] is True
    assert receiver.fired() == 0
    assert post(url, body, signed(body, "delivery-8"))[0] == 202
    assert receiver.fired() == 1
    gitlab = {"X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event-UUID": "uuid-1"}
    assert post(f"{receiver.base}/webhook/gitlab", body, gitlab)[0] == 202
    assert post(f"{receiver.base}/webhook/gitlab", body, gitlab)[1]["duplicate"] is True
    assert receiver.fired() == 1


def test_a_missing_secret_file_is_a_config_error_for_serve(tmp_path: Path) -> None:
    config = make_config(tmp_path, make_repo(tmp_path))
    watch = config.watch.model_copy(update={"webhook_secret_file": Path("nowhere.secret")})
    config = config.model_copy(update={"watch": watch})
    with pytest.raises(ConfigError, match=r"watch\.webhook_secret_file: .*nowhere\.secret"):
        serve_app(config, ServeSettings(audit_log=tmp_path / "a.jsonl"), FakeNeighbours())


def test_a_missing_secret_file_is_a_config_error_for_watch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = tmp_path / "reconciler.toml"
    config.write_text(
        f'state_dir = "state"\n[source]\nrepo = "{repo}"\nrev = "main"\n'
        '[watch]\nwebhook_secret_file = "missing.secret"\n'
    )
    result = CliRunner().invoke(cli, ["watch", "-c", str(config), "--listen", "127.0.0.1:0"])
    assert result.exit_code == 2, result.output
    assert "watch.webhook_secret_file" in result.stderr and "does not exist" in result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
