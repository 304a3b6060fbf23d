"""Watch benchmark: commit-to-applied latency of a one-host change on a 10,000-host site.

Run by hand, as root for the live servers: ``.venv/bin/python bench/bench_watch.py``.
``reconciler watch`` runs as a subprocess (as in production) against a local
git repository; each round adds one host (a DHCP host, an A and a PTR record)
in a new commit, and the time from the commit's creation to ``status.json``
naming it as applied is measured. Median and p90 of 20 commits, the new way
and then the old way (``OLD_WAY``: before the incremental load of issue 17) in
the same run. Goal: p90 <= 300 ms (Flux polls every 60 s by default).

``--targets live``: real dhcpd over OMAPI and real named over RFC 2136 in a
network namespace (the integration tests' fixtures, tests/integration/watch_live.py).
``--targets files``: dhcp-file, dns-zonefile, bootfiles, node-images on disk.
``--layout racks``: ``bench/generate.py``'s racks of 2,500 hosts (the 100k site).
After the rounds, the in-process split of a one-host commit (load, rollout
decision, compile, each target's plan, saving the rollout state), this way and
with group reuse and the key-map plan off; ``--breakdown-only`` prints just that
on a generated site, without a watch process or servers (the live targets are
planned, never contacted).

``--baseline DIR`` (file targets): the old way is another checkout's
``reconciler watch`` (e.g. ``git -C <repo> archive <commit> | tar -x -C DIR``)
instead of ``OLD_WAY``, on the same site in the same run; ``--no-breakdown``
skips the in-process split.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generate import generate  # noqa: E402

from reconciler.compile_cache import CompileCache  # noqa: E402
from reconciler.config import load_config  # noqa: E402
from reconciler.engine import Engine  # noqa: E402
from reconciler.inventory.sources import GitSource  # noqa: E402
from reconciler.watch.metrics import WatchMetrics  # noqa: E402
from reconciler.watch.revision import GoodRevision  # noqa: E402
from reconciler.watch.rollouts import LoopRollouts  # noqa: E402
from reconciler.watch.settings import WatchSettings  # noqa: E402
from reconciler.watch.status import Status, StatusStore, TargetStatus  # noqa: E402
from reconciler.watch.target_steps import TargetSteps  # noqa: E402
from tests.integration.watch_live import (  # noqa: E402
    LiveWatchSite,
    git,
    live_watch_site,
    mac_of,
    write_inventory,
)

FILE_CONFIG = """\
state_dir = "state"
[source]
repo = "repo"
rev = "main"
[boot]
http_url = "http://10.23.0.2:8080"
[targets.dhcp]
type = "dhcp-file"
path = "out/dhcpd.hosts.conf"
[targets.dns]
type = "dns-zonefile"
directory = "out/zones"
mname = "ns1.cluster.example."
rname = "hostmaster.cluster.example."
nameservers = ["ns1.cluster.example."]
[targets.boot]
type = "bootfiles"
directory = "out/tftp"
[targets.images]
type = "node-images"
directory = "out/http"
[watch]
debounce = 0.02
drift_interval = 3600
"""


def wait_applied(store: StatusStore, commit: str, *, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.load().applied_revision == commit:
            return time.perf_counter()
        time.sleep(0.002)
    raise TimeoutError(f"{commit[:12]} not applied within {timeout} s: {store.load().to_dict()}")


def commit(repo: Path, hosts: dict[int, str], message: str) -> str:
    write_inventory(repo, hosts)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


# Group reuse and the key-map plan off (issue 17 at 100k): every group compiled host by
# host, and the plan between two revisions diffed over every key.
BEFORE_GROUPS = (
    "import reconciler.compile_cache as k, reconciler.watch.revision as r, "
    "reconciler.plan as p, reconciler.targets.base as b; "
    "k.CompileCache.reusable = lambda *a, **kw: None; "
    "r.GoodRevision.changes_since = lambda self, old, t: p.compute_changes("
    "self.desired(t), b.LiveState(owned=old.keys(t))); "
)
# The way before issue 17's incremental load, in the same run: a changed group file
# parsed and validated whole, every site-wide rule run over every host (so no Host object
# is reused and every host's compile key is built), and the above.
OLD_WAY = BEFORE_GROUPS + (
    "import reconciler.inventory.load_cache as c; "
    "c.LoadCache.incremental = lambda *a, **kw: None; "
    "c.LoadCache.group_file = lambda *a, **kw: None; "
)


class OneGroup:
    """One group of ``hosts`` hosts in a /16 (the live fixtures' layout); a round adds one."""

    def __init__(self, repo: Path, hosts: int) -> None:
        self.repo = repo
        self.inventory = {i: mac_of(i) for i in range(1, hosts + 1)}

    def initial(self) -> str:
        return commit(self.repo, self.inventory, f"{len(self.inventory)} hosts")

    def change(self) -> str:
        index = len(self.inventory) + 1
        self.inventory[index] = mac_of(index)
        return commit(self.repo, self.inventory, f"add node{index:04d}")


class Racks:
    """``bench/generate.py``'s site (racks of 2,500 hosts, up to 100k); a round adds a host
    to the first rack."""

    def __init__(self, repo: Path, hosts: int) -> None:
        self.repo = repo
        self.hosts = hosts
        self.added = 0

    def initial(self) -> str:
        generate(self.repo, self.hosts, domain="cluster.example")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"{self.hosts} hosts")
        return git(self.repo, "rev-parse", "HEAD")

    def change(self) -> str:
        self.added += 1
        rack = self.repo / "groups" / "rack00.yaml"
        entry = f'  - index: {2500 + self.added}\n    mac: "52:54:ff:00:{self.added:02x}:01"\n'
        rack.write_text(rack.read_text() + entry)
        git(self.repo, "commit", "-q", "-am", f"add r00n{2500 + self.added}")
        return git(self.repo, "rev-parse", "HEAD")


