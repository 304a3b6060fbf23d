"""Registrations pushed to the remote the site is applied from (``[serve] push_url``).

The "remote" is a bare repository on disk reached by a ``file://`` URL: git
runs its real fetch and push (send-pack/receive-pack, the fast-forward check,
hooks) exactly as over the network, with no network at all. Races are real
pushes made between serve's fetch and its push.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.inventory.commit import Author
from reconciler.server.audit import AuditLog
from reconciler.server.enrol import ATTEMPTS as ENROL_ATTEMPTS
from reconciler.server.enrol import Enroller
from reconciler.server.push import RegistrationRemote
from reconciler.statelock import StateLock
from reconciler.watch.settings import WatchSettings
from tests.unit.serve_site import (
    NEIGHBOUR_HEADER,
    REMOTE_HEADER,
    FakeNeighbours,
    ServeClient,
    accept,
    git,
    make_config,
    make_repo,
    serve_app,
    serve_settings,
    with_client,
)

MAC = "52:54:00:12:34:15"
ADDRESS = "10.23.45.201"


def remote_site(tmp_path: Path) -> tuple[Path, str]:
    """The bare "remote" repository and its file:// URL."""
    remote = make_repo(tmp_path, bare=True)
    return remote, remote.as_uri()


def register(app: Any, mac: str = MAC) -> tuple[int, dict[str, Any], dict[str, str]]:
    async def scenario(client: ServeClient) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {REMOTE_HEADER: ADDRESS, NEIGHBOUR_HEADER: mac}
        response = await client.post("/register", data={"mac": mac}, headers=headers)
        health = await client.get("/healthz")
        assert health.status == 200, "serve must stay up"
        return response.status, await response.json(), dict(response.headers)

    return with_client(app, scenario)


def compute(remote: Path) -> str:
    return git(remote, "show", "main:groups/compute.yaml")


def human_push(tmp_path: Path, remote: Path, *, index: int, mac: str) -> str:
    """A person clones the remote, enrols a host by hand and pushes: the remote's new head."""
    clone = tmp_path / f"human-{index}"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True, timeout=30)
    path = clone / "groups/compute.yaml"
    path.write_text(path.read_text() + f'  - index: {index}\n    mac: "{mac}"\n')
    git(clone, "-c", "user.name=h", "-c", "user.email=h@example.org", "commit", "-qam", "by hand")
    git(clone, "push", "-q", "origin", "main")
    return git(remote, "rev-parse", "main").strip()


def test_a_registration_is_pushed_to_the_watch_remote(tmp_path: Path) -> None:
    remote, url = remote_site(tmp_path)
    before = git(remote, "rev-parse", "main").strip()
    config = make_config(tmp_path, remote).model_copy(update={"watch": WatchSettings(remote=url)})
    accept(config)
    app = serve_app(config, serve_settings(tmp_path), FakeNeighbours())  # push_url: [watch] remote

    status, body, _ = register(app)
    assert status == 200, body
    head = git(remote, "rev-parse", "main").strip()
    assert body["commit"] == head and body["index"] == 21 and body["hostname"] == "node021"
    assert git(remote, "rev-parse", "main~1").strip() == before
    assert f'  - index: 21\n    mac: "{MAC}"' in compute(remote)
    # The same MAC again: the same answer, no second commit.
    again = register(serve_app(config, serve_settings(tmp_path), FakeNeighbours()))
    assert again[0] == 200 and again[1]["index"] == 21
    assert git(remote, "rev-parse", "main").strip() == head


def test_a_push_between_read_and_push_makes_serve_enrol_again_on_the_new_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, url = remote_site(tmp_path)
    config = make_config(tmp_path, remote)
    accept(config)
    app = serve_app(config, serve_settings(tmp_path, push_url=url), FakeNeighbours())
    real_push = RegistrationRemote.push
    raced: list[str] = []

    def push_after_a_human(self: RegistrationRemote, commit: str) -> None:
        if not raced:  # someone takes index 21 after serve read the head
            raced.append(human_push(tmp_path, remote, index=21, mac="52:54:00:99:00:21"))
        real_push(self, commit)

    monkeypatch.setattr(RegistrationRemote, "push", push_after_a_human)
    status, body, _ = register(app)
    assert status == 200, body
    assert body["index"] == 22, "the group file must be read again from the new head"
    assert git(remote, "rev-parse", "main~1").strip() == raced[0]  # on top, not forced
    text = compute(remote)
    assert '- index: 21\n    mac: "52:54:00:99:00:21"' in text
    assert f'- index: 22\n    mac: "{MAC}"' in text


def test_two_serves_racing_give_every_machine_its_own_index(tmp_path: Path) -> None:
    remote, url = remote_site(tmp_path)
    macs = [[f"52:54:00:00:{w:02x}:{i:02x}" for i in range(4)] for w in range(2)]
    results: list[list[int]] = [[], []]

    def serve_process(which: int) -> None:
        enroller = Enroller(
            repo=tmp_path / f"serve{which}" / "registration.git",
            branch="main",
            subdir="",
            author=Author("reconciler registration", "reconciler@localhost"),
            boot_profiles=None,
            remote=RegistrationRemote(
                url, work=tmp_path / f"serve{which}" / "registration.git", branch="main"
            ),
        )
        for mac in macs[which]:
            results[which].append(enroller.enrol(mac, ADDRESS, routed=False).index)

    threads = [threading.Thread(target=serve_process, args=(w,)) for w in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results[0] + results[1]) == list(range(21, 29))
    text = compute(remote)
    for mac in macs[0] + macs[1]:
        assert mac in text
    assert git(remote, "rev-list", "--count", "main").strip() == "9"  # the site + 8


