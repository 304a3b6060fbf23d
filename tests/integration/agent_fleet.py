"""A fleet of simulated node agents: a test double that speaks the agent's HTTP protocol.

This is NOT the real agent (``reconciler/agent``): it swaps nothing and runs no
health checks. It speaks the agent's protocol with ``reconciler serve``
(docs/node-protocol.md) for many nodes at once, so that a rollout over hundreds
of nodes can run against real ``watch`` and ``serve`` processes:

- each simulated node long-polls ``GET /nodes/<host>.json?wait=SECONDS`` with
  ``If-None-Match`` and the ETag it has, from its own address (the socket is
  bound to it, and the fleet runs in the network namespace that holds the
  addresses), exactly as the agent does;
- on its first answer it "booted" that version and reports it; on a changed
  assignment it "swaps" (waits ``swap_seconds``) and reports the new version,
  healthy, or, for the hosts listed in ``failing`` for that version, with a
  failed health check as the agent reports one after a kexec (state ``failed``,
  ``last_swap.result`` ``failed`` and the failing check's output);
- every report is a ``POST /nodes/<host>/report`` in the agent's format, which
  serve accepts only through its registration guard (address and neighbour MAC).

What each node was told and when is kept in ``seen``, so a test can assert what
the nodes saw through their long polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.integration.netns import entered


@dataclass
class Seen:
    """One assignment a node received: its image@version and when (monotonic)."""

    ref: str
    at: float


@dataclass
class AgentFleet:
    server_url: str
    namespace: str
    nodes: Mapping[str, str]  # host -> its address
    failing: Mapping[str, frozenset[str]] = field(default_factory=dict)  # ref -> hosts
    swap_seconds: float = 0.2
    wait_seconds: float = 30.0
    seen: dict[str, list[Seen]] = field(default_factory=dict)
    running: dict[str, str] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)  # host -> last report (monotonic)
    errors: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError("the agent fleet did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(20)
            if self._thread.is_alive():
                raise TimeoutError("the agent fleet did not stop within 20 s")

    def refs(self) -> dict[str, list[str]]:
        """Per host, the versions it was told to run, in order (repeats collapsed)."""
        found = {}
        for host, items in self.seen.items():
            refs: list[str] = []
            for item in items:
                if not refs or refs[-1] != item.ref:
                    refs.append(item.ref)
            found[host] = refs
        return found

    # -- inside the fleet's thread -----------------------------------------------

    def _run(self, started: threading.Event) -> None:
        with entered(self.namespace):  # every socket is opened in the nodes' namespace
            asyncio.run(self._main(started))

    async def _main(self, started: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        tasks = [asyncio.create_task(self._agent(h, a)) for h, a in self.nodes.items()]
        started.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _agent(self, host: str, address: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=2)
        timeout = aiohttp.ClientTimeout(total=self.wait_seconds + 15)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            etag: str | None = None
            while True:
                try:
                    etag = await self._poll(session, host, etag)
                except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                    self.errors.append(f"{host}: {error!r}")
                    await asyncio.sleep(0.5)

    async def _poll(self, session: aiohttp.ClientSession, host: str, etag: str | None) -> str:
        url = f"{self.server_url}/nodes/{host}.json"
        headers = {"User-Agent": "agent-fleet-test-double"}
        if etag is not None:
            headers["If-None-Match"] = etag
            url += f"?wait={self.wait_seconds:g}"
        async with session.get(url, headers=headers) as answer:
            if answer.status in (304, 404):
                return answer.headers.get("ETag") or etag or ""
            if answer.status != 200:
                raise ValueError(f"GET {url}: HTTP {answer.status} {await answer.text()}")
            body = await answer.json()
            new_etag = answer.headers["ETag"]
        ref = f"{body['image']}@{body['version']}"
        self.seen.setdefault(host, []).append(Seen(ref, time.monotonic()))
        before = self.running.get(host)
        if before != ref:
            if before is not None:
                await asyncio.sleep(self.swap_seconds)
            self.running[host] = ref
            await self._report(session, host, self._report_body(host, ref, before))
        return new_etag

    def _report_body(self, host: str, ref: str, before: str | None) -> dict[str, Any]:
        image, _, version = ref.partition("@")
        ok = host not in self.failing.get(ref, frozenset())
        output = "" if ok else "GET http://127.0.0.1:8080/ready: connection refused"
        body: dict[str, Any] = {
            "host": host, "image": image, "version": version, "assigned": version,
            "agent_version": "test-double", "boot_id": f"boot-{host}-{version}",
            "state": "running" if ok else "failed",
            "health": {"ok": ok, "checks": [{"name": "app-ready", "ok": ok, "output": output}]},
        }  # fmt: skip
        if before is not None:
            body["last_swap"] = {
                "method": "kexec", "from": before, "to": ref, "downtime_s": self.swap_seconds,
                "result": "ok" if ok else "failed",
                "reason": "" if ok else f"health check app-ready failed: {output}",
            }  # fmt: skip
        return body

    async def _report(
        self, session: aiohttp.ClientSession, host: str, body: dict[str, Any]
    ) -> None:
        url = f"{self.server_url}/nodes/{host}/report"
        async with session.post(url, json=body) as answer:
            if answer.status != 200:
                raise ValueError(f"POST {url}: HTTP {answer.status} {await answer.text()}")
        self.reported[host] = time.monotonic()
