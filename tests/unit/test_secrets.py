"""Secrets stay secret: remote URL credentials are never shown, exposed key files are caught.

A watch loop fetching from a remote whose URL carries a user and token
(``http://user:token@...``, here a closed loopback port, so the fetch fails)
must not show the token in status.json, ``/status``, its log or its errors.
Key files others may write are refused at start; readable ones are named in
a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.config import ConfigError, load_config
from reconciler.engine import Engine
from reconciler.sandbox.git_http import git_http_host
from reconciler.sandbox.site import git
from reconciler.watch.http import status_routes
from reconciler.watch.loop import WatchLoop
from reconciler.watch.sources import redact_url, scrub_secrets
from tests.unit.watch_fixture import WatchSite, wait_status

TOKEN = "ghp_s3cr3tT0kenValue42"
Start = Callable[[WatchLoop], WatchLoop]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://ci:{TOKEN}@git.example.org/site/inv.git",
            "https://***@git.example.org/site/inv.git",
        ),
        (f"https://{TOKEN}@github.com/site/inv.git", "https://***@github.com/site/inv.git"),
        (f"ssh://git:{TOKEN}@git.example.org:2222/inv", "ssh://***@git.example.org:2222/inv"),
        ("https://git.example.org/site/inv.git", "https://git.example.org/site/inv.git"),
        ("git@github.com:site/inv.git", "git@github.com:site/inv.git"),
        ("/srv/inventory.git", "/srv/inventory.git"),
    ],
)
def test_urls_are_shown_without_their_user_part(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    if TOKEN in url:  # git may quote the URL or the password in what it prints
        assert TOKEN not in scrub_secrets(f"fatal: could not read from {url}: {TOKEN}", url)


def test_remote_credentials_never_reach_status_logs_or_errors(
    watch_site: WatchSite, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    remote = f"http://reconciler:{TOKEN}@127.0.0.1:9/site/inventory.git"
    with caplog.at_level(logging.DEBUG):
        loop = running(watch_site.loop(remote=remote, poll_interval=3600))
        status = wait_status(loop, lambda s: "127.0.0.1:9" in str(s.to_dict()["conditions"]))
        loop.stop()
    text = loop.store.path.read_text()
    assert "127.0.0.1:9" in text and "***@" in text  # the remote is shown, redacted
    assert TOKEN not in text and TOKEN not in str(status.to_dict())
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in str(record.__dict__)

    async def main() -> Any:
        app = web.Application()
        app.add_routes(status_routes(loop.store))
        async with TestClient(TestServer(app)) as client:
            return await (await client.get("/status")).text()

    body = asyncio.run(main())
    assert "***@127.0.0.1:9" in body and TOKEN not in body


def _key_config(tmp_path: Path, mode: int) -> Path:
    key = tmp_path / "omapi.key"
    key.write_text("c2VjcmV0c2VjcmV0c2VjcmV0\n")
    os.chmod(key, mode)
    config = tmp_path / "reconciler.toml"
    config.write_text(
        '[source]\npath = "inventory"\n'
        '[targets.dhcp]\ntype = "dhcp-omapi"\nkey_file = "omapi.key"\n'
        'leases_file = "dhcpd.leases"\n'
    )
    (tmp_path / "dhcpd.leases").write_text("")
    return config


def test_a_key_file_others_may_write_is_refused_at_start(tmp_path: Path) -> None:
    config = load_config(_key_config(tmp_path, 0o602))
    with pytest.raises(
        ConfigError, match=r"targets\.dhcp\.key_file: every user may write.*chmod 600"
    ):
        Engine(config)


@pytest.mark.parametrize(("mode", "who"), [(0o644, "every user"), (0o640, "its group")])
def test_a_key_file_others_may_read_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, who: str
) -> None:
    config = load_config(_key_config(tmp_path, mode))
    with caplog.at_level(logging.WARNING):
        Engine(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"SECRET EXPOSED: {who} may read" in w and "chmod 600" in w for w in warnings)


def test_a_private_key_file_gives_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(_key_config(tmp_path, 0o600))
    with caplog.at_level(logging.WARNING):
        Engine(config)
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()]


def test_credentials_reach_git_through_askpass_not_its_arguments_or_config(
    watch_site: WatchSite, running: Start
) -> None:
    bare = watch_site.root / "served" / "inv.git"
    git(watch_site.root, "clone", "-q", "--bare", str(watch_site.repo), str(bare))
    with git_http_host(bare.parent, user="reconciler", password=TOKEN) as server:
        remote = f"http://reconciler:{TOKEN}@127.0.0.1:{server.port}/inv.git"
        loop = running(watch_site.loop(remote=remote, poll_interval=3600))
        head = git(watch_site.repo, "rev-parse", "main")
        status = wait_status(loop, lambda s: s.accepted_revision == head)
        loop.stop()
    assert server.authorised > 0  # git really logged in
    mirror = watch_site.root / "state" / "watch"
    config_text = (mirror / "mirror.git" / "config").read_text()
    assert TOKEN not in config_text and f"127.0.0.1:{server.port}/inv.git" in config_text
    assert all(TOKEN not in p.read_text(errors="replace") for p in mirror.rglob("*") if p.is_file())
    assert TOKEN not in str(status.to_dict())
