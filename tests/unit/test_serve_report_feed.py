"""serve's GET /reports and the loop's pull of it, over real HTTP on loopback.

The operator's rollout controller runs in another pod than serve: it pulls the
node agents' reports (``[watch] reports_url``). The token guards them; a serve
that cannot be reached makes the rollout wait, and the wave timeout counts from
serve's return, never from a time the nodes could not report.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from reconciler.watch.pulledreports import PulledReports, ReportsUnavailable
from tests.unit.serve_site import ServeClient
from tests.unit.test_rollout_controller import NEW, Site
from tests.unit.test_serve_nodes import NODE010, post, report, site


def get(client: ServeClient, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/reports", headers=headers)


def test_reports_are_offered_only_when_a_token_file_is_set(tmp_path: Path) -> None:
    _, _, _, app = site(tmp_path)

    async def scenario(client: ServeClient) -> tuple[int, str]:
        answer = await get(client, "anything")
        return answer.status, await answer.text()

    status, text = asyncio.run(_with(app, scenario))
    assert status == 404 and "reports_token_file" in text


def test_the_token_guards_the_reports_of_the_accepted_hosts(tmp_path: Path) -> None:
    token = tmp_path / "token"
    _, _, neighbours, app = site(tmp_path, reports_token_file=token)
    neighbours.entries[NODE010[0]] = NODE010[1]

    async def scenario(client: ServeClient) -> dict[str, tuple[int, Any]]:
        answers = {"no file": await get(client, "t0ken")}
        token.write_text("t0ken\n")  # the Secret arrives: no restart needed
        answers["no token"] = await get(client, None)
        answers["wrong token"] = await get(client, "t0ken-not")
        assert (await post(client, NODE010[0], report())).status == 200
        answers["ok"] = await get(client, "t0ken")
        return {k: (r.status, await r.text()) for k, r in answers.items()}

    answers = asyncio.run(_with(app, scenario))
    assert answers["no file"][0] == 503 and "missing" in answers["no file"][1]
    assert answers["no token"][0] == 401 and answers["wrong token"][0] == 401
    assert answers["ok"][0] == 200
    body = json.loads(answers["ok"][1])
    assert list(body["reports"]) == ["node010"]
    assert body["reports"]["node010"]["version"] == "2024.10" and body["revision"]


def test_the_pull_gives_the_reports_or_says_serve_is_unavailable(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken")
    _, _, neighbours, app = site(tmp_path, reports_token_file=token)
    neighbours.entries[NODE010[0]] = NODE010[1]

    async def scenario(client: ServeClient) -> None:
        assert (await post(client, NODE010[0], report())).status == 200
        url = str(client.make_url("/"))
        mine = tmp_path / "operator-token"  # the operator's copy of the Secret
        mine.write_text("t0ken\n")
        pulled = PulledReports(url, token_file=mine, timeout=5)
        reports = await asyncio.to_thread(pulled)
        assert reports["node010"]["health"]["ok"] is True and pulled.judged_from == 0.0
        wrong = PulledReports(url, token_file=tmp_path / "absent", timeout=5)
        with pytest.raises(ReportsUnavailable, match="token file unreadable"):
            await asyncio.to_thread(wrong)
        mine.write_text("another")
        pulled.begin_pass()
        with pytest.raises(ReportsUnavailable, match="HTTP 401"):
            await asyncio.to_thread(pulled)
        mine.write_text("t0ken")
        pulled.begin_pass()
        await asyncio.to_thread(pulled)
        assert pulled.judged_from > 0  # back after a failure: timeouts count from now

    asyncio.run(_with(app, scenario))


def test_a_serve_nobody_listens_on_is_unavailable_not_a_crash() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pulled = PulledReports(f"http://127.0.0.1:{port}", token_file=None, timeout=2)
    with pytest.raises(ReportsUnavailable, match="rollouts wait"):
        pulled()


def test_no_node_fails_for_a_timeout_it_could_not_report_in() -> None:
    site_ = Site(4, waves=[1, "100%"], max_unavailable="100%", timeout="1m")
    site_.step()
    site_.silent.add("node001")  # assigned, and serve goes away: no report arrives
    site_.step(advance=30)
    back = site_.now + 50  # serve answers again 50 s later, 80 s after the assignment
    decision = _step_with(site_, advance=50, timeout_from=back)
    assert decision.rollout is not None and not decision.rollout.failed
    decision = _step_with(site_, advance=61, timeout_from=back)
    assert decision.rollout is not None and "node001" in decision.rollout.failed
    assert site_.on(NEW) == ["node001"]


def _step_with(site_: Site, *, advance: float, timeout_from: float) -> Any:
    """``Site.step`` with the time serve answered again."""
    from reconciler.rollout.controller import decide

    site_.now += advance
    decision = decide(
        group="compute", hosts=site_.hosts, target=NEW, revision="abc", policy=site_.policy,
        current=site_.assigned, reports=site_.reports, rollout=site_.rollout, brake=site_.brake,
        now=site_.now, timeout_from=timeout_from,
    )  # fmt: skip
    site_.rollout, site_.assigned = decision.rollout, dict(decision.assignments)
    return decision


async def _with(app: Any, scenario: Any) -> Any:
    from aiohttp.test_utils import TestServer

    async with TestClient(TestServer(app)) as client:
        return await scenario(client)
