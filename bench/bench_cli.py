"""Command-line start-up benchmark: ``reconciler --help`` and ``validate`` of the
example inventory, now (heavy modules imported by the commands that need them)
beside the old way (every command's module imported up front), in the same run
(run by hand).

Each figure is the median of N fresh interpreters, wall time and CPU time (user +
system of the child: steadier than wall time on a shared machine), next to
``python -c pass`` (the floor no command can beat). Goal (issue 17): 0.25 s.

    .venv/bin/python bench/bench_cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inventory-example"

RUN_CLI = "import sys; sys.argv[0] = 'reconciler'; from reconciler.cli import main; main()"
# The old way: the modules cli.py imported at the top before issue 17, then the command.
EAGER = (
    "import reconciler.accepted, reconciler.compile, reconciler.engine, reconciler.hostdiff, "
    "reconciler.render, reconciler.rollout.cli, reconciler.rollout.preview, reconciler.schemas, "
    "reconciler.settings_doc, reconciler.statelock, reconciler.operator.cli, "
    "reconciler.nodeboot.command, reconciler.image.commands, reconciler.media.cli, "
    "reconciler.importer.command; " + RUN_CLI
)


def measure(code: str, args: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``python -c code args`` over ``runs`` runs."""
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=120,
        )
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append(
            after.children_user
            - before.children_user
            + after.children_system
            - before.children_system
        )
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    floor_wall, floor_cpu = measure("pass", [], runs)
    print(f"python -c pass: {floor_wall * 1000:6.0f} ms wall {floor_cpu * 1000:6.0f} ms CPU")
    print(
        f"{'command':<28}{'old wall':>10}{'new wall':>10}{'old CPU':>10}{'new CPU':>10}"
        f"{'ratio CPU':>11}"
    )
    for label, args in (
        ("--help", ["--help"]),
        ("validate inventory-example", ["validate", str(EXAMPLE)]),
    ):
        old_wall, old_cpu = measure(EAGER, args, runs)
        new_wall, new_cpu = measure(RUN_CLI, args, runs)
        print(
            f"{label:<28}{old_wall * 1000:8.0f}ms{new_wall * 1000:8.0f}ms"
            f"{old_cpu * 1000:8.0f}ms{new_cpu * 1000:8.0f}ms{old_cpu / new_cpu:10.1f}x"
        )


if __name__ == "__main__":
    main()
