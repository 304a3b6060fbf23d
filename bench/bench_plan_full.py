"""The full no-op plan (``plan --no-cache``) at 100k hosts: this tree beside a baseline.

Issue 17's figure: a fresh ``reconciler plan --no-cache`` of a 100,000-host site
with the four file targets (bench_core.py's config), nothing changed since the
last apply, in <= 10 s. This runs that command from this tree and from another
checkout (``--baseline DIR``, e.g. main at some point: ``git archive main | tar
-x -C DIR``) in turns, on the same site, and prints the median wall and CPU
(the process and its worker processes) of each and their ratio.

Run by hand: ``.venv/bin/python bench/bench_plan_full.py --baseline DIR
[--site DIR] [--hosts 100000] [--runs 3]``. Without ``--site`` a site is
generated and applied first (about 4 minutes at 100k hosts); a site given is
reused as it is (apply it once, then plan it once so that every file is in the
file targets' manifest).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import CONFIG
from generate import generate

ROOT = Path(__file__).resolve().parents[1]
RUN_CLI = "import sys; from reconciler.cli import main; sys.argv[0] = 'reconciler'; main()"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(checkout: Path, site: Path, args: list[str], *, expect: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``reconciler`` command run from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{checkout}: {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return wall, children_cpu() - cpu


def prepared_site(folder: Path, hosts: int) -> Path:
    generate(folder / "inventory", hosts)
    (folder / "reconciler.toml").write_text(CONFIG)
    run(ROOT, folder, ["apply", "-c", "reconciler.toml"], expect=0)
    time.sleep(1.1)  # the manifest trusts no file written within the last second
    run(ROOT, folder, ["plan", "-c", "reconciler.toml", "--no-cache"], expect=0)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--site", type=Path, help="an applied site to reuse")
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    site = options.site or prepared_site(
        Path(tempfile.mkdtemp(prefix="bench-plan-")), options.hosts
    )
    command = ["plan", "-c", "reconciler.toml", "--no-cache"]
    variants = {"baseline": options.baseline.resolve(), "this tree": ROOT}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(options.runs):
        for name, checkout in variants.items():
            wall, cpu = run(checkout, site, command, expect=0)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"plan --no-cache of {site} (no-op), median of {options.runs} runs, in turns")
    print(f"{'variant':<12}{'wall':>9}{'CPU':>9}   runs (wall)")
    for name in variants:
        runs = " ".join(f"{w:.1f}" for w in walls[name])
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:<12}{wall:>8.2f}s{cpu:>8.2f}s   {runs}")
    base, here = statistics.median(walls["baseline"]), statistics.median(walls["this tree"])
    base_cpu, here_cpu = statistics.median(cpus["baseline"]), statistics.median(cpus["this tree"])
    print(f"baseline / this tree: {base / here:.2f}x wall, {base_cpu / here_cpu:.2f}x CPU")
    print(f"issue 17 (<= 10 s wall): {'OK' if here <= 10 else 'MISSED'} ({here:.2f} s)")


if __name__ == "__main__":
    main()
