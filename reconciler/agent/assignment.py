"""A node's assignment as serve hands it out (``/nodes/<host>.json``), checked on arrival.

The agent acts on these values (downloads URLs, compares digests, writes them
into a shell-sourceable file), so a malformed assignment is rejected whole
with a message rather than half used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SHA256 = re.compile(r"^[0-9a-f]{64}$")
SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
UNSAFE_IN_CMDLINE = re.compile(r"[\s\"'\\\x00-\x1f\x7f]")


class AssignmentError(ValueError):
    """The assignment is not usable; the message says which field and why."""


@dataclass(frozen=True)
class Artifact:
    url: str
    sha256: str


@dataclass(frozen=True)
class Assignment:
    host: str
    image: str
    version: str
    kernel: Artifact
    initrd: Artifact
    rootfs: Artifact
    cmdline: str
    swap: str = "live"  # "reboot": the group's rollout says always reboot, never swap live

    @property
    def label(self) -> str:
        return f"{self.image}@{self.version}"

    @property
    def rootfs_sha256(self) -> str:
        return self.rootfs.sha256

    @property
    def kernel_sha256(self) -> str:
        return self.kernel.sha256


def _artifact(data: dict[str, Any], name: str) -> Artifact:
    entry = data.get(name)
    if not isinstance(entry, dict):
        raise AssignmentError(f"'{name}' must be an object with 'url' and 'sha256'")
    url, sha = entry.get("url"), entry.get("sha256")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AssignmentError(f"'{name}.url' must be an http(s) URL, not {url!r}")
    if UNSAFE_IN_CMDLINE.search(url):
        raise AssignmentError(f"'{name}.url' must not contain spaces, quotes or control characters")
    if not isinstance(sha, str) or not SHA256.match(sha.lower()):
        raise AssignmentError(f"'{name}.sha256' must be 64 hex digits, not {sha!r}")
    return Artifact(url, sha.lower())


def parse_assignment(data: Any) -> Assignment:
    """An ``Assignment`` from decoded JSON; AssignmentError when a field is wrong."""
    if not isinstance(data, dict):
        raise AssignmentError("the assignment is not a JSON object")
    labels = {}
    for name in ("host", "image", "version"):
        value = data.get(name)
        if not isinstance(value, str) or not SAFE_LABEL.match(value):
            raise AssignmentError(f"'{name}' must be a plain name (letters, digits, ._+-)")
        labels[name] = value
    cmdline = data.get("cmdline", "")
    if not isinstance(cmdline, str) or "\n" in cmdline:
        raise AssignmentError("'cmdline' must be a one-line string")
    return Assignment(
        host=labels["host"],
        image=labels["image"],
        version=labels["version"],
        kernel=_artifact(data, "kernel"),
        initrd=_artifact(data, "initrd"),
        rootfs=_artifact(data, "rootfs"),
        cmdline=cmdline,
        swap=_swap(data),
    )


def _swap(data: dict[str, Any]) -> str:
    swap = data.get("swap", "live")
    if swap not in ("live", "reboot"):
        raise AssignmentError(f"'swap' must be 'live' or 'reboot', not {swap!r}")
    return str(swap)
