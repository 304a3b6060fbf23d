"""Build the initramfs that boots a stateless node: busybox, modules, /init, as a gzip cpio.

The archive holds Debian's static busybox with a link per applet, the kernel
modules chosen by ``modules.py`` (with ``/lib/reconciler/modules.deps``, one
line per module name with its load order, and ``modules.boot``, the names
loaded at every boot), and the shell files of ``files/``. The output is
deterministic: the same busybox, modules and files give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.nodeboot import FILES
from reconciler.nodeboot.cpio import Member, write_newc
from reconciler.nodeboot.modules import ModuleSelection, ModuleTree, select_modules

BUSYBOX = Path("/bin/busybox")
BASE_DIRECTORIES = (
    "bin", "dev", "etc", "lib", "lib/modules", "lib/reconciler", "mnt", "newroot", "proc",
    "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin", "var",
)  # fmt: skip
SHELL_FILES = {  # file in files/ -> (path in the initramfs, mode)
    "init": ("init", 0o755),
    "mount-root.sh": ("lib/reconciler/mount-root.sh", 0o644),
    "udhcpc.script": ("lib/reconciler/udhcpc.script", 0o755),
}


class InitramfsError(ValueError):
    """The initramfs cannot be built (missing busybox, bad busybox); the message says why."""


@dataclass(frozen=True)
class BuildResult:
    path: Path
    sha256: str
    size: int
    modules: tuple[str, ...]
    skipped: tuple[str, ...]


def busybox_applets(busybox: Path) -> list[str]:
    """Paths (relative, e.g. ``sbin/switch_root``) of every applet ``busybox`` provides."""
    try:
        listing = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise InitramfsError(
            f"{busybox}: cannot list its applets ({error}); install busybox-static"
        ) from error
    applets = sorted({line.strip().strip("/") for line in listing.splitlines() if line.strip()})
    # The list names busybox itself: a link there would replace the binary by a self-link.
    return [path for path in applets if path != "bin/busybox"]


def _directories_of(paths: Iterable[str]) -> list[str]:
    folders: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(folders)


def members(*, busybox: Path, kernel_version: str, selection: ModuleSelection) -> Iterator[Member]:
    """Every member of the archive, directories before what they hold, in a fixed order."""
    if not busybox.is_file():
        raise InitramfsError(f"{busybox}: not found; install busybox-static")
    applets = busybox_applets(busybox)
    module_paths = {m.name: f"lib/modules/{kernel_version}/{m.relative}" for m in selection.modules}
    files = [path for path, _ in SHELL_FILES.values()]
    folders = sorted(
        set(BASE_DIRECTORIES) | set(_directories_of([*applets, *module_paths.values(), *files]))
    )
    for folder in folders:
        yield Member.directory(folder)
    yield Member.char_device("dev/console", 5, 1)
    yield Member.char_device("dev/null", 1, 3, perm=0o666)
    yield Member.file("bin/busybox", busybox.read_bytes(), perm=0o755)
    for applet in applets:
        yield Member.symlink(applet, "/bin/busybox")
    for name, (path, perm) in sorted(SHELL_FILES.items()):
        yield Member.file(path, (FILES / name).read_bytes(), perm=perm)
    for module in sorted(selection.modules, key=lambda m: module_paths[m.name]):
        yield Member.file(module_paths[module.name], module.elf)
    deps = "".join(
        f"{name} {' '.join('/' + module_paths[m.name] for m in closure)}\n"
        for name, closure in sorted(selection.closures.items())
    )
    yield Member.file("lib/reconciler/modules.deps", deps.encode())
    boot = "".join(f"{name}\n" for name in selection.boot)
    yield Member.file("lib/reconciler/modules.boot", boot.encode())


def build_initramfs(
    *,
    modules_dir: Path,
    kernel_version: str,
    out: Path,
    boot_modules: Iterable[str] = (),
    optional_modules: Iterable[str] = (),
    busybox: Path = BUSYBOX,
    default_nics: bool = True,
) -> BuildResult:
    """Write the gzip'd cpio to ``out`` (atomically) and describe what it holds."""
    tree = ModuleTree(modules_dir)
    selection = select_modules(
        tree, boot=boot_modules, optional=optional_modules, default_nics=default_nics
    )
    archive = write_newc(
        members(busybox=busybox, kernel_version=kernel_version, selection=selection)
    )
    compressed = gzip.compress(archive, compresslevel=9, mtime=0)
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(compressed)
    partial.replace(out)
    return BuildResult(
        path=out,
        sha256=hashlib.sha256(compressed).hexdigest(),
        size=len(compressed),
        modules=tuple(m.name for m in selection.modules),
        skipped=selection.skipped,
    )
