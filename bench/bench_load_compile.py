"""Load and compile of a generated site, as a one-off command does them, old vs new in one run.

Run by hand: ``.venv/bin/python bench/bench_load_compile.py --hosts 100000
--baseline /tmp/old-checkout`` (the baseline: any checkout of the project, e.g.
``git archive`` of main into a folder). Each figure is the CPU time of a fresh
process (best of ``--runs``), with the cyclic GC paused as ``plan`` pauses it;
runs of the two checkouts alternate, so both see the same machine load. The
digest of the compiled output must be the same for both: a speed-up that
changes the output is a bug. Issue 17's share of a 100k no-op
``plan --no-cache`` for load + compile: <= ~4.5 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate

PROJECT = Path(__file__).resolve().parents[1]

MEASURE = """\
import gc, hashlib, sys, time
from pathlib import Path
gc.disable()
from reconciler.config import RuntimeConfig
from reconciler.engine import Engine
from reconciler.inventory.sources import FolderSource
config = RuntimeConfig.model_validate({"source": {"path": sys.argv[1]}})
try:
    engine = Engine(config, keep_caches=False)
except TypeError:  # a checkout from before one-off engines
    engine = Engine(config)
started = time.process_time()
inventory = engine.load(FolderSource(Path(sys.argv[1])))
loaded = time.process_time()
state = engine.compile(inventory)
compiled = time.process_time()
assert sys.modules["reconciler"].__file__.startswith(sys.argv[2]), "imported another checkout"
parts = (state.dhcp_hosts, state.dhcp_subnets, state.dns_zones, state.dns_records,
         state.boot_files, state.node_images, sorted(state.hosts_by_mac.items()))
digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
print(loaded - started, compiled - loaded, digest)
"""


def measure(checkout: Path, inventory: Path) -> tuple[float, float, str]:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(inventory), str(checkout)],
        env=environment,
        cwd=inventory.parent,  # not a checkout: "" on sys.path would import it instead
        capture_output=True,
        text=True,
        check=True,
    )
    load, compile_, digest = done.stdout.split()
    return float(load), float(compile_), digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare against")
    args = parser.parse_args()
    checkouts = {"this": PROJECT}
    if args.baseline is not None:
        checkouts["baseline"] = args.baseline.resolve()
    best: dict[str, tuple[float, float]] = {}
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-compile-") as tmp:
        inventory = generate(Path(tmp) / "inventory", args.hosts)
        for _ in range(args.runs):
            for name, checkout in checkouts.items():
                load, compile_, digests[name] = measure(checkout, inventory)
                old = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(old[0], load), min(old[1], compile_))
    print(f"{args.hosts} hosts, CPU seconds, best of {args.runs}")
    print(f"{'checkout':>9} {'load':>7} {'compile':>8} {'sum':>7}  output digest")
    for name, (load, compile_) in best.items():
        print(f"{name:>9} {load:>7.2f} {compile_:>8.2f} {load + compile_:>7.2f}  {digests[name]}")
    if "baseline" in best:
        (new_load, new_compile), (old_load, old_compile) = best["this"], best["baseline"]
        print(
            f"{'ratio':>9} {old_load / new_load:>6.2f}x {old_compile / new_compile:>7.2f}x "
            f"{(old_load + old_compile) / (new_load + new_compile):>6.2f}x  "
            f"{'same output' if digests['this'] == digests['baseline'] else 'OUTPUT DIFFERS'}"
        )


if __name__ == "__main__":
    main()
