"""A site for live-swap tests: dhcpd, ``reconciler serve`` and an image store in a namespace,
and qemu nodes booting through the project's initramfs on a tap bridged to it.

The inventory is a git repository (one group, one host ``node020``, one image
whose versions the test adds); a reconcile pass writes the dhcpd config and
host entries (the node always gets 10.23.45.20) and the boot files. Nodes boot
qemu ``-kernel`` with the host's kernel, the initramfs of ``reconciler
initramfs`` and the command line ``serve`` hands out for the node's MAC
(``/boot/<mac>``), so they fetch and verify their rootfs as a PXE-booted node
would. Tests talk to the node's services from the server namespace (a thread
enters it), so nothing outside the namespaces is ever contacted. Every wait is
bounded; qemu is killed whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from reconciler.nodeboot.initramfs import build_initramfs
from reconciler.sandbox.dhcp import Dhcpd, write_key
from reconciler.sandbox.netns import NetnsPair, entered, popen_in, unique_name, wait_for
from tests.integration.pxe_machine import add_tap_bridge, background, static_server

QEMU = Path("/usr/bin/qemu-system-x86_64")
SERVER = "10.23.45.2"
SERVE_URL = f"http://{SERVER}:8080"
IMAGES_URL = f"http://{SERVER}:8081"
NODE, NODE_MAC, NODE_IP = "node020", "52:54:00:12:34:14", "10.23.45.20"
IMAGE = "node"
REPO_ROOT = Path(__file__).resolve().parents[2]
CMDLINE = "console=ttyS0 panic=-1 loglevel=3 net.ifnames=0"
NIC_MODULES = ("virtio_pci", "virtio_net")


BOOT_TIMEOUT = 240  # TCG on a shared 2-core machine: a boot takes 15-40 s; this is a hang guard


def running_kernel() -> Path:
    own = Path(f"/boot/vmlinuz-{os.uname().release}")
    return own if own.exists() else kernels()[0]


def wait_version(lab: NodeLab, version: str, *, timeout: float) -> dict[str, str]:
    """Poll the node's version service until it answers ``version``; return that answer."""
    answer: dict[str, str] = {}

    def on_version() -> bool:
        nonlocal answer
        answer = version_of(lab.node(timeout=1))
        return answer.get("version") == version

    wait_for(on_version, timeout=timeout, interval=0.2, what=f"the node to answer {version}")
    return answer


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kernels() -> list[Path]:
    """The host's kernels, newest first (``linux-image-amd64``, ``linux-image-cloud-amd64``)."""
    return sorted(Path("/boot").glob("vmlinuz-*"), reverse=True)


def initramfs_for(kernel: Path, out: Path) -> Path:
    """The project's initramfs for ``kernel`` (only the qemu NIC driver: quicker in TCG)."""
    version = kernel.name.removeprefix("vmlinuz-")
    build_initramfs(
        modules_dir=Path("/lib/modules") / version,
        kernel_version=version,
        out=out,
        boot_modules=NIC_MODULES,
        default_nics=False,
    )
    return out


def group_yaml(version: str) -> str:
    return f"""\
name: compute
subnet: 10.23.45.0/24
gateway: 10.23.45.1
hostname: "node%03d"
image: {IMAGE}@{version}
hosts:
  - index: 20
    mac: "{NODE_MAC}"
"""


def config_text(workdir: Path, dhcpd: Dhcpd) -> str:
    return f"""state_dir = "state"
max_change_fraction = 1.0
[source]
repo = "inventory"
rev = "main"
[boot]
http_url = "{SERVE_URL}"
tftp_server = "{SERVER}"
[targets.dhcp-hosts]
type = "dhcp-file"
path = "hosts.conf"
[targets.dhcp]
type = "dhcp-conf"
path = "{dhcpd.conf}"
include = "hosts.conf"
omapi_key_file = "omapi.key"
restart_command = "{dhcpd.restart_script}"
[targets.boot]
type = "bootfiles"
directory = "tftp"
[targets.nodes]
type = "node-images"
directory = "www"
[serve]
listen = "{SERVER}"
port = 8080
audit_log = "{workdir / "audit.jsonl"}"
refresh_seconds = 0.3
"""


