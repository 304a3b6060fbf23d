"""Small node images for the VM tests and bench_swap, built once and cached by content.

Two kinds, both squashfs files a node boots through the project's initramfs:

- ``busybox_image``: busybox init, a busybox httpd answering
  ``/cgi-bin/version`` (image version, boot id, kernel, address) and, for tests
  only, ``/cgi-bin/run`` (runs the posted shell script: the tests' remote hand
  inside the VM); optionally a python3 runtime copied from Debian's python3
  (the interpreter, the stdlib minus what an agent never imports, the shared
  libraries ``ldd`` names) so the agent can run.
- ``systemd_image``: Debian minbase with systemd >= 254 (bookworm-backports on
  Debian 12, trixie's own on 13) from ``debootstrap`` (slow, minutes: cached).

Everything lands under ``RECONCILER_TEST_CACHE`` (default
/var/tmp/reconciler-test-cache), keyed by a hash of what went in, so a second
session reuses the files; a build removes the entries unused for
``RECONCILER_TEST_CACHE_HOURS`` (24 by default).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.nodeboot import FILES

CACHE = Path(os.environ.get("RECONCILER_TEST_CACHE", "/var/tmp/reconciler-test-cache"))
# Every change of the agent's code makes new images: a build removes the entries
# no session used for this long (a hit marks its entry used).
UNUSED_HOURS = float(os.environ.get("RECONCILER_TEST_CACHE_HOURS", "24"))
BUSYBOX = Path("/bin/busybox")
PYTHON = Path("/usr/bin/python3")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
MARKER = "RECONCILER-IMAGE-UP"
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
RECONCILER = REPO_ROOT / ".venv" / "bin" / "reconciler"
# Parts of the stdlib an agent never imports; the rest keeps the image honest.
STDLIB_SKIP = {
    "ensurepip", "idlelib", "tkinter", "turtledemo", "lib2to3", "pydoc_data", "distutils",
    "site-packages", "dist-packages", "test", "sqlite3", "curses", "dbm", "venv",
    "__phello__", "msilib",
}  # fmt: skip

RC_SYSINIT = f"""#!/bin/sh
# Tolerates what the initramfs or node-switch already did: mounts, address, hostname.
grep -q ' /proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q ' /sys ' /proc/mounts || mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
grep -q ' /run ' /proc/mounts || mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /tmp
ip link set lo up
[ -s /run/reconciler/net/resolv.conf ] && cp /run/reconciler/net/resolv.conf /etc/resolv.conf
echo "{MARKER} version=$(cat /etc/image-version) boot_id=$(cat /proc/sys/kernel/random/boot_id)" \\
  > /dev/console
