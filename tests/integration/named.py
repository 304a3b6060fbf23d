"""A real named for the DNS tests: the sandbox's implementation, plus the pytest fixture.

The code lives in ``reconciler.sandbox.named`` so ``reconciler sandbox`` and
the tests share one implementation. Here a missing BIND skips the test
instead of failing it, and ``named_server`` gives each test a fresh server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox import named as _named
from reconciler.sandbox.named import (
    ADMIN_KEY_NAME,
    FORWARD_ZONE,
    HOST,
    KEY_NAME,
    NAMED,
    REVERSE_ZONE,
    STATIC_ZONE,
    NamedServer,
    free_port,
    write_key_file,
)
from reconciler.sandbox.netns import MissingTool

__all__ = [
    "ADMIN_KEY_NAME",
    "FORWARD_ZONE",
    "HOST",
    "KEY_NAME",
    "NAMED",
    "REVERSE_ZONE",
    "STATIC_ZONE",
    "NamedServer",
    "free_port",
    "named_server",
    "running_named",
    "start_named",
    "write_key_file",
]


def start_named(directory: Path, **kwargs: Any) -> NamedServer:
    """``reconciler.sandbox.named.start_named``; skips the test when BIND is not installed."""
    try:
        return _named.start_named(directory, **kwargs)
    except MissingTool as error:
        pytest.skip(str(error))


@contextlib.contextmanager
def running_named(directory: Path, **kwargs: Any) -> Iterator[NamedServer]:
    server = start_named(directory, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def named_server(tmp_path: Path) -> Iterator[NamedServer]:
    """A fresh named for one test (starting takes well under a second)."""
    with running_named(tmp_path / "named") as server:
        yield server
