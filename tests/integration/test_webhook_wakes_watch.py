"""A webhook POSTed to ``reconciler serve`` wakes a running ``reconciler watch``, end to end.

Both commands run as processes on loopback, as on a site. watch fetches from a
remote (a bare repository) only every hour; a push followed by a signed GitHub
webhook to serve must get the pushed commit applied at once. A forged webhook is
refused and wakes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox.named import free_port
from reconciler.sandbox.site import git
from reconciler.watch.status import StatusStore

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
RECONCILER = str(Path(sys.executable).parent / "reconciler")
SECRET = b"webhook-secret-for-the-test"


def post(url: str, body: bytes, signature: str) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "push",
                 "X-GitHub-Delivery": f"delivery-{time.monotonic_ns()}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait(what: str, check: object, *, timeout: float = 60) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "work"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "site")
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(tmp_path / "remote.git")],
                   check=True, timeout=30)  # fmt: skip
    (tmp_path / "webhook.secret").write_bytes(SECRET + b"\n")
    (tmp_path / "webhook.secret").chmod(0o600)
    port = free_port()
    (tmp_path / "reconciler.toml").write_text(
        f"""state_dir = "state"
[source]
repo = "work"
rev = "main"
[boot]
http_url = "http://127.0.0.1:{port}"
[serve]
listen = "127.0.0.1"
port = {port}
refresh_seconds = 0.2
[watch]
remote = "{tmp_path / "remote.git"}"
poll_interval = 3600
local_poll_interval = 3600
drift_interval = 3600
webhook_secret_file = "webhook.secret"
[targets.dhcp]
type = "dhcp-file"
path = "out/dhcpd.hosts.conf"
"""
    )
    yield tmp_path, f"http://127.0.0.1:{port}"


def test_a_webhook_to_serve_makes_watch_apply_the_push_at_once(
    site: tuple[Path, str],
) -> None:
    root, url = site
    config = str(root / "reconciler.toml")
    store = StatusStore(root / "state")
    logs = [(root / "watch.log").open("wb"), (root / "serve.log").open("wb")]
    watch = subprocess.Popen([RECONCILER, "watch", "-c", config], stdout=logs[0], stderr=logs[0])
    serve = subprocess.Popen([RECONCILER, "serve", "-c", config], stdout=logs[1], stderr=logs[1])
    try:
        first = git(root / "remote.git", "rev-parse", "main")
        wait("first revision applied", lambda: store.load().applied_revision == first)
        wait("serve answers", lambda: status_code(f"{url}/healthz") == 200)
        hosts = root / "out/dhcpd.hosts.conf"
        group = root / "work/groups/compute.yaml"
        group.write_text(group.read_text().replace('"52:54:00:12:34:0b"', '"52:54:00:12:34:ee"'))
        git(root / "work", "commit", "-q", "-am", "new NIC for node011")
        git(root / "work", "push", "-q", str(root / "remote.git"), "main")
        pushed = git(root / "remote.git", "rev-parse", "main")
        body = json.dumps({"ref": "refs/heads/main", "after": pushed}).encode()
        forged = post(f"{url}/webhook/github", body, "sha256=" + "0" * 64)
        assert forged == 401
        time.sleep(1)  # a forged webhook wakes nothing: the next fetch is an hour away
        assert store.load().applied_revision == first
        signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        assert post(f"{url}/webhook/github", body, signature) == 202
        wait("the pushed commit applied", lambda: store.load().applied_revision == pushed)
        assert "52:54:00:12:34:ee" in hosts.read_text()
    finally:
        for process in (watch, serve):
            process.send_signal(signal.SIGTERM)
        for process in (watch, serve):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in logs:
            log.close()
    assert watch.returncode == 0, (root / "watch.log").read_text()[-2000:]
