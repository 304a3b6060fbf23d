#!/usr/bin/env bash
# Set up, then run every check: ruff, mypy, the unit tests and the integration
# tests against real dhcpd, named, tftpd, dhclient and qemu (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy reconciler tests bench  # --strict, see pyproject.toml [tool.mypy]
RECONCILER_NO_SKIPS=1 .venv/bin/python -m pytest -q "$@"
