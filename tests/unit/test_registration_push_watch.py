"""End to end: ``watch`` fetching a remote applies the machine serve registered and pushed.

The remote is a bare repository reached by ``file://``; the watch loop mirrors
it (``[watch] remote``) and writes file targets; serve, with no push setting
of its own, pushes to that same remote. The site only trusts signed commits,
so the pushed registration must carry serve's signature to be applied.
"""

from __future__ import annotations

import asyncio
import subprocess

from aiohttp.test_utils import TestClient, TestServer

from reconciler.config import load_config
from reconciler.sandbox.site import git
from reconciler.server.settings import ServeSettings
from reconciler.watch.service import build_loop
from tests.unit.serve_site import NEIGHBOUR_HEADER, REMOTE_HEADER, FakeNeighbours, serve_app
from tests.unit.test_signed_registration import Start, open_window, ssh_key, trust
from tests.unit.watch_fixture import FAST, WatchSite, ready, wait_status

MAC = "52:54:00:12:34:21"


def test_watch_applies_the_host_serve_pushed_to_its_remote(
    watch_site: WatchSite, running: Start
) -> None:
    operator = ssh_key(watch_site.root, "operator")
    service = ssh_key(watch_site.root, "service")
    trust(watch_site.root / "allowed_signers", operator, service)
    opened = open_window(watch_site, operator)
    remote = watch_site.root / "remote.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(watch_site.repo), str(remote)], check=True, timeout=30
    )
    with watch_site.config_path.open("a") as config_file:
        config_file.write(
            f'[watch]\nremote = "{remote.as_uri()}"\nverify_signatures = "ssh"\n'
            'allowed_signers = "allowed_signers"\n'
        )
    config = load_config(watch_site.config_path)
    loop = running(build_loop(config, config.watch.model_copy(update=FAST)))
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == opened)

    settings = ServeSettings(audit_log=watch_site.root / "audit.jsonl", signing_key="keys/service")
    app = serve_app(config, settings, FakeNeighbours())

    async def main() -> tuple[int, str]:
        async with TestClient(TestServer(app)) as client:
            headers = {REMOTE_HEADER: "10.23.45.201", NEIGHBOUR_HEADER: MAC}
            response = await client.post("/register", data={"mac": MAC}, headers=headers)
            return response.status, await response.text()

    status, body = asyncio.run(main())
    assert status == 200, body
    pushed = git(remote, "rev-parse", "main")
    assert pushed != opened and pushed in body
    assert git(watch_site.repo, "rev-parse", "main") == opened  # the local clone is not used

    loop.trigger.fire("webhook")  # what the git host's push webhook does
    after = wait_status(loop, lambda s: ready(s) and s.accepted_revision == pushed)
    assert "node021" in watch_site.out("dhcpd.hosts.conf")
    assert MAC in watch_site.out("dhcpd.hosts.conf")
    stalled = after.condition("Stalled")
    assert stalled is None or not stalled.status
