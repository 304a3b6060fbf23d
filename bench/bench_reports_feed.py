"""GET /reports while a rollout waits: a full pull each pass vs a conditional one (ETag, 304).

Run by hand: ``.venv/bin/python bench/bench_reports_feed.py [--nodes 10000] [--pulls 20]``.
A real ``reconciler serve`` process on loopback answers a generated inventory
and holds one report per node in its state dir (a typical agent report, about
half a kB), with ``GET /reports`` on (``[serve] reports_token_file``). The
operator's puller (``PulledReports``, what each rollout pass calls) then pulls
``--pulls`` times, as passes do every 5 s while a wave waits and no node
reported: first without an ETag (every answer the whole body, as before), then
sending the last ETag (``304 Not Modified``). Printed per way: the median time
of one pull, the bytes of one answer's body, serve's CPU time per pull, and the
ratios. A node's heartbeat is a new report: with every node reporting every
300 s the answer changes about every 300 s / nodes, and each pull after that is
a full one again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench_longpoll import cpu_seconds, host_names, loopback_serve

from reconciler.server.nodereports import normalize_report
from reconciler.watch.pulledreports import PulledReports

TOKEN = "bench-token"


def agent_report(host: str, at: float) -> dict[str, object]:
    """What serve stores for a node on compute@1.0 that reported healthy at ``at``."""
    report = normalize_report(host, {
        "host": host, "state": "running", "image": "compute", "version": "1.0",
        "kernel_sha256": "ab" * 32, "rootfs_sha256": "cd" * 32, "assigned": "compute@1.0",
        "boot_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "agent_version": "1",
        "health": {"ok": True, "checks": [{"name": "ping", "ok": True, "output": "ok"}]},
        "last_swap": {"method": "switch-root", "from": "compute@0.9", "to": "compute@1.0",
                      "downtime_s": 2.4, "result": "ok", "reason": ""},
    })  # fmt: skip
    return {**report, "received_at": round(at, 3), "remote": "10.0.0.1"}


def write_reports(state: Path, nodes: int) -> None:
    folder = state / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for host in host_names(nodes):
        (folder / f"{host}.json").write_text(json.dumps(agent_report(host, now), sort_keys=True))


def timed_pulls(pull: Callable[[], object], *, pulls: int, pid: int) -> tuple[float, float]:
    """The median wall time of one pull, and serve's CPU seconds per pull."""
    times = []
    cpu = cpu_seconds(pid)
    for _ in range(pulls):
        start = time.perf_counter()
        pull()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (cpu_seconds(pid) - cpu) / pulls


def body_bytes(url: str, token: Path, etag: str | None) -> tuple[int, int, str]:
    """One raw GET /reports: its status, the bytes of its body, its ETag."""
    headers = {"Authorization": f"Bearer {token.read_text().strip()}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(f"{url}/reports", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, len(answer.read()), answer.headers.get("ETag", "")
    except urllib.error.HTTPError as error:  # 304 Not Modified
        return error.code, len(error.read()), error.headers.get("ETag", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--pulls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reports-feed-") as tmp:
        work = Path(tmp)
        token = work / "reports-token"
        token.write_text(TOKEN + "\n")
        with loopback_serve(
            work, args.nodes, prepare=lambda state: write_reports(state, args.nodes),
            serve_settings=f'reports_token_file = "{token}"\n',
        ) as (url, serve, _, _):  # fmt: skip
            status, full, etag = body_bytes(url, token, None)  # also: serve loads the reports
            assert status == 200 and etag, (status, etag)
            status, empty, _ = body_bytes(url, token, etag)
            assert status == 304, status

            def fresh_pull() -> object:  # no ETag to send: the whole body each time
                return PulledReports(url, token_file=token, timeout=60)()

            puller = PulledReports(url, token_file=token, timeout=60)
            first = puller()
            assert len(first) == args.nodes, len(first)

            def next_pass() -> object:
                puller.begin_pass()
                return puller()

            full_s, full_cpu = timed_pulls(fresh_pull, pulls=args.pulls, pid=serve.pid)
            cond_s, cond_cpu = timed_pulls(next_pass, pulls=args.pulls, pid=serve.pid)
            assert puller() is first  # every conditional pull was a 304
    print(f"GET /reports, {args.nodes} node reports ({full / args.nodes:.0f} B each), "
          f"{args.pulls} pulls each way (medians):")  # fmt: skip
    print(f"  full pull (no ETag):   {full_s * 1000:8.1f} ms  {full:>10,} B body  "
          f"serve CPU {full_cpu * 1000:7.1f} ms/pull")  # fmt: skip
    print(f"  conditional (304):     {cond_s * 1000:8.1f} ms  {empty:>10,} B body  "
          f"serve CPU {cond_cpu * 1000:7.1f} ms/pull")  # fmt: skip
    print(f"  ratio full/conditional: time {full_s / cond_s:.0f}x, "
          f"serve CPU {full_cpu / max(cond_cpu, 1e-4):.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