Layout = OneGroup | Racks


def rounds(*, store: StatusStore, layout: Layout, commits: int) -> list[float]:
    """Commit one new host ``commits`` times; the commit-to-applied time of each."""
    latencies: list[float] = []
    for round_ in range(commits):
        head = layout.change()
        committed = time.perf_counter()
        done = wait_applied(store, head, timeout=120)
        latencies.append(done - committed)
        status = store.load()
        changed = {n: t.applied for n, t in status.targets.items() if t.applied}
        print(f"  commit {round_ + 1:2d}: {latencies[-1] * 1000:6.0f} ms  changes {changed}")
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    return (
        f"median {statistics.median(ordered) * 1000:5.0f} ms, "
        f"p90 {ordered[max(0, int(len(ordered) * 0.9) - 1)] * 1000:5.0f} ms, "
        f"max {ordered[-1] * 1000:5.0f} ms"
    )


def measure(
    *,
    repo: Path,
    config_path: Path,
    store: StatusStore,
    start_watch: object,
    layout: Layout,
    commits: int,
    baseline: Path | None = None,
    split: bool = True,
) -> None:
    """The new way, then the old way (``OLD_WAY``, or ``baseline``'s checkout), each a
    fresh ``reconciler watch``."""
    first = layout.initial()
    results: dict[str, list[float]] = {}
    old: tuple[str, dict[str, object]] = ("old", {"prelude": OLD_WAY})
    if baseline is not None:
        old = ("old", {"root": baseline})
    for label, how in (("new", {}), old):
        started = time.perf_counter()
        passes = store.load().passes
        process: subprocess.Popen[bytes] = start_watch(**how)  # type: ignore[operator]
        try:
            wait_applied(store, first, timeout=1800)
            while store.load().passes <= passes:  # this process's own first pass is done
                time.sleep(0.01)
            print(f"{label}: ready in {time.perf_counter() - started:.1f} s")
            os.sync()  # the start-up's writes flushed: no commit's fsync waits behind them
            results[label] = rounds(store=store, layout=layout, commits=commits)
            first = git(repo, "rev-parse", "HEAD")  # what the next process starts from
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(f"commit-to-applied, one-host change, {commits} commits each:")
    for label in ("old", "new"):
        print(f"  {label}: {summary(results[label])}")
    ratio = statistics.median(results["old"]) / statistics.median(results["new"])
    print(f"  median old/new: {ratio:.1f}x (goal: p90 <= 300 ms at 10k, <= 1 s at 100k)")
    if split:
        breakdown(config_path)


