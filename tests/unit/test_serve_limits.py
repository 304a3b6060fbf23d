"""``reconciler serve`` under load, on a real loopback server: connection caps, header and
body deadlines, boot answers while ``/register`` is flooded, and the systemd units' limits.

The server runs exactly as ``serve`` runs it (``start_guarded``); clients are
raw sockets and aiohttp sessions on 127.0.0.1. Loops are bounded by request
counts; the time limits are generous hang guards, not performance claims.
"""

from __future__ import annotations

import asyncio
import configparser
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from reconciler.server.app import build_app, connection_limits
from reconciler.server.limits import ConnectionGuard, ConnectionLimits, start_guarded
from reconciler.server.settings import ServeSettings
from reconciler.watch.http import BackgroundServer, watch_routes
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.status import StatusStore
from tests.unit.serve_site import accept, make_config, make_repo

T = TypeVar("T")
KNOWN_MAC = "52:54:00:12:34:0a"  # node010 in serve_site's inventory
UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def run_served(
    tmp_path: Path, scenario: Callable[[str, ConnectionGuard], Awaitable[T]], **settings: Any
) -> T:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    accept(config)
    serve = ServeSettings(audit_log=tmp_path / "audit.jsonl", refresh_seconds=0, **settings)

    async def main() -> T:
        app = build_app(config, serve)
        runner, guard, port = await start_guarded(
            app, host="127.0.0.1", port=0, limits=connection_limits(serve), shutdown_timeout=2
        )
        try:
            return await asyncio.wait_for(scenario(f"127.0.0.1:{port}", guard), timeout=120)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


async def closed_by_server(reader: asyncio.StreamReader, *, within: float = 10) -> bool:
    """True when the server closes the connection (EOF) before ``within`` seconds pass."""
    try:
        return await asyncio.wait_for(reader.read(), timeout=within) == b""
    except TimeoutError:
        return False


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def test_connections_over_the_per_address_cap_are_closed(tmp_path: Path) -> None:
    async def scenario(address: str, guard: ConnectionGuard) -> None:
        host, port = address.split(":")
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(4)]
        reader, writer = await asyncio.open_connection(host, int(port))
        assert await closed_by_server(reader)  # the fifth from this address
        writer.close()
        assert guard.refused == 1 and guard.open_connections == 4
        for _, idle_writer in idle[:2]:
            idle_writer.close()
            await idle_writer.wait_closed()
        for _ in range(100):  # until the server saw them go (bounded)
            if guard.open_connections == 2:
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as session:
            assert (await get(session, f"http://{address}/healthz"))[0] == 200
        for _, idle_writer in idle[2:]:
            idle_writer.close()

    run_served(tmp_path, scenario, max_connections_per_address=4, header_timeout=60)


def test_connections_over_the_total_cap_are_closed(tmp_path: Path) -> None:
    async def scenario(address: str, guard: ConnectionGuard) -> None:
        host, port = address.split(":")
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
        reader, writer = await asyncio.open_connection(host, int(port))
        assert await closed_by_server(reader)
        writer.close()
        for _, idle_writer in idle:
            idle_writer.close()
        assert guard.refused == 1

    run_served(tmp_path, scenario, max_connections=3, header_timeout=60)


def test_a_slow_request_head_is_cut_off(tmp_path: Path) -> None:
    async def scenario(address: str, guard: ConnectionGuard) -> None:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        await writer.drain()
        assert await closed_by_server(reader)
        writer.close()
        assert guard.timed_out == 1
        async with aiohttp.ClientSession() as session:  # a prompt client is served
            assert (await get(session, f"http://{address}/healthz"))[0] == 200

    run_served(tmp_path, scenario, header_timeout=0.5)


def test_a_keep_alive_connection_dribbling_its_next_request_is_cut_off(tmp_path: Path) -> None:
    async def scenario(address: str, guard: ConnectionGuard) -> None:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), timeout=10)).startswith(b"HTTP/1.1 200")
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            await asyncio.sleep(0.1)  # one byte every 0.1 s keeps aiohttp's keep-alive going
            if reader.at_eof() or writer.is_closing():
                closed = True
                break
            try:
                if await asyncio.wait_for(reader.read(65536), timeout=0.001) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        writer.close()
        assert closed  # after keepalive_timeout, not after the 20 s the dribble would take

    run_served(tmp_path, scenario, keepalive_timeout=0.5, header_timeout=0.5)


def test_a_slow_registration_body_is_a_408(tmp_path: Path) -> None:
    async def scenario(address: str, guard: ConnectionGuard) -> tuple[bytes, float]:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nmac=52:54"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        return answer, 0.0

    answer, _ = run_served(tmp_path, scenario, body_timeout=0.5)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_boot_answers_keep_coming_while_register_is_flooded(tmp_path: Path) -> None:
    workers, per_worker = 32, 60

    async def scenario(address: str, guard: ConnectionGuard) -> dict[str, Any]:
        base = f"http://{address}"
        flood_statuses: list[int] = []
        done = asyncio.Event()

        async def flood(session: aiohttp.ClientSession, worker: int) -> None:
            for i in range(per_worker):
                if done.is_set():
                    return
                data = {"mac": f"52:54:00:77:{worker:02x}:{i:02x}"}
                async with session.post(f"{base}/register", data=data) as response:
                    flood_statuses.append(response.status)
                    await response.read()

        boots: list[tuple[int, bool, float]] = []

        async def boot(session: aiohttp.ClientSession) -> None:
            while len(flood_statuses) < workers:  # the flood is under way
                await asyncio.sleep(0.01)
            for _ in range(20):
                started = time.monotonic()
                status, text = await get(session, f"{base}/boot/{KNOWN_MAC}")
                boots.append((status, "hostname=node010" in text, time.monotonic() - started))
            done.set()

        connector = aiohttp.TCPConnector(limit=workers)
        async with (
            aiohttp.ClientSession(connector=connector) as flooding,
            aiohttp.ClientSession() as booting,
        ):
            await asyncio.gather(boot(booting), *(flood(flooding, w) for w in range(workers)))
        return {"boots": boots, "flood": flood_statuses}

    result = run_served(tmp_path, scenario)
    boots, flood = result["boots"], result["flood"]
    assert len(flood) >= workers and set(flood) <= {403, 429}, set(flood)
    assert [b[:2] for b in boots] == [(200, True)] * 20
    assert max(b[2] for b in boots) < 5.0  # generous: a hang guard, not a benchmark


def test_systemd_units_bound_files_and_restart() -> None:
    default_cap = ServeSettings().max_connections
    for unit in ("reconciler-serve.service", "reconciler-watch.service"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(UNITS / unit)
        service = parser["Service"]
        assert int(service["LimitNOFILE"]) >= 4 * default_cap, unit
        assert service["Restart"] in ("on-failure", "always"), unit
        assert service["RestartSec"], unit
        assert parser["Unit"]["StartLimitIntervalSec"] == "0", unit  # never give up restarting


def test_watch_listen_has_the_same_connection_caps(tmp_path: Path) -> None:
    routes = watch_routes(
        store=StatusStore(tmp_path), metrics=WatchMetrics(), trigger=lambda _: None, secret=None
    )
    limits = ConnectionLimits(max_per_address=2, header_timeout=60)
    server = BackgroundServer(routes, host="127.0.0.1", port=0, limits=limits)
    server.start()

    async def scenario() -> bool:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        closed = await closed_by_server(reader)
        for _, idle_writer in [*idle, (reader, writer)]:
            idle_writer.close()
        return closed

    try:
        assert asyncio.run(scenario())
    finally:
        server.stop()
