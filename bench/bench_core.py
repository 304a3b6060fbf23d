"""Core benchmark: validate, compile and a no-op plan on 1k, 10k and 50k hosts
(``--sizes 1000,10000,50000,100000`` for the 100k row; peak memory per size).

Run by hand: ``.venv/bin/python bench/bench_core.py``. Each figure times the
whole ``reconciler`` process (start-up included) as a user runs it, the best of
three runs; compile is timed in-process. Targets (issue 2): 10,000 hosts
validate in <= 1 s, no-op plan in <= 2 s; 50k within 5x of 10k.
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
        plan = best_of(runs, [str(RECONCILER), "plan", "-c", "reconciler.toml"], expect=0, cwd=site)
        noop_apply = best_of(
            1, [str(RECONCILER), "apply", "-c", "reconciler.toml"], expect=0, cwd=site
        )
    return {
        "validate": validate,
        "compile": compiled,
        "first_apply": first_apply,
        "noop_plan": plan,
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
        f"{'hosts':>7} {'validate':>9} {'compile':>8} {'1st apply':>10} {'no-op plan':>11} "
        f"{'no-op apply':>12} {'peak RSS':>9}"
    )
    for hosts in sizes:
        r = results[hosts] = measure(hosts, args.runs)
        print(
            f"{hosts:>7} {r['validate']:>8.2f}s {r['compile']:>7.2f}s {r['first_apply']:>9.2f}s "
            f"{r['noop_plan']:>10.2f}s {r['noop_apply']:>11.2f}s {peak_mib():>6.0f}MiB",
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
    if 10_000 in results and 50_000 in results:
        for key in ("validate", "noop_plan"):
            ratio = results[50_000][key] / results[10_000][key]
            print(f"50k/10k {key}: {ratio:.1f}x (target <= 5x): {'OK' if ratio <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