class NodeLab:
    """The site: call ``add_version`` for each image version, ``assign`` one, boot nodes."""

    def __init__(self, pair: NetnsPair, workdir: Path) -> None:
        self.pair = pair
        self.workdir = workdir
        self.store = workdir / "store"
        self.repo = workdir / "inventory"
        self.config = workdir / "reconciler.toml"
        self.versions: dict[str, dict[str, object]] = {}
        self.tap = unique_name("tap")
        self._stack = contextlib.ExitStack()

    # -- the inventory ---------------------------------------------------------------

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
             *args],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip

    def add_version(
        self, version: str, *, rootfs: Path, kernel: Path, initrd: Path, cmdline: str = CMDLINE
    ) -> None:
        """Put the artifacts in the image store and the version into images/node.yaml."""
        folder = self.store / version
        folder.mkdir(parents=True, exist_ok=True)
        artifacts = {}
        for name, source in (("vmlinuz", kernel), ("initrd.img", initrd), ("rootfs", rootfs)):
            shutil.copy(source, folder / name)
            artifacts[name] = {"url": f"{IMAGES_URL}/{version}/{name}", "sha256": sha256_of(source)}
        self.versions[version] = {
            "kernel": artifacts["vmlinuz"], "initrd": artifacts["initrd.img"],
            "rootfs": artifacts["rootfs"], "cmdline": cmdline,
        }  # fmt: skip
        (self.repo / "images").mkdir(parents=True, exist_ok=True)
        text = json.dumps({"name": IMAGE, "versions": self.versions}, indent=1)
        (self.repo / "images" / f"{IMAGE}.yaml").write_text(text)  # JSON is YAML

    def assign(self, version: str, *, timeout: float = 30) -> None:
        """Commit ``version`` as the node's image, reconcile, wait until serve hands it out."""
        (self.repo / "groups").mkdir(parents=True, exist_ok=True)
        (self.repo / "groups" / "compute.yaml").write_text(group_yaml(version))
        self._git("add", "-A")
        self._git("commit", "-qm", f"node020 runs {IMAGE}@{version}")
        self.reconcile()
        wait_for(
            lambda: self.assignment().get("version") == version,
            timeout=timeout, interval=0.2, what=f"serve to assign {version}",
        )  # fmt: skip

    def reconcile(self) -> None:
        """``reconciler apply``: applies the head and records it as the revision serve uses."""
        result = subprocess.run(
            [str(REPO_ROOT / ".venv" / "bin" / "reconciler"), "apply", "--force",
             "--config", str(self.config)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    # -- the services ----------------------------------------------------------------

    def start(self, first_version: str) -> None:
        """Namespaces are up; commit ``first_version``, start dhcpd, the store and serve."""
        add_tap_bridge(self.pair, tap=self.tap, bridge=unique_name("br"))
        self.repo.mkdir(parents=True, exist_ok=True)
        (self.repo / "site.yaml").write_text("domain: cluster.example\nlease_time: 3600\n")
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.repo)], check=True, timeout=30)
        dhcpd = Dhcpd(self.pair, self.workdir)
        write_key(self.workdir / "omapi.key")
        self.config.write_text(config_text(self.workdir, dhcpd))
        (self.repo / "groups").mkdir(exist_ok=True)
        (self.repo / "groups" / "compute.yaml").write_text(group_yaml(first_version))
        self._git("add", "-A")
        self._git("commit", "-qm", "site")
        self.reconcile()  # writes dhcpd.conf and hosts.conf, starts dhcpd
        wait_for(dhcpd.running, timeout=10, what="dhcpd")
        reconciler = str(REPO_ROOT / ".venv" / "bin" / "reconciler")
        self._stack.enter_context(background(
            self.pair, self.pair.server,
            static_server(directory=self.store, address=SERVER, port=8081),
            log=self.workdir / "store.log",
        ))  # fmt: skip
        self._stack.enter_context(background(
            self.pair, self.pair.server,
            [reconciler, "--log-level", "info", "serve", "--config", str(self.config)],
            log=self.workdir / "serve.log",
        ))  # fmt: skip
        wait_for(lambda: self.get(f"{SERVE_URL}/healthz") is not None, timeout=30,
                 interval=0.3, what="serve")  # fmt: skip
        self.pair.on_cleanup(self._stack.close)

    def close(self) -> None:
        self._stack.close()

    # -- HTTP inside the server namespace --------------------------------------------

    def get(self, url: str, *, timeout: float = 2, data: bytes | None = None) -> str | None:
        """The body of ``url`` (POST ``data`` if given), or None when it does not answer."""
        with entered(self.pair.server):
            try:
                with urllib.request.urlopen(url, data=data, timeout=timeout) as response:
                    return str(response.read().decode(errors="replace"))
            except (OSError, urllib.error.URLError):
                return None

    def assignment(self) -> dict[str, object]:
        text = self.get(f"{SERVE_URL}/nodes/{NODE}.json")
        return dict(json.loads(text)) if text else {}

    def kernel_args(self) -> str:
        """The node's command line from its boot script, as iPXE would pass it."""
        script = self.get(f"{SERVE_URL}/boot/{NODE_MAC}") or ""
        line = next((ln for ln in script.splitlines() if ln.startswith("kernel ")), None)
        assert line is not None, f"no kernel line in the node's boot script:\n{script}"
        words = line.split()[2:]  # iPXE expands an unset ${setting} to nothing
        return " ".join(w for w in words if not w.startswith(("initrd=", "${")))

    def node(self, path: str = "/cgi-bin/version", *, timeout: float = 2) -> str | None:
        return self.get(f"http://{NODE_IP}{path}", timeout=timeout)

    def run_on_node(self, script: str, *, timeout: float = 60) -> str:
        """Run a shell script on the node through the test image's /cgi-bin/run."""
        answer = self.get(f"http://{NODE_IP}/cgi-bin/run", data=script.encode(), timeout=timeout)
        assert answer is not None, "the node did not answer /cgi-bin/run"
        return answer


