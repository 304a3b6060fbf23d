"""Operator benchmark: Site created -> Ready and commit -> lastAppliedRevision, beside watch.

Run by hand: ``.venv/bin/python bench/bench_operator.py [--hosts 1000 10000] [--commits 10]
[--repeat 2]`` (the machine's load moves single runs by tens of percent: repeat).

For each size, one generated inventory (bench/generate.py) in a git repository
and the file targets (dhcp-file, dns-zonefile, bootfiles, node-images):

- ``reconciler watch``'s loop (in this process) from start to the first revision
  applied, then the median time from a one-host commit (made at a random point
  of the fetch cycle) to the revision applied;
- the operator (``reconciler operator run`` in a process of its own, started
  and idle first; the stand-in apiserver of tests/integration/kube_apiserver.py
  on loopback, in another process) from Site created to Ready, then the same
  commits to ``status.lastAppliedRevision``;
- the size of the Site's state in ConfigMaps (compressed, in parts).

The ratio operator/watch is the operator's overhead (goal: under 20%). Then
two ``reconciler operator run`` replicas with kopf peering: the active one is
SIGKILLed as a commit lands, and the time until the standby applied it is the
takeover time (bounded below by ``--peering-lifetime``).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from bench.generate import generate  # noqa: E402
from reconciler.config import RuntimeConfig  # noqa: E402
from reconciler.operator.kube import Credentials, KubeClient  # noqa: E402
from reconciler.sandbox.site import git  # noqa: E402
from reconciler.watch.service import build_loop  # noqa: E402

NS = "bench"
POLL = 0.2  # seconds between fetches, for watch and for the Site
SITES = f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/sites"
PEERING_LIFETIME = 3  # seconds a replica's peering record counts after its last renewal


def targets(out: Path) -> list[dict[str, Any]]:
    return [
        {"name": "dhcp", "type": "dhcp-file", "settings": {"path": str(out / "dhcp.conf")}},
        {"name": "dns", "type": "dns-zonefile",
         "settings": {"directory": str(out / "zones"), "mname": "ns1.bench.example.",
                      "rname": "hostmaster.bench.example.", "nameservers": ["ns1.bench.example."]}},
        {"name": "boot", "type": "bootfiles", "settings": {"directory": str(out / "tftp")}},
        {"name": "images", "type": "node-images", "settings": {"directory": str(out / "http")}},
    ]  # fmt: skip


def make_repo(root: Path, hosts: int) -> Path:
    repo = generate(root / "repo", hosts)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "generated")
    return repo


def one_host_commit(repo: Path, round_: int) -> str:
    """One more host in the first group (at 10k hosts the groups are full up to 2500).

    First a pause of random length, so that the commit lands at a random point of
    the fetch cycle, as a push does. Committing the moment the previous revision
    shows as applied would tie the wait for the next fetch to how fast this
    script sees the status (a file read for watch, an API call for the
    operator): a few milliseconds more or less then decide between catching the
    next fetch and waiting a whole interval, whatever the reconciler costs.
    """
    time.sleep(2 * POLL + random.uniform(0, POLL))
    group = next((repo / "groups").glob("*.yaml"))
    group.write_text(group.read_text() + f"  - index: {3000 + round_}\n"
                     f'    mac: "52:54:ff:00:{round_ >> 8:02x}:{round_ & 0xFF:02x}"\n')  # fmt: skip
    git(repo, "commit", "-qam", f"host {round_}")
    return git(repo, "rev-parse", "HEAD")


def wait(predicate: Callable[[], bool], timeout: float = 600) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError("not reached")
        time.sleep(0.01)
    return time.monotonic() - started


def bench_watch(root: Path, hosts: int, commits: int) -> dict[str, float]:
    repo = make_repo(root, hosts)
    config = RuntimeConfig.model_validate(
        {
            "source": {"repo": repo, "rev": "main"},
            "state_dir": root / "state",
            "targets": {
                t["name"]: {"type": t["type"], **t["settings"]} for t in targets(root / "out")
            },
            "base_dir": root,
            "max_change_fraction": 1.0,
            # The same source as the Site's: fetched from the URL every 0.2 s.
            "watch": {"remote": str(repo), "poll_interval": POLL},
        }
    )
    loop = build_loop(config, config.watch)
    thread = threading.Thread(target=loop.run, daemon=True)
    started = time.monotonic()
    thread.start()
    head = git(repo, "rev-parse", "HEAD")
    wait(lambda: loop.store.load().accepted_revision == head)
    first = time.monotonic() - started
    latencies = []
    for round_ in range(commits):
        commit = one_host_commit(repo, round_)
        latencies.append(wait(lambda c=commit: loop.store.load().accepted_revision == c))
    loop.stop()
    thread.join(timeout=60)
    return {"ready": first, "commit": statistics.median(latencies)}


APISERVER = """
import sys, time
sys.path.insert(0, {folder!r})
from kube_apiserver import RunningApiserver
api = RunningApiserver()
api.thread.start()
api.ready.wait()
print(api.url, flush=True)
time.sleep(3600)
"""


@contextmanager
def stand_in_apiserver(root: Path) -> Iterator[str]:
    """The stand-in apiserver in a process of its own, as a real one would be; its URL."""
    code = APISERVER.format(folder=str(ROOT / "tests" / "integration"))
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        (root / "kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: k\n"
            f"clusters: [{{name: k, cluster: {{server: '{url}'}}}}]\n"
            "users: [{name: k, user: {token: t}}]\n"
            "contexts: [{name: k, context: {cluster: k, user: k}}]\n"
        )
        client = KubeClient(Credentials(server=url))
        client.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        )
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)


def create_site(client: KubeClient, repo: Path, out: Path) -> None:
    client.create(SITES, {
        "apiVersion": "reconciler.dev/v1alpha1", "kind": "Site",
        "metadata": {"name": "lab", "namespace": NS},
        "spec": {"source": {"url": str(repo), "ref": "main"}, "interval": POLL,
                 "maxChangeFraction": 1.0, "targets": targets(out)},
    })  # fmt: skip


def applied_check(client: KubeClient) -> Callable[[str], bool]:
    def applied(commit: str) -> bool:
        site = client.get(f"{SITES}/lab") or {}
        return (site.get("status") or {}).get("lastAppliedRevision") == commit

    return applied


def bench_operator(root: Path, hosts: int, commits: int) -> dict[str, float]:
    repo = make_repo(root, hosts)
    with stand_in_apiserver(root) as url:
        return _operator_run(root, repo, url, commits)


def replica(root: Path, priority: int, *, standalone: bool = False) -> subprocess.Popen[bytes]:
    """``reconciler operator run`` (with peering unless ``standalone``), as a pod runs it.

    A process of its own, as in a cluster: the benchmark's polling of the
    apiserver does not share its interpreter lock.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": str(root / "kubeconfig")}
    # Warnings only: watch runs in this process without a log handler, so it does not
    # format a line per change applied either (4,000 lines at 1k hosts).
    command = [sys.executable, "-c", "from reconciler.cli import main; main()",
               "--log-level", "warning", "operator", "run", "--namespace", NS,
               "--work-dir", str(root / f"work-{priority}"),
               "--priority", str(priority), "--peering-lifetime", str(PEERING_LIFETIME),
               "--liveness", f"http://127.0.0.1:{18000 + priority}/healthz"]  # fmt: skip
    if standalone:
        command.append("--standalone")
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )


