"""Operator benchmark: Site created -> Ready and commit -> lastAppliedRevision, beside watch.

Run by hand: ``.venv/bin/python bench/bench_operator.py [--hosts 1000 10000] [--commits 12]
[--repeat 1] [--baseline DIR] [--no-takeover]`` (``--repeat``: fresh setups, their
commits pooled; Ready is the median of the setups').

For each size, one generated inventory (bench/generate.py), one copy of its git
repository per contender, and the file targets (dhcp-file, dns-zonefile,
bootfiles, node-images). The contenders run side by side, each fetching its
own repository every 0.2 s:

- ``reconciler watch``'s loop (in this process);
- the operator: ``reconciler operator run`` in a process of its own, and the
  stand-in apiserver of tests/integration/kube_apiserver.py in another, on loopback;
- with ``--baseline DIR``, the operator again from another checkout of the
  project (``git archive main | tar -x -C DIR``), in a namespace of its own: the
  old and the new code measured in the same run, under the same load.

First Site created -> Ready (watch: loop started -> first revision applied),
one contender at a time. Then rounds of one-host commits, each made at a
random point of the fetch cycle; a round commits to every contender in turn
(the order rotates), so the machine's load (2 cores shared with others) hits
them alike. A commit counts as applied when a client could see it: watch's
status store saved a status naming it, the operator's status patch naming it
as ``lastAppliedRevision`` reached the apiserver (its request log; waiting
for it reads that log, so the polling neither loads the apiserver nor the
reconciler). Printed: medians with their spread (min-max) over all commits,
the ratio operator/watch (goal: under 1.2) as the ratio of the medians and as
the median of the per-round ratios, and the split of a pass into its steps
(bench/operator_timeline.py). Then the size of the Site's state in
ConfigMaps, and two ``reconciler operator run`` replicas with kopf peering:
the active one is SIGKILLed as a commit lands, and the time until the standby
applied it is the takeover time (bounded below by ``--peering-lifetime``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
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

from generate import generate  # noqa: E402
from operator_timeline import (  # noqa: E402
    APISERVER,
    RequestLog,
    api_steps,
    file_steps,
    summary,
)

from reconciler.config import RuntimeConfig  # noqa: E402
from reconciler.operator.kube import Credentials, KubeClient  # noqa: E402
from reconciler.sandbox.site import git  # noqa: E402
from reconciler.watch.service import build_loop  # noqa: E402

NS = "bench"
POLL = 0.2  # seconds between fetches, for watch and for the Site
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
    repo = generate(root, hosts)
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


def wait(predicate: Callable[[], object], timeout: float = 600, step: float = 0.02) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError("not reached")
        time.sleep(step)
    return time.monotonic() - started


def head_of(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def committed_at(repo: Path) -> float:
    """When the branch moved to the newest commit: from then on a fetch gets it."""
    return (repo / ".git" / "refs" / "heads" / "main").stat().st_mtime


class WatchRun:
    """``reconciler watch``'s loop in a thread of this process, on its own repository."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.name, self.repo, self.state = "watch", repo, root / "state"
        config = RuntimeConfig.model_validate(
            {
                "source": {"repo": repo, "rev": "main"},
                "state_dir": self.state,
                "targets": {
                    t["name"]: {"type": t["type"], **t["settings"]} for t in targets(root / "out")
                },
                "base_dir": root,
                "max_change_fraction": 1.0,
                # The same source as the Site's: fetched from the URL every 0.2 s.
                "watch": {"remote": str(repo), "poll_interval": POLL},
            }
        )
        self.loop = build_loop(config, config.watch)
        self.seen: dict[str, float] = {}  # commit -> when a status naming it was saved
        save = self.loop.store.save

        def noted(status: Any) -> None:
            save(status)
            if status.accepted_revision and status.accepted_revision not in self.seen:
                self.seen[status.accepted_revision] = time.time()

        self.loop.store.save = noted  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def start(self) -> float:
        """Seconds from the loop's start to the first revision applied."""
        started = time.monotonic()
        self.thread.start()
        head = head_of(self.repo)
        wait(lambda: head in self.seen)
        return time.monotonic() - started

    def visible(self, commit: str) -> float | None:
        return self.seen.get(commit)

    def steps(self, *, start: float, visible: float) -> dict[str, Any]:
        return file_steps(self.state, ref="main", start=start, visible=visible)

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(timeout=60)


