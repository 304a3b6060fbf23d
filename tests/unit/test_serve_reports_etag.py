"""serve's GET /reports is conditional (ETag, If-None-Match -> 304), over real HTTP on loopback.

A rollout pass pulls the reports every few seconds while a wave waits; most
pulls find nothing new. The answer's ETag names the reports held and the
accepted revision: the same ETag back gets 304 without a body, a new node
report or a new accepted revision gets 200 and a new ETag. The puller
(``PulledReports``) sends its last ETag and keeps its last copy on 304.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.typedefs import Handler

from reconciler.config import RuntimeConfig
from reconciler.server.settings import ServeSettings
from reconciler.watch.pulledreports import PulledReports
from tests.unit.serve_site import FakeNeighbours, ServeClient, serve_app, with_client
from tests.unit.test_serve_nodes import NODE010, new_revision, post, report, site

TOKEN = "t0ken"


async def get(
    client: ServeClient, *, etag: str | None = None, token: str = TOKEN
) -> ClientResponse:
    headers = {"Authorization": f"Bearer {token}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    return await client.get("/reports", headers=headers)


def reporting_site(tmp_path: Path) -> tuple[Path, RuntimeConfig, Path, web.Application]:
    """serve with GET /reports on (the token file written) and node010 on its link."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    repo, config, neighbours, app = site(tmp_path, reports_token_file=token)
    neighbours.entries[NODE010[0]] = NODE010[1]
    return repo, config, token, app


def test_unchanged_reports_304_a_new_report_or_revision_200_with_a_new_etag(
    tmp_path: Path,
) -> None:
    repo, config, _, app = reporting_site(tmp_path)

    async def scenario(client: ServeClient) -> None:
        assert (await post(client, NODE010[0], report())).status == 200
        first = await get(client)
        etag = first.headers["ETag"]
        before = await first.json()
        assert first.status == 200 and before["reports"]["node010"]["health"]["ok"] is True

        same = await get(client, etag=etag)
        assert same.status == 304 and await same.read() == b"" and same.headers["ETag"] == etag
        assert (await get(client, etag="*")).status == 304
        assert (await get(client, etag=f'"other", W/{etag}')).status == 304  # one of a list
        assert (await get(client, etag=etag, token="wrong")).status == 401  # token first

        # node010 reports again, now unhealthy: a new body and a new ETag
        sick = report(health={"ok": False, "checks": [{"name": "ping", "ok": False}]})
        assert (await post(client, NODE010[0], sick)).status == 200
        changed = await get(client, etag=etag)
        assert changed.status == 200 and changed.headers["ETag"] != etag
        assert (await changed.json())["reports"]["node010"]["health"]["ok"] is False
        etag = changed.headers["ETag"]
        assert (await get(client, etag=etag)).status == 304

        # a new accepted revision: 200 with it (serve picks it up within refresh_seconds)
        await asyncio.to_thread(new_revision, repo, config)
        moved = await _first_200(lambda: get(client, etag=etag))
        assert moved.headers["ETag"] != etag
        assert (await moved.json())["revision"] != before["revision"]
        assert (await get(client, etag=moved.headers["ETag"])).status == 304

    with_client(app, scenario)


def test_a_restarted_serve_answers_an_earlier_etag_with_the_reports(tmp_path: Path) -> None:
    """Each serve counts its own changes: after a restart and as many new reports,
    an ETag of the serve before must not match."""
    _, config, token, app = reporting_site(tmp_path)

    async def before(client: ServeClient) -> str:
        assert (await post(client, NODE010[0], report())).status == 200
        return (await get(client)).headers["ETag"]

    etag = with_client(app, before)
    settings = ServeSettings(audit_log=tmp_path / "a.jsonl", reports_token_file=token)
    neighbours = FakeNeighbours()
    neighbours.entries[NODE010[0]] = NODE010[1]
    restarted = serve_app(config, settings, neighbours)

    async def after(client: ServeClient) -> tuple[int, str, dict[str, Any]]:
        assert (await post(client, NODE010[0], report("2024.11"))).status == 200
        answer = await get(client, etag=etag)
        return answer.status, answer.headers["ETag"], await answer.json()

    status, new_etag, body = with_client(restarted, after)
    assert status == 200 and new_etag != etag
    assert body["reports"]["node010"]["version"] == "2024.11"


def test_the_pull_sends_its_etag_and_keeps_its_copy_on_304(tmp_path: Path) -> None:
    _, _, token, app = reporting_site(tmp_path)
    answered: list[int] = []  # what serve answered each GET /reports, as the network saw it

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path == "/reports":
            answered.append(response.status)
        return response

    app.middlewares.append(record)

    async def scenario(client: ServeClient) -> None:
        assert (await post(client, NODE010[0], report())).status == 200
        pulled = PulledReports(str(client.make_url("/")), token_file=token, timeout=5)
        first = await asyncio.to_thread(pulled)
        pulled.begin_pass()  # the next rollout pass: nothing changed meanwhile
        second = await asyncio.to_thread(pulled)
        assert answered == [200, 304]
        assert second is first and first["node010"]["version"] == "2024.10"

        assert (await post(client, NODE010[0], report("2024.11"))).status == 200
        pulled.begin_pass()
        third = await asyncio.to_thread(pulled)
        assert answered == [200, 304, 200] and third["node010"]["version"] == "2024.11"
        pulled.begin_pass()
        assert await asyncio.to_thread(pulled) is third and answered[-1] == 304

    with_client(app, scenario)


async def _first_200(
    request: Callable[[], Awaitable[ClientResponse]], *, timeout: float = 20.0
) -> ClientResponse:
    """Repeat ``request`` (304 while unchanged) until it answers 200; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        response = await request()
        if response.status != 304:
            assert response.status == 200, await response.text()
            return response
        assert time.monotonic() < deadline, "no 200 within the timeout"
        await asyncio.sleep(0.05)
