"""Serve's load from agents' polls during a rollout: long polls with ETag vs a poll a second.

Used by ``bench/bench_rollout.py`` (``--agents``, ``--seconds``). One real
``reconciler serve`` process on loopback answers a generated inventory; this
process plays the agents with aiohttp. While they poll, a wave of nodes moves
to compute@1.1 every few seconds: the bench rewrites ``rollouts/assignments.json``
as the watch loop does, and serve recompiles. Two ways of polling are measured
one after the other against the same serve:

- ``long poll``: what the agent does: ``GET /nodes/<host>.json?wait=60`` with
  ``If-None-Match``; serve holds the request until the assignment changes.
- ``plain``: ``GET /nodes/<host>.json`` every second, no ETag, full body each time.

Only polls: reports must pass serve's neighbour guard, which loopback cannot.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from bench_longpoll import cpu_seconds, host_names, loopback_serve

WAVES = (0.01, 0.1, 0.5, 1.0)  # cumulative share of the moving nodes, as [1%, 10%, 50%, 100%]
REFRESH_SECONDS = 0.5  # serve's refresh_seconds: how often it looks at the assignments


@dataclass
class Tally:
    requests: int = 0
    bodies: int = 0
    seen: dict[str, float] = field(default_factory=dict)  # host -> when it saw compute@1.1


async def long_poller(session: aiohttp.ClientSession, url: str, host: str, tally: Tally) -> None:
    etag: str | None = None
    while True:
        headers = {"If-None-Match": etag} if etag else {}
        async with session.get(url + ("?wait=60" if etag else ""), headers=headers) as answer:
            tally.requests += 1
            if answer.status == 200:
                body = await answer.json()
                etag = answer.headers["ETag"]
                tally.bodies += 1
                if body["version"] == "1.1" and host not in tally.seen:
                    tally.seen[host] = time.monotonic()


async def plain_poller(session: aiohttp.ClientSession, url: str, host: str, tally: Tally) -> None:
    await asyncio.sleep(random.uniform(0, 1))  # agents do not all start on the same tick
    while True:
        started = time.monotonic()
        async with session.get(url) as answer:
            body = await answer.json()
            tally.requests += 1
            tally.bodies += 1
            if body["version"] == "1.1" and host not in tally.seen:
                tally.seen[host] = time.monotonic()
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def write_assignments(state: Path, movers: list[str], moved: int) -> None:
    """The rollout's assignments as the watch loop writes them (temporary file, rename)."""
    folder = state / "rollouts"
    folder.mkdir(parents=True, exist_ok=True)
    body = {h: "compute@1.1" if i < moved else "compute@1.0" for i, h in enumerate(movers)}
    temporary = folder / ".assignments.json.tmp"
    temporary.write_text(json.dumps(body, sort_keys=True))
    temporary.replace(folder / "assignments.json")


async def measure(
    mode: str,
    base: str,
    pid: int,
    state: Path,
    *,
    hosts: list[str],
    movers: list[str],
    seconds: float,
) -> dict[str, float]:
    """Poll for ``seconds`` while the waves move; requests/s, serve CPU, notice latency."""
    write_assignments(state, movers, 0)
    await asyncio.sleep(REFRESH_SECONDS * 3)
    tally = Tally()
    poll = long_poller if mode == "long poll" else plain_poller
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=90)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [
            asyncio.create_task(poll(session, f"{base}/nodes/{h}.json", h, tally)) for h in hosts
        ]
        deadline = time.monotonic() + 120
        while tally.bodies < len(hosts):  # every agent has its assignment once
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mode}: {tally.bodies} of {len(hosts)} first answers")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # long polls are held now; plain polls are spread over a second
        requests, cpu, began = tally.requests, cpu_seconds(pid), time.monotonic()
        latencies = []
        for index, share in enumerate(WAVES):
            moved = max(1, round(len(movers) * share))
            written = time.monotonic()
            write_assignments(state, movers, moved)
            wave_end = began + seconds * (index + 1) / len(WAVES)
            while time.monotonic() < wave_end:
                await asyncio.sleep(0.05)
            wave = movers[:moved]
            if all(h in tally.seen for h in wave):
                latencies.append(max(tally.seen[h] for h in wave) - written)
            else:
                latencies.append(float("nan"))
        elapsed = time.monotonic() - began
        requests, cpu = tally.requests - requests, cpu_seconds(pid) - cpu
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "rate": requests / elapsed,
        "cpu": cpu / elapsed,
        "cpu_per_request_us": cpu * 1e6 / max(requests, 1),
        "notice_max": max(latencies),
        "seen": len(tally.seen),
    }


def print_serve_load(agents: int, seconds: float) -> None:
    """Start serve on loopback, measure both ways of polling, print them side by side."""
    every = host_names(agents)
    movers = [h for i, h in enumerate(every, start=1) if i % 100]  # not the canaries
    with (
        tempfile.TemporaryDirectory(prefix="bench-rollout-polls-") as tmp,
        loopback_serve(
            Path(tmp),
            agents,
            refresh=REFRESH_SECONDS,
            prepare=lambda state: write_assignments(state, movers, 0),
        ) as (base, serve, _repo, state),
    ):
        figures = {
            mode: asyncio.run(
                measure(mode, base, serve.pid, state, hosts=every, movers=movers, seconds=seconds)
            )
            for mode in ("long poll", "plain")
        }
    print(
        f"serve's load from {agents} agents' polls, {seconds:.0f} s each, while 4 waves move "
        f"{len(movers)} nodes (polls only: reports need the neighbour guard, not on loopback)"
    )
    print(f"  (plain polling offers {agents:,} requests/s; fewer means this client lagged)")
    print(f"{'':34}{'long poll + ETag':>18}{'plain, every 1 s':>18}{'ratio':>8}")
    rows = (
        ("requests/s", "rate", "{:,.0f}"),
        ("serve CPU, % of one core", "cpu", "{:.1%}"),
        ("serve CPU per request, us", "cpu_per_request_us", "{:,.0f}"),
        ("slowest wave seen by all, s", "notice_max", "{:.2f}"),
    )
    for label, key, form in rows:
        long, plain = figures["long poll"][key], figures["plain"][key]
        ratio = f"x{plain / long:.1f}" if long else ""
        print(f"  {label:32}{form.format(long):>18}{form.format(plain):>18}{ratio:>8}")
