"""Command-line start-up benchmark: ``reconciler --help`` and ``validate`` of the
example inventory, now (heavy modules imported by the commands that need them,
commands built only when run) beside the old way (every command's module imported
up front), and beside another checkout (``--baseline``, e.g. main's), in the same
run (run by hand).

Each figure is the median of N fresh interpreters, wall time and CPU time (user +
system of the child: steadier than wall time on a shared machine), next to
``python -c pass`` (the floor no command can beat). The variants take turns, so a
change of load hits them alike. Goal (issue 17): 0.25 s.

The package's bytecode is compiled first (``compileall``, in each checkout), as an
installed package has it and as ``scripts/setup.sh`` writes it; the row "no
bytecode" shows what an editable install without it costs under
PYTHONDONTWRITEBYTECODE (every reconciler module compiled again on each run).
``--instructions`` adds each variant's instruction count (valgrind), which unlike
time does not move with the machine's load.

    .venv/bin/python bench/bench_cli.py [--runs 15] [--baseline CHECKOUT] [--instructions]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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

VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]


@dataclass
class Variant:
    """One way of running the command: which interpreter, in which checkout, what code."""

    label: str
    python: str
    checkout: Path
    code: str
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's
    walls: dict[str, list[float]] = field(default_factory=dict)
    cpus: dict[str, list[float]] = field(default_factory=dict)


def run_once(variant: Variant, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``python -c code args``."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [variant.python, "-c", variant.code, *args],
        cwd=variant.checkout,
        env={**os.environ, **variant.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime


def instructions(variant: Variant, args: list[str]) -> float:
    """Instructions (millions) one run executes, counted by valgrind: unlike time, the
    same whatever else the machine is doing (each run takes a few seconds)."""
    done = subprocess.run(
        [*VALGRIND, variant.python, "-c", variant.code, *args],
        cwd=variant.checkout,
        env={**os.environ, **variant.env, "PYTHONHASHSEED": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=300,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no count: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", "")) / 1e6


def _no_bytecode(_folder: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__"}


def compile_bytecode(checkout: Path) -> None:
    """Bytecode for the checkout's package, as pip writes it for an installed one."""
    compileall.compile_dir(checkout / "reconciler", quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout, e.g. an older main (its own .venv if it has one, else this one)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each variant's instructions once under valgrind (load-independent)",
    )
    options = parser.parse_args()
    if options.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    here = Variant("this tree", sys.executable, ROOT, RUN_CLI)
    variants = [Variant("old way (eager imports)", sys.executable, ROOT, EAGER)]
    if options.baseline is not None:
        checkout = options.baseline.resolve()
        venv_python = checkout / ".venv" / "bin" / "python"
        python = str(venv_python) if venv_python.exists() else sys.executable
        # run in the checkout: its own package comes first on sys.path ("" of python -c)
        variants.append(Variant(f"{checkout}", python, checkout, RUN_CLI))
    for checkout in {v.checkout for v in [*variants, here]}:
        compile_bytecode(checkout)
    # this tree as an editable install runs without bytecode (PYTHONDONTWRITEBYTECODE):
    # a copy of the package with none, run from the copy
    uncompiled = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    shutil.copytree(ROOT / "reconciler", uncompiled / "reconciler", ignore=_no_bytecode)
    no_bytecode = {"PYTHONDONTWRITEBYTECODE": "1"}
    variants.append(
        Variant("this tree, no bytecode", sys.executable, uncompiled, RUN_CLI, no_bytecode)
    )
    variants.append(here)
    floor = Variant("python -c pass", sys.executable, ROOT, "pass")
    commands = {"--help": ["--help"], "validate inventory-example": ["validate", str(EXAMPLE)]}
    for _ in range(options.runs):
        for label, args in [("", []), *commands.items()]:
            for variant in [floor] if not label else variants:
                wall, cpu = run_once(variant, args)
                variant.walls.setdefault(label, []).append(wall)
                variant.cpus.setdefault(label, []).append(cpu)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:7.0f} ms"

    print(f"median of {options.runs} runs; python -c pass: {ms(floor.walls[''])} wall", end="")
    print(f"{ms(floor.cpus[''])} CPU")
    header = f"{'command':<28}{'variant':<28}{'wall':>10}{'CPU':>11}{'CPU / this tree':>17}"
    print(header + ("     instructions  / this tree" if options.instructions else ""))
    for label, args in commands.items():
        new_cpu = statistics.median(here.cpus[label])
        counts = {v.label: instructions(v, args) for v in variants} if options.instructions else {}
        for variant in variants:
            ratio = statistics.median(variant.cpus[label]) / new_cpu
            line = (
                f"{label:<28}{variant.label:<28}{ms(variant.walls[label])}"
                f"{ms(variant.cpus[label])}{ratio:16.2f}x"
            )
            if counts:
                count = counts[variant.label]
                line += f"{count:13.0f} M{count / counts[here.label]:12.2f}x"
            print(line)
    shutil.rmtree(uncompiled)


if __name__ == "__main__":
    main()
