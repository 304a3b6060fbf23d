"""Boot answers of ``reconciler serve`` while ``/register`` is flooded, against idle.

Run by hand: ``.venv/bin/python bench/bench_serve_flood.py [--hosts 10000]``.
``reconciler serve`` runs in its own process on loopback, from a git inventory
of generated hosts with an accepted revision. The bench times GET /boot/<mac>
sequentially with nothing else going on, then again while ``--workers``
clients in another process POST /register as fast as they can (refused:
loopback is in no group's subnet, and the rate limits bite). Prints the medians, the 99th
percentiles, the ratio, and how many registration requests the flood made.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate

from reconciler.accepted import AcceptedRevision, AcceptedStore, revision_of
from reconciler.inventory.sources import GitSource

RECONCILER = Path(sys.executable).parent / "reconciler"


def site(root: Path, hosts: int, port: int) -> Path:
    """A git inventory with an accepted revision and a config serving it on 127.0.0.1:port."""
    repo = generate(root / "inventory", hosts)
    for argv in (["init", "-q", "-b", "main"], ["add", "."]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@e", "commit", "-qm", "b"],
        check=True,
    )
    source = GitSource(repo, "main", "")
    AcceptedStore(root / "state").record(
        AcceptedRevision.of(source, revision_of(source), by="apply")
    )
    config = root / "reconciler.toml"
    config.write_text(
        f'state_dir = "state"\n[source]\nrepo = "inventory"\nrev = "main"\n'
        f'[serve]\nlisten = "127.0.0.1"\nport = {port}\n'
    )
    return config


def first_mac(root: Path) -> str:
    for line in sorted((root / "inventory" / "groups").glob("*.yaml"))[0].read_text().splitlines():
        if "mac:" in line:
            return line.split('"')[1]
    raise SystemExit("no host in the generated inventory")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


FLOOD = """
import asyncio, sys, aiohttp
base, workers, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
count = 0
async def flood(session, worker, deadline):
    global count
    for i in range(1_000_000):
        if asyncio.get_running_loop().time() > deadline:
            return
        data = {"mac": f"52:54:00:99:{worker:02x}:{i % 256:02x}"}
        async with session.post(base + "/register", data=data) as response:
            await response.read()
        count += 1
async def main():
    deadline = asyncio.get_running_loop().time() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as s:
        await asyncio.gather(*(flood(s, w, deadline) for w in range(workers)))
    print(count)
asyncio.run(main())
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def boot_times(base: str, mac: str, boots: int) -> list[float]:
    async def run() -> list[float]:
        times = []
        async with aiohttp.ClientSession() as session:
            for _ in range(boots):
                started = time.perf_counter()
                async with session.get(f"{base}/boot/{mac}") as response:
                    assert response.status == 200, response.status
                    await response.read()
                times.append(time.perf_counter() - started)
        return times

    return asyncio.run(run())


def wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("serve did not come up")


def measure(root: Path, *, hosts: int, boots: int, workers: int, seconds: float) -> None:
    port = free_port()
    config, base = site(root, hosts, port), f"http://127.0.0.1:{port}"
    mac = first_mac(root)
    server = subprocess.Popen(
        [str(RECONCILER), "--log-level", "error", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(base)
        idle = boot_times(base, mac, boots)
        flood = subprocess.Popen(
            [sys.executable, "-c", FLOOD, base, str(workers), str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)  # let the flood build up
        busy = boot_times(base, mac, boots)
        flooded = int(flood.communicate(timeout=seconds + 120)[0].strip() or 0)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{hosts} hosts, serve in its own process, flood of {workers} clients in another")
    print(f"{'':22}{'median ms':>12}{'p99 ms':>12}")
    for name, times in (("boot, idle", idle), ("boot, flooded", busy)):
        median, p99 = statistics.median(times) * 1000, percentile(times, 0.99) * 1000
        print(f"{name:22}{median:12.2f}{p99:12.2f}")
    print(
        f"ratio (flooded / idle median): {statistics.median(busy) / statistics.median(idle):.1f}x"
    )
    print(f"registration requests refused during the flood: {flooded} ({flooded / seconds:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--boots", type=int, default=300)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the flood lasts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure(
            Path(folder),
            hosts=args.hosts,
            boots=args.boots,
            workers=args.workers,
            seconds=args.seconds,
        )


if __name__ == "__main__":
    main()