def alive(priority: int) -> bool:
    """The replica answers its liveness probe: kopf started and watches the namespace."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{18000 + priority}/healthz", timeout=1):
            return True
    except OSError:
        return False


def bench_takeover(root: Path, hosts: int) -> float:
    """Two ``reconciler operator run`` processes; SIGKILL the active one as a commit lands.

    The time from the SIGKILL to the standby having applied that commit: at
    least the peering lifetime (how long a dead replica's record still counts).
    """
    repo = make_repo(root, hosts)
    with stand_in_apiserver(root) as url:
        client = KubeClient(Credentials(server=url))
        client.create(f"/apis/kopf.dev/v1/namespaces/{NS}/kopfpeerings", {
            "apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
            "metadata": {"name": "reconciler-operator", "namespace": NS}})  # fmt: skip
        replicas = [replica(root, priority) for priority in (100, 50)]
        try:
            applied = applied_check(client)
            create_site(client, repo, root / "out")
            head = git(repo, "rev-parse", "HEAD")
            wait(lambda: applied(head))
            commit = one_host_commit(repo, 0)
            replicas[0].send_signal(signal.SIGKILL)
            return wait(lambda: applied(commit))
        finally:
            for process in replicas:
                process.kill()
                process.wait(timeout=10)


def _operator_run(root: Path, repo: Path, url: str, commits: int) -> dict[str, float]:
    client = KubeClient(Credentials(server=url))
    applied = applied_check(client)
    operator = replica(root, 100, standalone=True)
    try:
        wait(lambda: alive(100), timeout=120)
        started = time.monotonic()
        create_site(client, repo, root / "out")
        head = git(repo, "rev-parse", "HEAD")
        wait(lambda: applied(head))
        first = time.monotonic() - started
        latencies = []
        for round_ in range(commits):
            commit = one_host_commit(repo, round_)
            latencies.append(wait(lambda c=commit: applied(c)))
        maps = client.list(f"/api/v1/namespaces/{NS}/configmaps", labels="reconciler.dev/site=lab")
        head = next(m for m in maps if m["metadata"]["name"] == "site-lab-state")
        current = f"site-lab-state-{head['data']['digest']}-"  # older parts may not be gone yet
        parts = [m for m in maps if m["metadata"]["name"].startswith(current)]
        size = sum(len(m["binaryData"]["part"]) for m in parts)
        raw = sum(p.stat().st_size for p in (root / "work-100" / NS / "lab" / "state").rglob("*")
                  if p.is_file() and "watch" not in p.parts)  # fmt: skip
    finally:
        operator.kill()
        operator.wait(timeout=10)
    return {
        "ready": first,
        "commit": statistics.median(latencies),
        "state": size,
        "raw": raw,
        "parts": len(parts),
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, medians shown")
    args = parser.parse_args()
    rows = []
    for hosts in args.hosts:
        runs: dict[str, list[dict[str, float]]] = {"watch": [], "operator": []}
        for _ in range(args.repeat):  # alternated, so a load spike hits both alike
            with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
                runs["watch"].append(bench_watch(Path(first), hosts, args.commits))
                runs["operator"].append(bench_operator(Path(second), hosts, args.commits))
        watch, operator = median_of(runs["watch"]), median_of(runs["operator"])
        with tempfile.TemporaryDirectory() as third:
            takeover = bench_takeover(Path(third), hosts)
        rows.append((hosts, watch, operator, takeover))
        print(f"{hosts} hosts done", file=sys.stderr)
    print(
        f"Site created -> Ready and commit -> lastAppliedRevision (median of {args.commits} "
        f"commits; medians of {args.repeat} run(s) each, alternated),"
    )
    print(f"operator vs `reconciler watch` on the same inventory and source (fetch every {POLL} s)")
    print(
        "  hosts | ready: watch operator ratio | commit: watch operator ratio "
        "| takeover | state: raw -> ConfigMaps"
    )
    for hosts, watch, operator, takeover in rows:
        print(
            f"{hosts:>7} | {watch['ready']:9.2f}s {operator['ready']:7.2f}s "
            f"{operator['ready'] / watch['ready']:5.2f} | {watch['commit']:9.3f}s "
            f"{operator['commit']:7.3f}s {operator['commit'] / watch['commit']:5.2f} "
            f"| {takeover:7.2f}s | {operator['raw'] / 1e6:.2f} MB -> "
            f"{operator['state'] / 1e6:.2f} MB base64 in {operator['parts']:.0f} part(s)"
        )
    print(f"takeover: SIGKILL of the active replica -> the standby applied the next commit "
          f"(peering lifetime {PEERING_LIFETIME} s)")  # fmt: skip


if __name__ == "__main__":
    main()