SAMPLES = 4  # one-host commits timed in process, after one in force


def breakdown(config_path: Path) -> None:
    """Where a watch pass's time goes for a one-host commit, in this process: load, the
    rollout decision, compile, each target's plan from the previous revision (as
    ``watch/target_steps`` plans a target brought to it, without reading live state) and
    saving the rollout decision (not the targets' applies);
    this way, then with group reuse and the key-map plan off (``BEFORE_GROUPS``).
    The repository's last ``SAMPLES`` commits are timed, each a one-host change."""
    for label in ("new", "before"):
        with contextlib.ExitStack() as patches:
            if label == "before":
                exec(BEFORE_GROUPS, {})
                patches.callback(restore, dict(vars(CompileCache)), dict(vars(GoodRevision)))
            figures = commits_in_process(config_path)
        split = ", ".join(
            f"{step} {statistics.median(f[step] for f in figures):.0f} ms" for step in figures[0]
        )
        print(f"one-host commit in this process, {label} (median of {len(figures)}): {split}")


def restore(compile_cache: dict[str, Any], revision: dict[str, Any]) -> None:
    CompileCache.reusable = compile_cache["reusable"]  # type: ignore[method-assign]
    GoodRevision.changes_since = revision["changes_since"]  # type: ignore[method-assign]


def commits_in_process(config_path: Path) -> list[dict[str, float]]:
    """HEAD~SAMPLES in force (and its key maps made), then each later commit timed step
    by step, planned from the one before, as a running watch does."""
    config = load_config(config_path)
    engine = Engine(config)
    state_dir = tempfile.TemporaryDirectory(prefix="bench-watch-state-")  # each way its own
    rollouts = LoopRollouts(Path(state_dir.name), interval=60)
    status = Status()
    planner = TargetSteps(
        engine=engine, settings=WatchSettings(), status=status, metrics=WatchMetrics(),
        stop=threading.Event(), suspended=False,
    )  # fmt: skip
    repo = config.resolve(config.source.repo or Path("."))

    def compiled(rev: str, previous: GoodRevision | None) -> tuple[GoodRevision, dict[str, float]]:
        times = {"start": time.perf_counter()}
        inventory = engine.load(GitSource(repo, rev))
        times["load"] = time.perf_counter()
        decided = rollouts.decide(inventory)
        times["rollouts"] = time.perf_counter()
        state = engine.compile(inventory, assignments=decided.assignments if decided else None)
        times["compile"] = time.perf_counter()
        good = GoodRevision(rev, state, inventory, decided)
        for target in engine.targets:
            if previous is None:
                good.keys(target)
            else:  # the target is at the previous revision: what watch's pass does
                status.targets[target.name] = TargetStatus(ok=True, revision=previous.commit)
                planner._plan(good, target, previous=previous, drift=False)
            times[f"plan {target.name}"] = time.perf_counter()
        if decided is not None:  # as the loop does once the targets hold the revision
            rollouts.save(decided)
        times["save rollouts"] = time.perf_counter()
        return good, times

    previous, _ = compiled(f"HEAD~{SAMPLES}", None)
    figures = []
    for back in range(SAMPLES - 1, -1, -1):
        previous, times = compiled(f"HEAD~{back}", previous)
        steps = list(times)
        result = {b: (times[b] - times[a]) * 1000 for a, b in itertools.pairwise(steps)}
        result["total"] = (times[steps[-1]] - times["start"]) * 1000
        figures.append(result)
    state_dir.cleanup()
    return figures