"""
INITTAB = """::sysinit:/etc/rc.sysinit
::respawn:/usr/sbin/httpd -f -p 80 -h /srv/www
"""
CGI_VERSION = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
ip=$(ip -4 -o addr show scope global | sed -n 's/.* inet \\([0-9.]*\\).*/\\1/p' | head -n1)
echo "version=$(cat /etc/image-version) boot_id=$(cat /proc/sys/kernel/random/boot_id)\
 kernel=$(uname -r) ip=$ip"
"""
CGI_RUN = """#!/bin/sh
# Test hand: run the posted shell script, answer its output (test images only).
printf 'Content-Type: text/plain\\r\\n\\r\\n'
head -c "${CONTENT_LENGTH:-0}" > /tmp/cgi-run.sh
sh /tmp/cgi-run.sh 2>&1
"""
FAILING_CHECK = """#!/bin/sh
echo "this version is broken on purpose"
exit 1
"""


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def cached(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """``CACHE/<name>-<key>``, built by ``build(partial_path)`` when absent.

    Using an entry touches it; after a build, entries (and abandoned partial
    builds) no session touched for ``UNUSED_HOURS`` are removed.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    final = CACHE / f"{name}-{key}"
    if not final.exists():
        partial = CACHE / f".{name}-{key}.{os.getpid()}"
        if partial.is_dir():
            shutil.rmtree(partial)
        partial.mkdir()
        build(partial)
        try:
            partial.rename(final)
        except OSError:  # another session built it meanwhile: keep theirs
            if not final.exists():
                raise
            shutil.rmtree(partial)
        prune(CACHE, unused_for=UNUSED_HOURS * 3600)
    os.utime(final)  # used now
    return final


def prune(cache: Path, *, unused_for: float) -> list[str]:
    """Remove what in ``cache`` was not used for ``unused_for`` seconds; the names removed."""
    removed = []
    for path in cache.iterdir():
        try:
            idle = time.time() - path.stat().st_mtime
        except FileNotFoundError:  # another session removed it
            continue
        if idle > unused_for:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def mksquashfs(tree: Path, out: Path) -> None:
    """A reproducible squashfs of ``tree`` (root-owned, time 0)."""
    subprocess.run(
        ["mksquashfs", str(tree), str(out), "-noappend", "-all-root", "-comp", "zstd",
         "-mkfs-time", "0", "-all-time", "0", "-no-progress", "-quiet"],
        check=True, timeout=600, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _copy_with_libs(binary: Path, root: Path) -> None:
    """Copy ``binary`` and the shared libraries ``ldd`` lists into ``root`` (same paths)."""
    listing = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, timeout=30
    ).stdout
    for path in [binary, *map(Path, re.findall(r"(/\S+) \(0x", listing))]:
        target = root / str(path).lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path.resolve(), target)


def python_runtime_key() -> str:
    version = subprocess.run(
        [str(PYTHON), "-c", "import sys; print(sys.version)"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return _digest(version, PYTHON.resolve().read_bytes()[:4096], repr(sorted(STDLIB_SKIP)))


def add_python(root: Path) -> None:
    """Debian's python3 with a trimmed stdlib and its shared libraries, into ``root``."""
    binary = PYTHON.resolve()
    _copy_with_libs(binary, root)
    (root / "usr/bin/python3").unlink(missing_ok=True)
    (root / "usr/bin/python3").symlink_to(binary.name)
    query = "import sysconfig; print(sysconfig.get_path('stdlib'))"
    stdlib = Path(
        subprocess.run(
            [str(PYTHON), "-c", query], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    )
    ignore_top = shutil.ignore_patterns(*STDLIB_SKIP, "config-*")
    shutil.copytree(stdlib, root / str(stdlib).lstrip("/"), symlinks=True, ignore=ignore_top)
    for extension in sorted((stdlib / "lib-dynload").glob("*.so")):
        _copy_with_libs(extension, root)


def install_node_files(root: Path) -> None:
    """What ``reconciler image install-agent`` puts in place for busybox init, minus the
    agent: mount-root.sh, node-switch and the ``::restart:`` line."""
    lib = root / "usr/lib/reconciler"
    lib.mkdir(parents=True, exist_ok=True)
    for name, mode in (("mount-root.sh", 0o644), ("node-switch", 0o755)):
        shutil.copy(FILES / name, lib / name)
        (lib / name).chmod(mode)
    with (root / "etc/inittab").open("a") as inittab:
        inittab.write("::restart:/usr/lib/reconciler/node-switch\n")


def busybox_tree(root: Path, *, version: str, init: bool = True, node_files: bool = True) -> None:
    """The tree of a busybox-init image that answers its version over HTTP."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    for folder in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run",
                   "tmp", "root", "srv/www/cgi-bin", "var", "lib", "mnt"):  # fmt: skip
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in applets:
        if applet.strip("/") != "bin/busybox" and (init or applet.strip("/") != "sbin/init"):
            (root / applet.strip("/")).symlink_to("/bin/busybox")  # absolute, as in real images
    _write(root / "etc/image-version", version + "\n")
    _write(root / "etc/rc.sysinit", RC_SYSINIT, 0o755)
    _write(root / "etc/inittab", INITTAB)
    _write(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    _write(root / "etc/group", "root:x:0:\n")
    _write(root / "srv/www/cgi-bin/version", CGI_VERSION, 0o755)
    _write(root / "srv/www/cgi-bin/run", CGI_RUN, 0o755)
    if node_files:
        install_node_files(root)


def install_agent(root: Path) -> None:
    """``reconciler image install-agent ROOT``, as a user prepares an image."""
    subprocess.run(
        [str(RECONCILER), "image", "install-agent", str(root)],
        check=True, timeout=120, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def agent_key() -> str:
    """What install-agent puts into an image: the agent's sources and the node's files."""
    sources = sorted((REPO_ROOT / "reconciler" / "agent").glob("*.py"))
    node_files = sorted(FILES.iterdir())
    image_files = sorted((REPO_ROOT / "reconciler" / "image").rglob("*"))
    return _digest(*(p.read_bytes() for p in [*sources, *node_files, *image_files] if p.is_file()))


def add_kexec(root: Path) -> None:
    """kexec-tools' binary and its libraries (libxen* on Debian 12), for a kexec swap."""
    kexec = shutil.which("kexec") or "/sbin/kexec"
    _copy_with_libs(Path(kexec), root)
    target = root / "usr/sbin/kexec"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(kexec).resolve(), target)


def busybox_image(
    version: str,
    *,
    agent: bool = False,
    init: bool = True,
    kexec: bool = False,
    failing_health: bool = False,
) -> Path:
    """A cached busybox-init squashfs answering ``version``. ``agent``: python3 and
    ``reconciler image install-agent``; ``kexec``: kexec-tools; ``failing_health``: a
    health.d check that always fails."""
    key = _digest(
        version, str(agent), str(init), str(kexec), str(failing_health), BUSYBOX.read_bytes(),
        RC_SYSINIT, INITTAB, CGI_VERSION, CGI_RUN,
        (FILES / "mount-root.sh").read_bytes(), (FILES / "node-switch").read_bytes(),
        python_runtime_key() + agent_key() if agent else "",
    )  # fmt: skip

    def build(folder: Path) -> None:
        tree = folder / "tree"
        busybox_tree(tree, version=version, init=init, node_files=not agent)
        if agent:
            add_python(tree)
            install_agent(tree)
        if kexec:
            add_kexec(tree)
        if failing_health:
            _write(tree / "etc/reconciler/health.d/always-fails", FAILING_CHECK, 0o755)
        mksquashfs(tree, folder / "rootfs.squashfs")
        shutil.rmtree(tree)

    return cached("busybox", key, build) / "rootfs.squashfs"


NODE_SERVICE = """#!/usr/bin/python3
# The systemd test image's service: its version over HTTP, and the tests' hand (POST /cgi-bin/run).
import fcntl, http.server, socket, struct, subprocess


def address():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", b"eth0"))
        except OSError:
            return ""
        return socket.inet_ntoa(raw[20:24])


def read(path):
    with open(path) as f:
        return f.read().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, text):
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer("version=%s boot_id=%s kernel=%s ip=%s\\n" % (
            read("/etc/image-version"), read("/proc/sys/kernel/random/boot_id"),
            read("/proc/sys/kernel/osrelease"), address()))

    def do_POST(self):
        script = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        done = subprocess.run(["sh", "-c", script], capture_output=True, timeout=120)
        self.answer((done.stdout + done.stderr).decode(errors="replace"))

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", 80), Handler).serve_forever()
"""
SERVICE_UNIT = """[Unit]
Description=Test node service: answers the image version on port 80
[Service]
ExecStart=/usr/bin/python3 /usr/local/sbin/node-service
Restart=always
RestartSec=0.2
[Install]
WantedBy=multi-user.target
"""
MARKER_SCRIPT = f"""#!/bin/sh
boot_id=$(cat /proc/sys/kernel/random/boot_id)
echo "{MARKER} version=$(cat /etc/image-version) boot_id=$boot_id" > /dev/console
"""
MARKER_UNIT = """[Unit]
Description=Say on the console that the image is up
After=node-service.service
[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/sbin/node-marker
[Install]
WantedBy=multi-user.target
"""


def systemd_image(version: str) -> Path:
    """A cached squashfs of the debootstrap tree: systemd >= 254, python3, the agent, and a
    service answering ``version`` (minutes the first time, for debootstrap)."""
    base = systemd_tree()
    key = _digest(
        version, base.name, NODE_SERVICE, SERVICE_UNIT, MARKER_UNIT, MARKER_SCRIPT, agent_key()
    )

    def build(folder: Path) -> None:
        tree = folder / "tree"
        subprocess.run(["cp", "-a", str(base), str(tree)], check=True, timeout=600)
        _write(tree / "etc/image-version", version + "\n")
        _write(tree / "usr/local/sbin/node-service", NODE_SERVICE, 0o755)
        _write(tree / "usr/local/sbin/node-marker", MARKER_SCRIPT, 0o755)
        units = tree / "etc/systemd/system"
        for name, text in (("node-service", SERVICE_UNIT), ("node-marker", MARKER_UNIT)):
            _write(units / f"{name}.service", text)
            wants = units / "multi-user.target.wants" / f"{name}.service"
            wants.parent.mkdir(parents=True, exist_ok=True)
            wants.symlink_to(f"/etc/systemd/system/{name}.service")
        # No login prompts and no network managers: the initramfs configured eth0.
        for unit in ("getty@tty1.service", "serial-getty@ttyS0.service",
                     "systemd-networkd.service", "systemd-timesyncd.service"):  # fmt: skip
            mask = units / unit
            mask.unlink(missing_ok=True)
            mask.symlink_to("/dev/null")
        _write(tree / "etc/hostname", "node\n")
        install_agent(tree)
        mksquashfs(tree, folder / "rootfs.squashfs")
        shutil.rmtree(tree)

    return cached("systemd", key, build) / "rootfs.squashfs"


def debian_suite() -> str:
    """bookworm on Debian 12, trixie on 13: the host's own release, whose mirror we use."""
    major = Path("/etc/debian_version").read_text().split(".")[0].strip()
    return "trixie" if major == "13" or major.startswith("trixie") else "bookworm"


def systemd_tree() -> Path:
    """A cached debootstrap tree with systemd >= 254 and python3 (minutes the first time)."""
    script = HERE / "vm" / "debootstrap-systemd.sh"
    suite = debian_suite()
    key = _digest(suite, script.read_bytes())

    def build(folder: Path) -> None:
        subprocess.run(
            ["bash", str(script), suite, DEBIAN_MIRROR, str(folder)],
            check=True, timeout=1800, stdout=subprocess.DEVNULL, stderr=sys.stderr,
        )  # fmt: skip

    return cached(f"debootstrap-{suite}", key, build)
