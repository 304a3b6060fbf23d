"""The watch loop's HTTP side on loopback: webhooks (signed or refused), /status, /metrics."""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.watch.http import BackgroundServer, watch_routes
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.status import Status, StatusStore

SECRET = b"hook-secret"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str], StatusStore]]:
    fired: list[str] = []
    store = StatusStore(tmp_path)
    routes = watch_routes(store=store, metrics=WatchMetrics(), trigger=fired.append, secret=SECRET)
    server = BackgroundServer(routes, host="127.0.0.1", port=0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", fired, store
    finally:
        server.stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_webhooks(served: tuple[str, list[str], StatusStore]) -> None:
    base, fired, _ = served
    body = b'{"ref":"refs/heads/main"}'
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert post(f"{base}/webhook/github", body, {"X-Hub-Signature-256": signature}) == 202
    assert post(f"{base}/webhook/github", body, {"X-Hub-Signature-256": "sha256=00"}) == 401
    assert post(f"{base}/webhook/gitlab", body, {"X-Gitlab-Token": SECRET.decode()}) == 202
    assert post(f"{base}/webhook/gitlab", body, {"X-Gitlab-Token": "nope"}) == 401
    assert post(f"{base}/webhook", body, {"X-Signature-256": signature[7:]}) == 202
    assert post(f"{base}/webhook", body, {}) == 401
    assert fired == ["webhook"] * 3


def test_status_and_metrics(served: tuple[str, list[str], StatusStore]) -> None:
    base, _, store = served
    with pytest.raises(urllib.error.HTTPError) as not_ready:
        urllib.request.urlopen(f"{base}/status", timeout=5)
    assert not_ready.value.code == 503
    status = Status(applied_revision="c" * 40)
    status.set_condition("Ready", True, reason="ReconciliationSucceeded")
    store.save(status)
    with urllib.request.urlopen(f"{base}/status", timeout=5) as response:
        assert b'"applied_revision": "cccc' in response.read()
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        assert b"reconciler_last_success_timestamp_seconds" in response.read()
