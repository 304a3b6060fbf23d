"""Core benchmark: validate, compile and a no-op plan on 1k, 10k and 50k hosts
(``--sizes 1000,10000,50000,100000`` for the 100k row; peak memory per size).

Run by hand: ``.venv/bin/python bench/bench_core.py``. Each figure times the
whole ``reconciler`` process (start-up included) as a user runs it, the best of
three runs; compile is timed in-process. Targets (issue 2): 10,000 hosts
validate in <= 1 s, no-op plan in <= 2 s; 50k within 5x of 10k; issue 17:
100,000 hosts no-op plan in <= 10 s.

The no-op plan is measured both ways in the same run: ``plan`` as users run it
(the first plan after the apply computes everything, reads once every file the apply
wrote as the file targets' manifest trusts no file within a second of its write, and
remembers the result in
``state_dir/plan-cache.json``; the next ones reuse it while the inventory, config,
templates, code and every output file are unchanged, see
``reconciler/plan_cache.py``) and ``plan --no-cache`` (everything computed).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate

RECONCILER = Path(sys.executable).parent / "reconciler"

CONFIG = """\
state_dir = "state"
[source]
path = "inventory"
[targets.dhcp]
type = "dhcp-file"
path = "out/dhcpd.hosts.conf"
[targets.dns]
type = "dns-zonefile"
directory = "out/zones"
mname = "ns1.bench.example."
rname = "hostmaster.bench.example."
nameservers = ["ns1.bench.example."]
[targets.boot]
type = "bootfiles"
directory = "out/tftp"
[targets.images]
type = "node-images"
directory = "out/http"
"""


def best_of(runs: int, command: list[str], *, expect: int, cwd: Path) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != expect:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def compile_seconds(folder: Path) -> float:
    code = (
        "import time; from pathlib import Path\n"
        "from reconciler.engine import Engine; from reconciler.config import RuntimeConfig\n"
        "from reconciler.inventory.sources import FolderSource\n"
        "e = Engine(RuntimeConfig.model_validate({'source': {'path': '.'}}))\n"
        f"inv = e.load(FolderSource(Path({str(folder)!r})))\n"
        "t = time.perf_counter(); e.compile(inv); print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def measure(hosts: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{hosts}-") as tmp:
        site = Path(tmp)
        generate(site / "inventory", hosts)
        (site / "reconciler.toml").write_text(CONFIG)
        validate = best_of(runs, [str(RECONCILER), "validate", "inventory"], expect=0, cwd=site)
        compiled = compile_seconds(site / "inventory")
        started = time.perf_counter()
        best_of(1, [str(RECONCILER), "apply", "-c", "reconciler.toml"], expect=0, cwd=site)
        first_apply = time.perf_counter() - started
        plan_command = [str(RECONCILER), "plan", "-c", "reconciler.toml"]
        time.sleep(1.1)  # files written in the last second are never trusted by the cache
        first_plan = best_of(1, plan_command, expect=0, cwd=site)  # computes and remembers
        plan = best_of(runs, plan_command, expect=0, cwd=site)
        full_plan = best_of(runs, [*plan_command, "--no-cache"], expect=0, cwd=site)
        noop_apply = best_of(
            1, [str(RECONCILER), "apply", "-c", "reconciler.toml"], expect=0, cwd=site
        )
    return {
        "validate": validate,
        "compile": compiled,
        "first_apply": first_apply,
        "first_plan": first_plan,
        "noop_plan": plan,
        "full_plan": full_plan,
        "noop_apply": noop_apply,
    }


def peak_mib() -> float:
    """The largest resident set of any reconciler run so far (sizes grow, so: this size's)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    print(
        f"{'hosts':>7} {'validate':>9} {'compile':>8} {'1st apply':>10} {'1st plan':>9} "
        f"{'no-op plan':>11} {'--no-cache':>11} {'ratio':>6} {'no-op apply':>12} {'peak RSS':>9}"
    )
    for hosts in sizes:
        r = results[hosts] = measure(hosts, args.runs)
        print(
            f"{hosts:>7} {r['validate']:>8.2f}s {r['compile']:>7.2f}s {r['first_apply']:>9.2f}s "
            f"{r['first_plan']:>8.2f}s {r['noop_plan']:>10.2f}s {r['full_plan']:>10.2f}s "
            f"{r['full_plan'] / r['noop_plan']:>5.1f}x "
            f"{r['noop_apply']:>11.2f}s {peak_mib():>6.0f}MiB",
            flush=True,
        )
    if 10_000 in results:
        r = results[10_000]
        print(
            f"\n10k validate {r['validate']:.2f}s (target <= 1 s): "
            f"{'OK' if r['validate'] <= 1 else 'MISSED'}"
        )
        print(
            f"10k no-op plan {r['noop_plan']:.2f}s (target <= 2 s): "
            f"{'OK' if r['noop_plan'] <= 2 else 'MISSED'}"
        )
    if 100_000 in results:
        r = results[100_000]
        print(
            f"100k no-op plan {r['noop_plan']:.2f}s (target <= 10 s): "
            f"{'OK' if r['noop_plan'] <= 10 else 'MISSED'}; --no-cache {r['full_plan']:.2f}s"
        )
    if 10_000 in results and 50_000 in results:
        for key in ("validate", "noop_plan"):
            ratio = results[50_000][key] / results[10_000][key]
            print(f"50k/10k {key}: {ratio:.1f}x (target <= 5x): {'OK' if ratio <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
