"""The node's boot path: the initramfs that boots a stateless node, and its shell helpers.

``reconciler initramfs`` builds it (``initramfs.py``); the shell files in
``files/`` (``init``, ``mount-root.sh``, ``node-switch``, ``udhcpc.script``,
``inittab.snippet``) are the node's side of the protocol in
``docs/node-protocol.md``, shared by the initramfs and the live swap path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FILES = Path(str(resources.files(__name__) / "files"))