class NodeVM:
    """One qemu node on the lab's tap, booted with ``-kernel``; its console goes to a file."""

    def __init__(
        self,
        lab: NodeLab,
        *,
        kernel: Path | None,
        initrd: Path | None = None,
        append: str = "",
        console: Path,
        memory: int = 512,
        allow_reboot: bool = False,
    ) -> None:
        """``kernel`` None: a PXE boot (SeaBIOS, qemu's iPXE ROM, dhcpd, serve's script)."""
        self.lab = lab
        self.console = console
        if kernel is None:
            boot = ["-boot", "n"]
            rom = ""  # qemu's own efi-virtio.rom: iPXE for BIOS and UEFI (pxe-virtio.rom is not)
        else:
            boot = ["-kernel", str(kernel), "-initrd", str(initrd), "-append", append]
            rom = ",romfile="  # no option ROM: quicker
        self.argv = [
            str(QEMU), "-nographic", "-m", str(memory), "-smp", "1", *boot,
            "-netdev", f"tap,id=n0,ifname={lab.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={NODE_MAC}{rom}",
            *([] if allow_reboot else ["-no-reboot"]),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NodeVM:
        stream = self.console.open("wb")
        self.process = popen_in(
            self.lab.pair.client, self.argv,
            stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stream.close()
        self.lab.pair.on_cleanup(self.stop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def text(self) -> str:
        return self.console.read_text(errors="replace")

    def wait_console(self, pattern: str, *, timeout: float, start: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` on the console after offset ``start``."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.text(), start)
            if match:
                return match
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise TimeoutError(f"no {pattern!r} on the console within {timeout}s:\n{self.tail()}")

    def tail(self, size: int = 4000) -> str:
        return self.text()[-size:]


def version_of(answer: str | None) -> dict[str, str]:
    """``version=.. boot_id=..`` -> dict (empty for None)."""
    return dict(word.split("=", 1) for word in (answer or "").split() if "=" in word)


@contextlib.contextmanager
def lab_site(pair: NetnsPair, workdir: Path) -> Iterator[NodeLab]:
    lab = NodeLab(pair, workdir)
    try:
        yield lab
    finally:
        lab.close()


def report_of(lab: NodeLab) -> dict[str, object]:
    """The node's last report as serve stored it (``state/reports/node020.json``)."""
    try:
        return dict(json.loads((lab.workdir / "state" / "reports" / f"{NODE}.json").read_text()))
    except (OSError, ValueError):
        return {}


def status_text(lab: NodeLab) -> str:
    """What ``reconciler status`` prints (exit 2 here: no watch loop made the site Ready)."""
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "reconciler"), "status", "--config", str(lab.config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.stdout + result.stderr
