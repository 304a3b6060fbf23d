"""A site for live-swap tests: dhcpd, ``reconciler serve`` and an image store in a namespace,
and qemu nodes booting through the project's initramfs on a tap bridged to it.

The inventory is a git repository (one group, one host ``node020``, one image
whose versions the test adds); a reconcile pass writes the dhcpd config and
host entries (the node always gets 10.23.45.20) and the boot files. Nodes boot
qemu ``-kernel`` with the host's kernel, the initramfs of ``reconciler
initramfs`` and the command line ``serve`` hands out for the node's MAC
(``/boot/<mac>``), so they fetch and verify their rootfs as a PXE-booted node
would. Tests talk to the node's services from the server namespace (a thread
enters it), so nothing outside the namespaces is ever contacted. The site's
config, git and services come from ``boot_site``, the VM from ``qemu_vm``:
every wait is bounded; qemu is killed whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.nodeboot.initramfs import build_initramfs
from reconciler.sandbox.dhcp import Dhcpd, write_key
from reconciler.sandbox.netns import NetnsPair, entered, unique_name, wait_for
from tests.integration.boot_site import (
    IMAGES_URL,
    RECONCILER,
    SERVE_URL,
    commit_inventory,
    git,
    reconcile,
    serving,
    site_config,
)
from tests.integration.pxe_machine import add_tap_bridge
from tests.integration.qemu_vm import QEMU, QemuVM, tap_nic

NODE, NODE_MAC, NODE_IP = "node020", "52:54:00:12:34:14", "10.23.45.20"
IMAGE = "node"
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


@dataclass(frozen=True, slots=True)
class NodeBoot:
    """What qemu ``-kernel`` boots a node with: a host kernel and the project's initramfs."""

    kernel: Path
    initrd: Path

    @property
    def release(self) -> str:
        """The kernel's release, as ``uname -r`` on the node prints it."""
        return self.kernel.name.removeprefix("vmlinuz-")


class NodeBoots:
    """The host's kernels with their initramfs, each built on first use into ``folder``.

    One per test session (the ``node_boots`` fixture), one per benchmark run: tests
    only read the files (``add_version`` copies them into the image store).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._built: dict[Path, NodeBoot] = {}

    def of(self, kernel: Path) -> NodeBoot:
        """``kernel`` and the project's initramfs for it (only the qemu NIC driver: quicker
        in TCG)."""
        if kernel not in self._built:
            release = kernel.name.removeprefix("vmlinuz-")
            initrd = self.folder / f"initrd-{release}.img"
            self.folder.mkdir(parents=True, exist_ok=True)
            build_initramfs(
                modules_dir=Path("/lib/modules") / release,
                kernel_version=release,
                out=initrd,
                boot_modules=NIC_MODULES,
                default_nics=False,
            )
            self._built[kernel] = NodeBoot(kernel=kernel, initrd=initrd)
        return self._built[kernel]

    @property
    def running(self) -> NodeBoot:
        """The kernel this host runs (or its newest)."""
        return self.of(running_kernel())

    @property
    def other(self) -> NodeBoot:
        """Another kernel than ``running``: what a kernel change swaps to."""
        return self.of(next(k for k in kernels() if k != running_kernel()))


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


NODE_TARGETS = """[targets.boot]
type = "bootfiles"
directory = "tftp"
[targets.nodes]
type = "node-images"
directory = "www"
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
        return git(self.repo, *args)

    def add_version(
        self, version: str, *, rootfs: Path, boot: NodeBoot, cmdline: str = CMDLINE
    ) -> None:
        """Put the artifacts in the image store and the version into images/node.yaml."""
        folder = self.store / version
        folder.mkdir(parents=True, exist_ok=True)
        artifacts = {}
        files = (("vmlinuz", boot.kernel), ("initrd.img", boot.initrd), ("rootfs", rootfs))
        for name, source in files:
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
        reconcile(self.config)

    # -- the services ----------------------------------------------------------------

    def start(self, first_version: str) -> None:
        """Namespaces are up; commit ``first_version``, start dhcpd, the store and serve."""
        add_tap_bridge(self.pair, tap=self.tap, bridge=unique_name("br"))
        (self.repo / "groups").mkdir(parents=True, exist_ok=True)
        (self.repo / "site.yaml").write_text("domain: cluster.example\nlease_time: 3600\n")
        (self.repo / "groups" / "compute.yaml").write_text(group_yaml(first_version))
        commit_inventory(self.repo, "site")
        dhcpd = Dhcpd(self.pair, self.workdir)
        write_key(self.workdir / "omapi.key")
        self.config.write_text(
            site_config(
                workdir=self.workdir, dhcpd=dhcpd, targets=NODE_TARGETS,
                refresh_seconds=0.3,
            )
        )  # fmt: skip
        self.reconcile()  # writes dhcpd.conf and hosts.conf, starts dhcpd
        wait_for(dhcpd.running, timeout=10, what="dhcpd")
        self._stack.enter_context(
            serving(self.pair, config=self.config, store=self.store,
                    logs=self.workdir)
        )  # fmt: skip
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


class NodeVM(QemuVM):
    """One qemu node on the lab's bridge, booted with ``-kernel``; its console goes to a file.

    ``boot`` None: a PXE boot (SeaBIOS, qemu's iPXE ROM, dhcpd, serve's script).
    ``mac`` and ``tap`` default to node020's on the lab's tap.
    """

    def __init__(
        self,
        lab: NodeLab,
        *,
        boot: NodeBoot | None,
        append: str = "",
        console: Path,
        memory: int = 512,
        allow_reboot: bool = False,
        mac: str = NODE_MAC,
        tap: str | None = None,
    ) -> None:
        self.lab = lab
        if boot is None:
            how = ["-boot", "n"]
            rom = None  # qemu's own efi-virtio.rom: iPXE for BIOS and UEFI (pxe-virtio.rom is not)
        else:
            how = ["-kernel", str(boot.kernel), "-initrd", str(boot.initrd), "-append", append]
            rom = ""  # no option ROM: quicker
        argv = [
            str(QEMU), "-nographic", "-m", str(memory), "-smp", "1", *how,
            *tap_nic(tap=tap or lab.tap, mac=mac, rom=rom),
            *([] if allow_reboot else ["-no-reboot"]),
        ]  # fmt: skip
        super().__init__(argv, console=console, namespace=lab.pair.client, pair=lab.pair, name=mac)


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
        [RECONCILER, "status", "--config", str(lab.config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.stdout + result.stderr