class OperatorRun:
    """``reconciler operator run`` (of the checkout ``tree``) for one Site in its namespace."""

    def __init__(self, root: Path, repo: Path, *, name: str, namespace: str, api: Api, tree: Path):
        self.name, self.repo, self.namespace, self.api = name, repo, namespace, api
        self.port = 18100 + len(api.namespaces)
        api.namespaces.append(namespace)
        self.root, self.tree = root, tree
        self.state = root / "work" / namespace / "lab" / "state"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Seconds from the Site created (the operator idle first) to its Ready."""
        client = self.api.client
        client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": self.namespace}})  # fmt: skip
        self.process = replica(
            self.api.root,
            self.port,
            namespace=self.namespace,
            work=self.root / "work",
            tree=self.tree,
            standalone=True,
        )
        wait(lambda: alive(self.port), timeout=120)
        started = time.monotonic()
        create_site(client, self.repo, self.root / "out", namespace=self.namespace)
        head = head_of(self.repo)
        wait(lambda: self.visible(head))
        return time.monotonic() - started

    def visible(self, commit: str) -> float | None:
        return self.api.log.applied_at(self.namespace, commit)

    def steps(self, *, start: float, visible: float) -> dict[str, Any]:
        found = file_steps(self.state, ref="main", start=start, visible=visible)
        return {**found, **api_steps(self.api.log, self.namespace, start=start, visible=visible)}

    def state_size(self) -> dict[str, float]:
        sites = f"/api/v1/namespaces/{self.namespace}/configmaps"
        maps = self.api.client.list(sites, labels="reconciler.dev/site=lab")
        head = next(m for m in maps if m["metadata"]["name"] == "site-lab-state")
        current = f"site-lab-state-{head['data']['digest']}-"  # older parts may not be gone yet
        parts = [m for m in maps if m["metadata"]["name"].startswith(current)]
        raw = sum(p.stat().st_size for p in self.state.rglob("*")
                  if p.is_file() and "watch" not in p.relative_to(self.state).parts)  # fmt: skip
        return {"state": sum(len(m["binaryData"]["part"]) for m in parts), "raw": raw,
                "parts": len(parts)}  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)


class Api:
    """The stand-in apiserver in a process of its own (as a real one would be), logging requests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = RequestLog(root / "requests.jsonl")
        code = APISERVER.format(folder=str(ROOT / "tests" / "integration"), log=str(self.log.path))
        self.server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                       text=True)  # fmt: skip
        assert self.server.stdout is not None
        self.url = self.server.stdout.readline().strip()
        (root / "kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: k\n"
            f"clusters: [{{name: k, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: k, user: {token: t}}]\n"
            "contexts: [{name: k, context: {cluster: k, user: k}}]\n"
        )
        self.client = KubeClient(Credentials(server=self.url))
        self.namespaces: list[str] = []

    def stop(self) -> None:
        self.server.kill()
        self.server.wait(timeout=10)


@contextmanager
def stand_in_apiserver(root: Path) -> Iterator[Api]:
    api = Api(root)
    try:
        yield api
    finally:
        api.stop()


def create_site(client: KubeClient, repo: Path, out: Path, *, namespace: str = NS) -> None:
    client.create(f"/apis/reconciler.dev/v1alpha1/namespaces/{namespace}/sites", {
        "apiVersion": "reconciler.dev/v1alpha1", "kind": "Site",
        "metadata": {"name": "lab", "namespace": namespace},
        "spec": {"source": {"url": str(repo), "ref": "main"}, "interval": POLL,
                 "maxChangeFraction": 1.0, "targets": targets(out)},
    })  # fmt: skip


def replica(
    root: Path,
    port: int,
    *,
    namespace: str = NS,
    work: Path | None = None,
    tree: Path = ROOT,
    standalone: bool = False,
) -> subprocess.Popen[bytes]:
    """``reconciler operator run`` (with peering unless ``standalone``), as a pod runs it.

    A process of its own, as in a cluster. ``port`` is its liveness port and,
    with peering, its priority.
    """
    env = {**os.environ, "PYTHONPATH": str(tree), "KUBECONFIG": str(root / "kubeconfig")}
    # Warnings only: watch runs in this process without a log handler, so it does not
    # format a line per change applied either (4,000 lines at 1k hosts).
    command = [sys.executable, "-c", "from reconciler.cli import main; main()",
               "--log-level", "warning", "operator", "run", "--namespace", namespace,
               "--work-dir", str(work or root / f"work-{port}"),
               "--priority", str(port), "--peering-lifetime", str(PEERING_LIFETIME),
               "--liveness", f"http://127.0.0.1:{port}/healthz"]  # fmt: skip
    if standalone:
        command.append("--standalone")
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tree
    )


