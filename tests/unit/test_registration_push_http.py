"""Registration pushes over smart HTTP with Basic credentials, as to a real git host.

The remote is git's own ``git http-backend`` behind a small HTTP server on
127.0.0.1 that demands Basic credentials (``reconciler.sandbox.git_http``), so
git must ask for them (``GIT_ASKPASS``) exactly as with a git host. The tests
check the token reaches the server, and never the answer, the audit log or the
files serve keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import ConfigError
from reconciler.sandbox.git_http import git_http_host
from tests.unit.serve_site import (
    FakeNeighbours,
    accept,
    git,
    make_config,
    make_repo,
    serve_app,
    serve_settings,
)
from tests.unit.test_registration_push import register

USER, TOKEN = "registration-bot", "s3cr3t-t0ken-4242"


@pytest.fixture
def git_host(tmp_path: Path) -> Iterator[tuple[Path, int, list[str]]]:
    """The bare remote under a served root, the port on 127.0.0.1, and the users that came."""
    remote = make_repo(tmp_path, bare=True)
    git(remote, "config", "http.receivepack", "true")
    with git_http_host(remote.parent, user=USER, password=TOKEN) as host:
        yield remote, host.port, host.seen_users


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
    app = serve_app(config, serve_settings(tmp_path, **changes), FakeNeighbours())

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
    app = serve_app(config, serve_settings(tmp_path, push_url=url), FakeNeighbours())
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
            config,
            serve_settings(tmp_path, push_url=url, push_credentials_file=secret),
            FakeNeighbours(),
        )
    missing = serve_settings(tmp_path, push_url=url, push_credentials_file=tmp_path / "absent")
    status, body, _ = register(serve_app(config, missing, FakeNeighbours()))
    assert status == 503 and "cannot read [serve] push_credentials_file" in body["error"]
