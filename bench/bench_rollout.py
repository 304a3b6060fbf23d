"""Rollout benchmark: a simulated 1,000-node image change, wave by wave.

Run by hand: ``.venv/bin/python bench/bench_rollout.py [--nodes 1000] [--swap 3]``.

A generated inventory (bench/generate.py) with one group of ``--nodes`` nodes
moves from compute@1.0 to compute@1.1. Simulated agents swap in ``--swap``
seconds of simulated time after they are assigned the new version and then
report, as files in the state dir exactly as ``serve`` stores them. The watch
loop's rollout pass (``run_rollouts``: read every report, decide, write the
state) runs every ``--interval`` simulated seconds. Printed, side by side:

- the real time of one pass (store read + decision + write): median and p90,
  and the decision alone, per pass;
- the simulated time the whole rollout takes with the group's policy, next to
  the time if every node swapped at once (no waves) and if nodes went one by one.

Then serve's load from the agents' polls during a rollout (``--agents``, 0 to
skip): a real ``reconciler serve`` process on loopback answers ``--agents``
simulated agents for ``--seconds`` while the bench moves a wave of nodes to
the new version every few seconds (it rewrites ``rollouts/assignments.json`` as
the watch loop does). Twice, side by side: agents that long-poll
``/nodes/<host>.json?wait=60`` with ``If-None-Match`` (what the agent does),
and agents that fetch it every second without ETag. Printed: requests/s, serve's
CPU (from /proc/<pid>/stat), and how long the moved nodes took to see their
new version. Polls only: a report must pass serve's neighbour guard, which a
loopback client cannot, so reports (a few per node per rollout) are left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generate import generate  # noqa: E402

from reconciler.inventory.load import load_inventory  # noqa: E402
from reconciler.inventory.sources import FolderSource  # noqa: E402
from reconciler.rollout.controller import decide  # noqa: E402
from reconciler.rollout.runner import run_rollouts  # noqa: E402
from reconciler.rollout.state import Brake  # noqa: E402
from reconciler.rollout.store import RolloutStore  # noqa: E402

POLICY = "rollout: {waves: [1, 10%, 50%, 100%], max_unavailable: 10%, timeout: 10m}\n"


def write_report(store: RolloutStore, host: str, ref: str, at: float) -> None:
    image, _, version = ref.partition("@")
    data: dict[str, object] = {"host": host, "image": image, "version": version}
    data["health"] = {"ok": True}
    data["received_at"] = at
    (store.reports_folder / f"{host}.json").write_text(json.dumps(data))


def simulate(nodes: int, swap: float, interval: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as temporary:
        folder = generate(Path(temporary) / "inventory", nodes)
        group_file = next((folder / "groups").glob("*.yaml"))
        group_file.write_text(group_file.read_text() + POLICY)
        store = RolloutStore(Path(temporary) / "state")
        store.reports_folder.mkdir(parents=True)
        inventory = load_inventory(FolderSource(folder))
        clock = 0.0
        first = run_rollouts(inventory, store, persist=True, now=clock)
        for host, ref in first.assignments.items():
            write_report(store, host, ref, clock)
        group_file.write_text(group_file.read_text().replace("compute@1.0", "compute@1.1"))
        inventory = load_inventory(FolderSource(folder))
        swapping: dict[str, float] = {}  # host -> simulated time it reports the new version
        pass_times, decide_times = [], []
        while True:
            clock += interval
            for host, done in list(swapping.items()):
                if done <= clock:
                    write_report(store, host, "compute@1.1", done)
                    del swapping[host]
            for host in list(swapping):
                write_report(store, host, "compute@1.0", clock)  # still on the old one
            started = time.perf_counter()
            result = run_rollouts(inventory, store, persist=True, now=clock)
            pass_times.append(time.perf_counter() - started)
            group = inventory.groups[0]
            hosts = [group.name_of(h) for h in group.hosts if h.image is None]
            reports = store.reports(hosts)
            started = time.perf_counter()
            decide(
                group=group.name, hosts=hosts, target="compute@1.1", revision="r",
                policy=group.rollout, current=result.assignments, reports=reports,
                rollout=store.rollout(group.name), brake=Brake(), now=clock,
            )  # fmt: skip
            decide_times.append(time.perf_counter() - started)
            for host, ref in result.assignments.items():
                if ref == "compute@1.1" and host not in swapping:
                    report = reports.get(host)
                    if report is None or report.running != ref:
                        swapping[host] = clock + swap
            if not result.active:
                break
            if clock > 100_000:
                raise SystemExit("rollout did not finish")
        return {
            "rollout_s": clock,
            "passes": len(pass_times),
            "pass_median_ms": statistics.median(pass_times) * 1000,
            "pass_p90_ms": sorted(pass_times)[int(len(pass_times) * 0.9)] * 1000,
            "decide_median_ms": statistics.median(decide_times) * 1000,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--swap", type=float, default=3.0, help="simulated seconds per swap")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    parser.add_argument("--agents", type=int, default=1000, help="polling agents (0: skip)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per polling mode")
    args = parser.parse_args()
    figures = simulate(args.nodes, args.swap, args.interval)
    # Reference points: every node at once (one swap), and one node at a time.
    at_once = args.swap + args.interval
    one_by_one = args.nodes * (args.swap + args.interval)
    print(f"{args.nodes} nodes, {args.swap:.1f} s per swap, a pass every {args.interval:.1f} s")
    print(
        f"rollout pass (read {args.nodes} reports, decide, write): "
        f"median {figures['pass_median_ms']:.1f} ms, p90 {figures['pass_p90_ms']:.1f} ms; "
        f"decision alone median {figures['decide_median_ms']:.2f} ms"
    )
    print(
        f"whole rollout (waves 1, 10%, 50%, 100%; max_unavailable 10%): "
        f"{figures['rollout_s']:.0f} s simulated in {figures['passes']:.0f} passes"
    )
    print(
        f"  side by side: all at once {at_once:.0f} s "
        f"(x{figures['rollout_s'] / at_once:.1f}, but the whole group down together); "
        f"one node at a time {one_by_one:.0f} s (x{figures['rollout_s'] / one_by_one:.3f})"
    )
    if args.agents:
        from rollout_polls import print_serve_load

        print_serve_load(args.agents, args.seconds)


if __name__ == "__main__":
    main()
