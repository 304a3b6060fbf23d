"""Network namespaces for integration tests: the sandbox's implementation, re-exported.

The code lives in ``reconciler.sandbox.netns`` so ``reconciler sandbox`` and
the tests share one implementation; tests keep importing it from here.
"""

from __future__ import annotations

from reconciler.sandbox.netns import (
    CLONE_NEWNET,
    MissingTool,
    NetnsPair,
    create_pair,
    entered,
    namespaces,
    netns_pair,
    popen_in,
    read_text,
    require,
    run_in,
    unique_name,
    wait_for,
)

__all__ = [
    "CLONE_NEWNET",
    "MissingTool",
    "NetnsPair",
    "create_pair",
    "entered",
    "namespaces",
    "netns_pair",
    "popen_in",
    "read_text",
    "require",
    "run_in",
    "unique_name",
    "wait_for",
]