def alive(port: int) -> bool:
    """The replica answers its liveness probe: kopf started and watches the namespace."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


def bench_takeover(root: Path, hosts: int) -> float:
    """Two ``reconciler operator run`` processes; SIGKILL the active one as a commit lands.

    The time from the SIGKILL to the standby having applied that commit: at
    least the peering lifetime (how long a dead replica's record still counts).
    """
    repo = make_repo(root / "repo", hosts)
    with stand_in_apiserver(root) as api:
        api.client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": NS}})  # fmt: skip
        api.client.create(f"/apis/kopf.dev/v1/namespaces/{NS}/kopfpeerings", {
            "apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
            "metadata": {"name": "reconciler-operator", "namespace": NS}})  # fmt: skip
        replicas = [replica(root, port) for port in (18100, 18050)]
        try:
            create_site(api.client, repo, root / "out")
            wait(lambda: api.log.applied_at(NS, head_of(repo)))
            commit = one_host_commit(repo, 0)
            replicas[0].send_signal(signal.SIGKILL)
            return wait(lambda: api.log.applied_at(NS, commit))
        finally:
            for process in replicas:
                process.kill()
                process.wait(timeout=10)


Contender = WatchRun | OperatorRun


def bench_size(root: Path, hosts: int, *, commits: int, baseline: Path | None) -> dict[str, Any]:
    """Ready of each contender, then ``commits`` rounds of one commit to each, interleaved."""
    generated = make_repo(root / "generated", hosts)

    def copy(name: str) -> Path:
        shutil.copytree(generated, root / name / "repo", symlinks=True)
        return root / name / "repo"

    with stand_in_apiserver(root) as api:
        contenders: list[Contender] = [
            WatchRun(root / "watch", copy("watch")),
            OperatorRun(
                root / "operator",
                copy("operator"),
                name="operator",
                namespace=NS,
                api=api,
                tree=ROOT,
            ),
        ]
        if baseline is not None:
            base = OperatorRun(
                root / "baseline", copy("baseline"), name="baseline", namespace=f"{NS}-base",
                api=api, tree=baseline,
            )  # fmt: skip
            contenders.append(base)
        try:
            ready = {c.name: c.start() for c in contenders}
            latencies: dict[str, list[float]] = {c.name: [] for c in contenders}
            steps: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
            for round_ in range(commits):
                turn = round_ % len(contenders)
                for contender in contenders[turn:] + contenders[:turn]:
                    commit = one_host_commit(contender.repo, round_)
                    start = committed_at(contender.repo)
                    wait(lambda c=contender, x=commit: c.visible(x))  # type: ignore[misc]
                    visible = contender.visible(commit)
                    assert visible is not None
                    latencies[contender.name].append(visible - start)
                    steps[contender.name].append(contender.steps(start=start, visible=visible))
            size = contenders[1].state_size()  # type: ignore[union-attr]
        finally:
            for contender in contenders:
                contender.stop()
    return {"ready": ready, "latencies": latencies, "steps": steps, **size}


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several setups as one: Ready the median of theirs, commits and steps all together."""
    if len(runs) == 1:
        return runs[0]
    names = list(runs[0]["ready"])
    return {
        **runs[-1],
        "ready": {n: statistics.median(run["ready"][n] for run in runs) for n in names},
        "latencies": {n: [x for run in runs for x in run["latencies"][n]] for n in names},
        "steps": {n: [x for run in runs for x in run["steps"][n]] for n in names},
    }


def one_line(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f}s ({min(values):.2f}-{max(values):.2f})"


def report(hosts: int, result: dict[str, Any], takeover: float) -> None:
    ready, latencies = result["ready"], result["latencies"]
    names = list(latencies)
    watch = latencies["watch"]
    print(f"\n{hosts} hosts, {len(watch)} commits each (rounds interleaved, fetch every {POLL} s)")
    print("  Site created -> Ready: " + ", ".join(
        f"{n} {ready[n]:.2f}s" + (f" ({ready[n] / ready['watch']:.2f}x)" if n != "watch" else "")
        for n in names))  # fmt: skip
    print("  commit -> applied, median (min-max):")
    for name in names:
        mine = latencies[name]
        line = f"    {name:9} {one_line(mine)}"
        if name != "watch":
            pairs = [m / w for m, w in zip(mine, watch, strict=True)]
            line += (f"  {statistics.median(mine) / statistics.median(watch):.2f}x watch "
                     f"(per round: median {statistics.median(pairs):.2f}x, "
                     f"{min(pairs):.2f}-{max(pairs):.2f})")  # fmt: skip
        print(line)
    keys = ["fetched", "first ledger", "last ledger", "last journal", "accepted",
            "state written", "visible", "journal patches", "calls"]  # fmt: skip
    print("  a commit's pass, ms after the commit, median (min-max):")
    print("    " + f"{'step':16}" + "".join(f"{n:>24}" for n in names))
    for key in keys:
        cells = [summary(result["steps"][n], key) for n in names]
        if any(cell != "-" for cell in cells):
            print("    " + f"{key:16}" + "".join(f"{cell:>24}" for cell in cells))
    print(f"  state: {result['raw'] / 1e6:.2f} MB on disk -> {result['state'] / 1e6:.2f} MB "
          f"base64 in {result['parts']:.0f} ConfigMap part(s)")  # fmt: skip
    if takeover == takeover:  # not NaN: measured
        print(f"  takeover: SIGKILL of the active replica -> the standby applied the next "
              f"commit: {takeover:.2f}s (peering lifetime {PEERING_LIFETIME} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--commits", type=int, default=12, help="rounds of commits per size")
    parser.add_argument("--baseline", type=Path, help="another checkout to run beside this one")
    parser.add_argument("--no-takeover", action="store_true", help="skip the takeover run")
    parser.add_argument("--repeat", type=int, default=1, help="fresh setups per size, pooled")
    args = parser.parse_args()
    for hosts in args.hosts:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                runs.append(
                    bench_size(Path(folder), hosts, commits=args.commits, baseline=args.baseline)
                )
        result = pooled(runs)
        takeover = float("nan")
        if not args.no_takeover:
            with tempfile.TemporaryDirectory() as folder:
                takeover = bench_takeover(Path(folder), hosts)
        report(hosts, result, takeover)


if __name__ == "__main__":
    main()