def test_an_unreachable_remote_answers_503_and_serve_stays_up(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, bare=True)
    config = make_config(tmp_path, repo)
    accept(config)
    secret_url = "https://reg:s3cr3t-t0ken@127.0.0.1:9/inventory.git"  # loopback, closed port
    app = serve_app(config, serve_settings(tmp_path, push_url=secret_url), FakeNeighbours())
    status, body, headers = register(app)
    assert status == 503, body
    assert headers["Retry-After"].isdigit()
    assert "https://***@127.0.0.1:9/inventory.git" in body["error"]
    assert "s3cr3t" not in body["error"]
    (decision,) = AuditLog(tmp_path / "audit.jsonl").read()
    assert decision["decision"] == "refused" and "s3cr3t" not in str(decision)
    assert git(repo, "rev-list", "--count", "main").strip() == "1"  # nothing committed


def test_a_remote_that_refuses_the_push_answers_503_then_works_again(tmp_path: Path) -> None:
    remote, url = remote_site(tmp_path)
    before = git(remote, "rev-parse", "main").strip()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'permission denied for reg' >&2\nexit 1\n")
    hook.chmod(0o755)
    config = make_config(tmp_path, remote)
    accept(config)
    app = serve_app(config, serve_settings(tmp_path, push_url=url), FakeNeighbours())

    heads: list[str] = []

    async def scenario(client: ServeClient) -> list[tuple[int, dict[str, Any], Any]]:
        answers = []
        headers = {REMOTE_HEADER: ADDRESS, NEIGHBOUR_HEADER: MAC}
        for _ in range(2):
            response = await client.post("/register", data={"mac": MAC}, headers=headers)
            answers.append((response.status, await response.json(), response.headers))
            heads.append(git(remote, "rev-parse", "main").strip())
            hook.unlink(missing_ok=True)  # access granted: the next attempt enrols
        return answers

    (refused, body, headers), (status, granted, _) = with_client(app, scenario)
    assert refused == 503, body
    assert "refused the registration commit" in body["error"]
    assert "permission denied for reg" in body["error"]
    assert "Retry-After" in headers
    assert heads[0] == before  # nothing half-done
    (decision, _) = AuditLog(tmp_path / "audit.jsonl").read()
    assert decision["decision"] == "refused" and decision["status"] == 503

    assert status == 200, granted  # the same index: nothing of the refused attempt remains
    assert granted["index"] == 21 and git(remote, "rev-parse", "main~1").strip() == before


def test_a_missing_remote_branch_says_which_setting_to_fix(tmp_path: Path) -> None:
    remote, url = remote_site(tmp_path)
    config = make_config(tmp_path, remote)
    accept(config)
    app = serve_app(config, serve_settings(tmp_path, push_url=url, branch="nope"), FakeNeighbours())
    status, body, _ = register(app)
    assert status == 503
    assert "branch 'nope' does not exist" in body["error"] and "[serve] branch" in body["error"]


def test_the_remote_default_branch_is_used_for_rev_head(tmp_path: Path) -> None:
    remote, url = remote_site(tmp_path)
    config = make_config(tmp_path, remote)
    config = config.model_copy(update={"source": config.source.model_copy(update={"rev": "HEAD"})})
    accept(config)
    app = serve_app(config, serve_settings(tmp_path, push_url=url), FakeNeighbours())
    status, body, _ = register(app)
    assert status == 200, body
    assert body["commit"] == git(remote, "rev-parse", "main").strip()


def test_a_pushed_registration_does_not_wait_for_a_watch_pass(tmp_path: Path) -> None:
    remote, url = remote_site(tmp_path)
    config = make_config(tmp_path, remote)
    accept(config)
    app = serve_app(config, serve_settings(tmp_path, push_url=url), FakeNeighbours())
    with StateLock(tmp_path / "state", purpose="watch pass", timeout=1):  # a long apply
        status, body, _ = register(app)
    assert status == 200, body
    assert body["commit"] == git(remote, "rev-parse", "main").strip()


def test_a_branch_that_keeps_moving_is_answered_503_after_bounded_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, url = remote_site(tmp_path)
    config = make_config(tmp_path, remote)
    accept(config)
    app = serve_app(config, serve_settings(tmp_path, push_url=url), FakeNeighbours())
    real_push = RegistrationRemote.push
    raced: list[str] = []

    def always_beaten(self: RegistrationRemote, commit: str) -> None:
        index = 21 + len(raced)  # someone always takes the index serve chose, just before
        raced.append(human_push(tmp_path, remote, index=index, mac=f"52:54:00:99:00:{index:02x}"))
        real_push(self, commit)

    monkeypatch.setattr(RegistrationRemote, "push", always_beaten)
    status, body, headers = register(app)
    assert status == 503, body
    assert "keeps moving" in body["error"] and headers["Retry-After"].isdigit()
    assert len(raced) == ENROL_ATTEMPTS
    assert git(remote, "rev-parse", "main").strip() == raced[-1]  # only the people's commits
    assert MAC not in compute(remote)
