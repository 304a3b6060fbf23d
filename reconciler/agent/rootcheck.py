"""Does an image have an init? Resolve ``/sbin/init`` inside the image, not on the host.

An image's ``/sbin/init`` is usually a symlink, and an absolute one
(``/lib/systemd/systemd``, ``/bin/busybox``); on merged-/usr systems ``/sbin``
and ``/lib`` are symlinks too. Testing ``MOUNTPOINT/sbin/init`` with the
operating system's path lookup would follow those links into the *running*
system and say yes for an image that has no init. Here every component is
resolved by hand, absolute links against the image's root, and ``..`` never
climbs above it (as ``openat2(RESOLVE_IN_ROOT)`` would do).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

MAX_LINKS = 40  # the kernel's limit for one lookup


class ResolveError(Exception):
    """The path does not resolve inside the root; the message says where it broke."""


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of ``path`` as seen from inside ``root`` (links followed within ``root``)."""
    pending = list(PurePosixPath(path).parts)
    resolved: list[str] = []  # components below root, all of them real directories so far
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("/", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            where = "/" + "/".join([*resolved, part])
            raise ResolveError(f"{where} does not exist in the image") from None
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_LINKS:
                raise ResolveError(f"too many symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = list(PurePosixPath(target).parts) + pending
            continue
        if pending and not stat.S_ISDIR(mode):
            raise ResolveError(f"/{'/'.join([*resolved, part])} is not a directory in the image")
        resolved.append(part)
    return root.joinpath(*resolved)


def check_init(root: Path, init: str = "/sbin/init") -> str:
    """'' when ``init`` is an executable file inside ``root``; otherwise why it is not."""
    try:
        found = resolve_in_root(root, init)
    except ResolveError as error:
        return f"{init}: {error}"
    except OSError as error:
        return f"{init}: cannot read the image ({error.strerror})"
    inside = "/" + str(found.relative_to(root)) if found != root else "/"
    try:
        mode = os.stat(found).st_mode
    except OSError as error:
        return f"{init} -> {inside}: {error.strerror}"
    if not stat.S_ISREG(mode):
        return f"{init} -> {inside} is not a regular file"
    if not mode & 0o111:
        return f"{init} -> {inside} is not executable"
    return ""
