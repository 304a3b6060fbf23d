"""plan and validate end with os._exit (reconciler/quick_exit.py): what they print,
log and return must be what a normal exit gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"

RUN = """
import logging, sys
from reconciler.quick_exit import run_then_exit
logging.basicConfig(stream=sys.stderr, format="%(message)s")
def app():
    sys.stdout.write("buffered, not flushed\\n")
    logging.getLogger("t").warning("a log line")
    raise SystemExit({code})
run_then_exit(app)
print("never reached")
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN.format(code=code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_output_logs_and_exit_code_survive_the_quick_exit() -> None:
    done = _run("1")
    assert done.returncode == 1
    assert done.stdout == "buffered, not flushed\n"
    assert done.stderr == "a log line\n"


def test_exit_codes_as_sys_exit_makes_them() -> None:
    assert _run("None").returncode == 0
    assert _run("2").returncode == 2
    message = _run("'cannot go on'")
    assert message.returncode == 1
    assert message.stderr.endswith("cannot go on\n")


def test_validate_by_the_console_script_prints_and_exits_as_before(tmp_path: Path) -> None:
    broken = tmp_path / "inventory"
    subprocess.run(["cp", "-r", str(EXAMPLE), str(broken)], check=True)
    site = broken / "site.yaml"
    site.write_text(site.read_text() + "\nnot_a_setting: 1\n")
    script = Path(sys.executable).parent / "reconciler"
    good = subprocess.run(
        [str(script), "validate", str(EXAMPLE)], capture_output=True, text=True, timeout=120
    )
    bad = subprocess.run(
        [str(script), "validate", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 2
    assert "not_a_setting" in bad.stderr + bad.stdout
