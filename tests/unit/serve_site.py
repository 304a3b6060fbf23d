"""A git-backed site for the tests of ``reconciler serve``: inventory, runtime config, app.

The group file is written by hand, with comments and quoting a person would
use, so the tests can check that an enrolment commit leaves them alone. The
app is built with the peer address taken from a test header and a fake
neighbour table, standing in for a real link.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.accepted import AcceptedRevision, AcceptedStore, revision_of
from reconciler.config import BootConfig, RuntimeConfig, SourceConfig
from reconciler.inventory.sources import GitSource
from reconciler.server.app import Outside, build_app
from reconciler.server.settings import ServeSettings
from tests.unit.inventory_factory import write_inventory

T = TypeVar("T")

# A loopback HTTP client of a test server running serve's application.
ServeClient = TestClient[web.Request, web.Application]
HTTP_URL = "http://10.23.45.2:8080"
REMOTE_HEADER = "X-Test-Remote"
NEIGHBOUR_HEADER = "X-Test-Neighbour"  # the MAC the fake neighbour table learns for the remote

COMPUTE = """\
# Rack A: diskless compute blades. The sticker on each blade is its index.
name: compute
subnet: 10.23.45.0/24
gateway: 10.23.45.1
hostname: "node%03d"   # three digits, as printed on the stickers
unregistered_range: 10.23.45.200-10.23.45.250
image: compute@2024.10
registration:
  open: {open}
  indexes: {indexes}
hosts:
  - index: 10
    mac: "52:54:00:12:34:0a"
    aliases: [login]      # users ssh to login.cluster.example
  - index: 11
    mac: '52-54-00-12-34-0B'   # any spelling of a MAC works
"""

GPU = """\
name: gpu
subnet: 10.23.46.0/24
gateway: 10.23.46.1
hostname: "gpu%02d"
image: compute@2024.11
hosts:
  - index: 2
    mac: "52:54:00:aa:00:02"
"""


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout


def make_repo(
    root: Path, *, open_window: bool = True, indexes: str = "21-40", bare: bool = False
) -> Path:
    """A repository with the site on branch ``main``; a bare clone of it when ``bare``."""
    work = root / "inventory"
    write_inventory(
        work,
        groups={
            "compute": COMPUTE.format(open=str(open_window).lower(), indexes=indexes),
            "gpu": GPU,
        },
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, timeout=30)
    git(work, "add", ".")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "site")
    if not bare:
        return work
    clone = root / "inventory.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(clone)], check=True, timeout=30)
    return clone


def make_config(root: Path, repo: Path) -> RuntimeConfig:
    return RuntimeConfig(
        source=SourceConfig(repo=repo, rev="main"),
        state_dir=root / "state",
        boot=BootConfig(http_url=HTTP_URL, tftp_server="10.23.45.2"),
        base_dir=root,
    )


def accept(config: RuntimeConfig, rev: str = "main") -> str:
    """Record ``rev`` as the accepted revision, as ``watch`` or ``apply`` does after applying."""
    source = GitSource(config.resolve(config.source.repo or Path()), rev, config.source.subdir)
    commit = revision_of(source)
    AcceptedStore(config.resolve(config.state_dir)).record(
        AcceptedRevision.of(source, commit, by="apply")
    )
    return commit


class FakeNeighbours:
    """A neighbour table the test fills: address -> MAC (or a request teaches it, see serve_app).

    The real table is tested against the kernel in tests/integration/test_registration_netns.py.
    """

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    async def __call__(self, address: str) -> str | None:
        return self.entries.get(address)


def serve_settings(tmp_path: Path, **changes: Any) -> ServeSettings:
    """``[serve]`` for a test: the audit log in ``tmp_path``, the accepted revision read
    on every request (no refresh delay), and ``changes``."""
    return ServeSettings(audit_log=tmp_path / "audit.jsonl", refresh_seconds=0, **changes)


def serve_app(
    config: RuntimeConfig, settings: ServeSettings, neighbours: FakeNeighbours
) -> web.Application:
    def remote_of(request: web.Request) -> str | None:
        remote = request.headers.get(REMOTE_HEADER, request.remote)
        learned = request.headers.get(NEIGHBOUR_HEADER)
        if remote is not None and learned is not None:
            neighbours.entries.setdefault(remote, learned)  # as ARP would, on the same link
        return remote

    return build_app(
        config, settings, outside=Outside(remote_of=remote_of, neighbour_mac=neighbours)
    )


def with_client(app: web.Application, scenario: Callable[[ServeClient], Awaitable[T]]) -> T:
    """Run ``scenario`` against ``app`` on a loopback test server, in a fresh event loop."""

    async def main() -> T:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())
