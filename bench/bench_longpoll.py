"""Node assignments under many long-polling agents: what holding them costs, how fast they wake.

Run by hand: ``.venv/bin/python bench/bench_longpoll.py [--nodes 10000]``. A
real ``reconciler serve`` process answers a generated inventory (one git
commit, accepted as ``apply`` would) on loopback; this process plays the
agents with aiohttp: each fetches its assignment, then long-polls it with
``If-None-Match`` and ``?wait=60``. Printed: the initial fetch rate, serve's
CPU and memory while it holds every poll (next to the same figures idle), and,
after a commit that moves one rack (2,500 nodes) to another version is
accepted, the time until all of that rack's polls answered, and that the other
racks' polls are still held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import HOSTS_PER_GROUP, generate

from reconciler.accepted import AcceptedRevision, AcceptedStore, revision_of
from reconciler.inventory.sources import GitSource

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=120)


def accept(repo: Path, state: Path) -> None:
    source = GitSource(repo, "main", "")
    AcceptedStore(state).record(AcceptedRevision.of(source, revision_of(source), by="apply"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def host_names(nodes: int) -> list[str]:
    return [
        f"r{(i - 1) // HOSTS_PER_GROUP:02d}n{(i - 1) % HOSTS_PER_GROUP + 1:04d}"
        for i in range(1, nodes + 1)
    ]


async def poller(
    session: aiohttp.ClientSession,
    base: str,
    host: str,
    *,
    ready: list[int],
    woken: dict[str, float],
    ramp: asyncio.Semaphore,
) -> None:
    async with ramp, session.get(f"{base}/nodes/{host}.json") as first:  # nodes boot over time
        assert first.status == 200, (host, first.status)
        etag = first.headers["ETag"]
    ready.append(1)
    while True:
        headers = {"If-None-Match": etag}
        async with session.get(f"{base}/nodes/{host}.json?wait=60", headers=headers) as answer:
            if answer.status == 200:
                woken[host] = time.monotonic()
                return
            assert answer.status == 304, (host, answer.status)


async def drive(base: str, nodes: int, pid: int, repo: Path, state: Path) -> None:
    hosts = host_names(nodes)
    ready: list[int] = []
    woken: dict[str, float] = {}
    idle_cpu = cpu_seconds(pid)
    await asyncio.sleep(3)
    idle_cpu = (cpu_seconds(pid) - idle_cpu) / 3
    idle_rss = rss_mib(pid)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=90)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started, fetch_cpu = time.monotonic(), cpu_seconds(pid)
        ramp = asyncio.Semaphore(200)
        tasks = [
            asyncio.create_task(poller(session, base, h, ready=ready, woken=woken, ramp=ramp))
            for h in hosts
        ]
        while len(ready) < nodes:
            await asyncio.sleep(0.05)
            if time.monotonic() - started > 300:
                raise TimeoutError(f"only {len(ready)} of {nodes} first answers in 300 s")
        fetch_seconds = time.monotonic() - started
        fetch_cpu = cpu_seconds(pid) - fetch_cpu
        await asyncio.sleep(2)  # every poll is held now
        held_cpu = cpu_seconds(pid)
        await asyncio.sleep(5)
        held_cpu = (cpu_seconds(pid) - held_cpu) / 5
        held_rss = rss_mib(pid)
        rack = repo / "groups" / "rack00.yaml"
        rack.write_text(rack.read_text().replace("image: compute@1.0", "image: compute@1.1"))
        git(repo, "-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-qam", "1.1")
        # rack00's hosts move, except every hundredth: a canary already on 1.1
        moved = sum(1 for i in range(1, min(nodes, HOSTS_PER_GROUP) + 1) if i % 100)
        changed_at = time.monotonic()
        await asyncio.to_thread(accept, repo, state)
        while len(woken) < moved and time.monotonic() - changed_at < 120:
            await asyncio.sleep(0.01)
        wake_seconds = max(woken.values()) - changed_at if woken else float("nan")
        first_seconds = min(woken.values()) - changed_at if woken else float("nan")
        await asyncio.sleep(1)
        still_held = sum(1 for task in tasks if not task.done())
        shutdown_at = time.monotonic()
        os.kill(pid, signal.SIGTERM)  # while it holds the other polls
        while Path(f"/proc/{pid}").exists() and time.monotonic() - shutdown_at < 90:
            await asyncio.sleep(0.05)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        shutdown_seconds = time.monotonic() - shutdown_at
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(f"nodes long-polling:               {nodes}")
    print(f"first fetch of all:               {fetch_seconds:.2f} s "
          f"({nodes / fetch_seconds:,.0f} requests/s; serve's CPU: "
          f"{fetch_cpu * 1e6 / nodes:.0f} us per request, the rest is this client)")  # fmt: skip
    print(f"serve CPU idle / holding all:     {idle_cpu * 100:.1f}% / {held_cpu * 100:.1f}% "
          "of one core")  # fmt: skip
    print(f"serve RSS idle / holding all:     {idle_rss:.0f} MiB / {held_rss:.0f} MiB "
          f"({(held_rss - idle_rss) * 1024 / nodes:.1f} KiB per held poll)")  # fmt: skip
    print(f"rack moved ({moved} nodes) woken: {len(woken)}: first {first_seconds:.2f} s, last "
          f"{wake_seconds:.2f} s after the new revision was accepted (the first includes "
          "serve's compile of it)")  # fmt: skip
    print(f"polls still held afterwards:      {still_held} (expected {nodes - moved})")
    print(f"serve exits on SIGTERM in:        {shutdown_seconds:.2f} s while holding them")


@contextmanager
def loopback_serve(
    work: Path,
    nodes: int,
    *,
    refresh: float = 0.5,
    prepare: Callable[[Path], None] | None = None,
    serve_settings: str = "",
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path, Path]]:
    """A generated site of ``nodes`` hosts in git, accepted, served on a loopback port.

    Yields the base URL, the serve process, the repository and the state dir;
    ``prepare(state)`` runs before serve starts; ``serve_settings``: more lines of
    its [serve] table. Shared with bench/rollout_polls.py and bench_reports_feed.py.
    """
    repo = generate(work / "inventory", nodes)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=60)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-qm", "1.0")
    state = work / "state"
    accept(repo, state)
    if prepare is not None:
        prepare(state)
    port = free_port()
    config = work / "reconciler.toml"
    config.write_text(
        f'state_dir = "{state}"\n[source]\nrepo = "{repo}"\nrev = "main"\n'
        f'[boot]\nhttp_url = "http://127.0.0.1:{port}"\ntftp_server = "127.0.0.1"\n'
        f'[serve]\nlisten = "127.0.0.1"\nport = {port}\nrefresh_seconds = {refresh}\n'
        # every poll holds a connection, and here they all come from one address
        f"max_connections = {nodes + 100}\n"
        f"max_connections_per_address = {nodes + 100}\n{serve_settings}"
    )
    with (work / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-c", "from reconciler.cli import main; main()", "serve",
             "-c", str(config)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((work / "serve.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", serve, repo, state
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-longpoll-") as tmp,
        loopback_serve(Path(tmp), args.nodes) as (base, serve, repo, state),
    ):
        asyncio.run(drive(base, args.nodes, serve.pid, repo, state))


if __name__ == "__main__":
    main()