def run_files(
    workdir: Path,
    *,
    layout: str,
    hosts: int,
    commits: int,
    baseline: Path | None = None,
    split: bool = True,
) -> None:
    repo = workdir / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (workdir / "reconciler.toml").write_text(FILE_CONFIG)

    def start(prelude: str = "", root: Path = ROOT) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(root)}
        with (workdir / "watch.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-c", prelude + "from reconciler.cli import main; main()",
                 "watch", "-c", str(workdir / "reconciler.toml")],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
            )  # fmt: skip

    measure(
        repo=repo, config_path=workdir / "reconciler.toml",
        store=StatusStore(workdir / "state"), start_watch=start,
        layout=LAYOUTS[layout](repo, hosts), commits=commits, baseline=baseline, split=split,
    )  # fmt: skip


def run_live(workdir: Path, *, layout: str, hosts: int, commits: int) -> None:
    with live_watch_site(workdir) as site:
        live: LiveWatchSite = site
        measure(
            repo=live.repo, config_path=live.config_path, store=live.store,
            start_watch=live.start_watch,
            layout=LAYOUTS[layout](live.repo, hosts), commits=commits,
        )  # fmt: skip


# The live targets for the in-process split alone: planned from revisions, never contacted.
LIVE_TARGETS = """\
[targets.dhcp]
type = "dhcp-omapi"
key_file = "omapi.key"
leases_file = "dhcpd.leases"
[targets.dns]
type = "dns-rfc2136"
server = "127.0.0.1"
key_file = "tsig.key"
"""


def run_breakdown(workdir: Path, *, layout: str, hosts: int, targets: str) -> None:
    """The in-process split alone, on a generated site: no watch process, no server."""
    repo = workdir / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    config = FILE_CONFIG
    if targets == "live":
        config = config[: config.index("[targets.dhcp]")] + LIVE_TARGETS
        for key in ("omapi.key", "tsig.key"):
            (workdir / key).touch(mode=0o600)
        (workdir / "omapi.key").write_text("c2VjcmV0IGZvciBhIGJlbmNobWFyaw==\n")
        (workdir / "tsig.key").write_text(
            'key "bench" { algorithm hmac-sha256; secret "c2VjcmV0IGZvciBhIGJlbmNobWFyaw=="; };\n'
        )
        (workdir / "dhcpd.leases").touch()
    (workdir / "reconciler.toml").write_text(config)
    site = LAYOUTS[layout](repo, hosts)
    site.initial()
    for _ in range(SAMPLES):
        site.change()
    breakdown(workdir / "reconciler.toml")


LAYOUTS: dict[str, type[OneGroup] | type[Racks]] = {"one-group": OneGroup, "racks": Racks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--targets", choices=["live", "files"], default="live")
    parser.add_argument(
        "--breakdown-only", action="store_true",
        help="only the in-process split of a one-host commit (no watch process, no server)",
    )  # fmt: skip
    parser.add_argument(
        "--layout", choices=list(LAYOUTS), default="one-group",
        help="racks: bench/generate.py's racks of 2,500 hosts (the 100k site)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", type=Path,
        help="file targets: the old way is this checkout's watch (instead of OLD_WAY)",
    )  # fmt: skip
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the in-process split after the rounds"
    )
    args = parser.parse_args()
    if args.baseline is not None and args.targets != "files":
        parser.error("--baseline needs --targets files")
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        print(f"targets: {args.targets}")
        if args.breakdown_only:
            run_breakdown(Path(tmp), layout=args.layout, hosts=args.hosts, targets=args.targets)
        elif args.targets == "live":
            run_live(Path(tmp), layout=args.layout, hosts=args.hosts, commits=args.commits)
        else:
            run_files(
                Path(tmp), layout=args.layout, hosts=args.hosts, commits=args.commits,
                baseline=args.baseline, split=not args.no_breakdown,
            )  # fmt: skip


if __name__ == "__main__":
    main()
