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
installed package has it: under PYTHONDONTWRITEBYTECODE an editable install would
otherwise compile every reconciler module again on each run (~30 ms here).

    .venv/bin/python bench/bench_cli.py [--runs 15] [--baseline /work/main]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
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


@dataclass
class Variant:
    """One way of running the command: which interpreter, in which checkout, what code."""

    label: str
    python: str
    checkout: Path
    code: str
    walls: dict[str, list[float]] = field(default_factory=dict)
    cpus: dict[str, list[float]] = field(default_factory=dict)


def run_once(variant: Variant, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``python -c code args``."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [variant.python, "-c", variant.code, *args],
        cwd=variant.checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime


def compile_bytecode(checkout: Path) -> None:
    """Bytecode for the checkout's package, as pip writes it for an installed one."""
    compileall.compile_dir(checkout / "reconciler", quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--baseline", type=Path, help="another checkout with its own .venv, e.g. /work/main"
    )
    options = parser.parse_args()
    here = Variant("this tree", sys.executable, ROOT, RUN_CLI)
    variants = [Variant("old way (eager imports)", sys.executable, ROOT, EAGER)]
    if options.baseline is not None:
        checkout = options.baseline.resolve()
        python = str(checkout / ".venv" / "bin" / "python")
        variants.append(Variant(f"{checkout}", python, checkout, RUN_CLI))
    variants.append(here)
    for checkout in {v.checkout for v in variants}:
        compile_bytecode(checkout)
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
    print(f"{'command':<28}{'variant':<28}{'wall':>10}{'CPU':>11}{'CPU / this tree':>17}")
    for label in commands:
        new_cpu = statistics.median(here.cpus[label])
        for variant in variants:
            ratio = statistics.median(variant.cpus[label]) / new_cpu
            print(
                f"{label:<28}{variant.label:<28}{ms(variant.walls[label])}"
                f"{ms(variant.cpus[label])}{ratio:16.2f}x"
            )


if __name__ == "__main__":
    main()
