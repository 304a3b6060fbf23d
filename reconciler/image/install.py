"""``reconciler image install-agent ROOTDIR``: what a node image needs for live swaps.

Installs into an image tree, before ``mksquashfs``: the agent zipapp, the
node's shell helpers shipped by ``reconciler.nodeboot`` (``mount-root.sh``,
``node-switch``), an empty ``/etc/reconciler/health.d/`` and the agent's
service: a systemd unit enabled for ``multi-user.target`` when the image
boots systemd, otherwise the busybox inittab lines (the agent respawned, and
``node-switch`` as the ``::restart:`` action). Running it twice changes
nothing the second time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.agent.build import build_zipapp
from reconciler.agent.rootcheck import ResolveError, resolve_in_root
from reconciler.nodeboot import FILES

HERE = Path(__file__).resolve().parent
UNIT = HERE / "files" / "reconciler-agent.service"
NODE_FILES = FILES  # mount-root.sh, node-switch, inittab.snippet: the node side's own files
LIB = "usr/lib/reconciler"
UNIT_PATH = "etc/systemd/system/reconciler-agent.service"
WANTS_LINK = "etc/systemd/system/multi-user.target.wants/reconciler-agent.service"


class InstallError(Exception):
    """The tree cannot take the agent; the message says why and what to do."""


@dataclass
class Installed:
    init: str  # "systemd" or "inittab"
    written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def detect_init(root: Path) -> str:
    """'systemd' when the image's /sbin/init is systemd, else 'inittab' (busybox init)."""
    try:
        init = resolve_in_root(root, "/sbin/init")
    except (ResolveError, OSError):
        init = None
    if init is not None and "systemd" in init.name:
        return "systemd"
    for candidate in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd"):
        try:
            if init is None and resolve_in_root(root, candidate).is_file():
                return "systemd"
        except (ResolveError, OSError):
            continue
    return "inittab"


def _write(root: Path, relative: str, content: bytes, mode: int, installed: Installed) -> None:
    path = root / relative
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InstallError(f"{path}: exists and is not a plain file; remove it first")
    if path.is_file() and path.read_bytes() == content and (path.stat().st_mode & 0o777) == mode:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.chmod(mode)
    os.replace(tmp, path)
    installed.written.append("/" + relative)


def _node_file(name: str) -> bytes:
    path = NODE_FILES / name
    if not path.is_file():
        raise InstallError(f"{path}: missing from this installation of the reconciler")
    return path.read_bytes()


def _enable_unit(root: Path, installed: Installed) -> None:
    _write(root, UNIT_PATH, UNIT.read_bytes(), 0o644, installed)
    link = root / WANTS_LINK
    target = "/" + UNIT_PATH
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.exists() or link.is_symlink():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    installed.written.append("/" + WANTS_LINK)


def _append_inittab(root: Path, installed: Installed) -> None:
    lines = [
        line
        for line in _node_file("inittab.snippet").decode().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    inittab = root / "etc/inittab"
    text = inittab.read_text() if inittab.exists() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in lines if line.strip() not in present]
    if not missing:
        return
    if text and not text.endswith("\n"):
        text += "\n"
    inittab.parent.mkdir(parents=True, exist_ok=True)
    inittab.write_text(text + "".join(line + "\n" for line in missing))
    installed.written.append("/etc/inittab")


def install_agent(root: Path, *, init: str = "auto") -> Installed:
    """Install the agent and its service into the image tree ``root``."""
    if not root.is_dir():
        raise InstallError(f"{root}: not a folder; give the root of an image tree")
    if not (root / "etc").is_dir():
        raise InstallError(f"{root}: has no etc/; is this the root of an image tree?")
    installed = Installed(detect_init(root) if init == "auto" else init)
    _write(root, f"{LIB}/agent.pyz", build_zipapp(), 0o755, installed)
    _write(root, f"{LIB}/mount-root.sh", _node_file("mount-root.sh"), 0o644, installed)
    _write(root, f"{LIB}/node-switch", _node_file("node-switch"), 0o755, installed)
    health = root / "etc/reconciler/health.d"
    if not health.is_dir():
        health.mkdir(parents=True)
        installed.written.append("/etc/reconciler/health.d/")
    if installed.init == "systemd":
        _enable_unit(root, installed)
    else:
        _append_inittab(root, installed)
    try:
        resolve_in_root(root, "/usr/bin/python3")
    except (ResolveError, OSError):
        installed.warnings.append(
            "the image has no /usr/bin/python3: the agent needs it (python3 from the "
            "distribution is enough; none of the reconciler's dependencies are needed)"
        )
    return installed
