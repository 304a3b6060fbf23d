"""Benchmark of boot media (run by hand, as root): build time, size, time to the boot request.

Why it exists: a boot medium replaces the PXE ROM, so it should cost about
what PXE costs. This builds the three media from ``inventory-example/``
(net, net for one host, live with a real kernel and a 20 MB rootfs), prints
build time and size, then powers on one qemu machine per firmware and medium
(SeaBIOS / OVMF, IDE CD / USB stick on EHCI) and measures the seconds from
power-on to the boot request reaching the boot service, next to a PXE boot of
the same machine (the NIC's iPXE ROM, DHCP and TFTP from qemu). Live media are
timed from power-on to the image's marker on the console, with no NIC.

Everything runs in a network namespace the benchmark creates, with only its
loopback up: qemu's user-mode network maps the guest's 10.0.2.2 to that
loopback, where the benchmark's boot service listens. Software emulation
only; figures are TCG figures (several times slower than hardware).

    sudo .venv/bin/python bench/bench_media.py [--skip-live] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.config import load_config
from reconciler.engine import Engine, source_from_config
from reconciler.media.build import MediaKind, MediaRequest, build_medium
from reconciler.sandbox.netns import create_pair, popen_in
from tests.integration.media_machine import WAYS, firmware_argv, qemu_argv
from tests.integration.pxe_machine import MARKER, _stop, build_initramfs, host_kernel
from tests.integration.qemu_vm import QEMU, QemuVM

ROOT = Path(__file__).resolve().parent.parent
PORT = 18480
MAC = "52:54:00:12:34:0a"  # node010 of inventory-example
BOOT_SERVICE = """
import http.server, sys, time
log = open(sys.argv[2], "a", buffering=1)
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        log.write(f"{time.time()} {self.path}\\n")
        super().do_GET()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def build_all(workdir: Path, *, live: bool) -> dict[str, Path]:
    """Build each medium once, print build seconds and MiB; return their paths."""
    www = workdir / "www"
    (www / "boot").mkdir(parents=True)
    kernel = host_kernel()
    assert kernel is not None, "needs a kernel in /boot (linux-image-amd64)"
    shutil.copy(kernel, www / "vmlinuz")
    shutil.copy(build_initramfs(workdir), www / "initrd.img")
    (www / "root.squashfs").write_bytes(hashlib.sha256(b"x").digest() * (20 << 15))
    inventory = workdir / "inventory"
    shutil.copytree(ROOT / "inventory-example", inventory)
    artifact = {
        name: {"url": f"http://127.0.0.1:{PORT}/{name}",
               "sha256": hashlib.sha256((www / name).read_bytes()).hexdigest()}
        for name in ("vmlinuz", "initrd.img", "root.squashfs")
    }  # fmt: skip
    version = {
        "kernel": artifact["vmlinuz"],
        "initrd": artifact["initrd.img"],
        "rootfs": artifact["root.squashfs"],
        "cmdline": "console=ttyS0 panic=-1",
    }
    (inventory / "images" / "compute.yaml").write_text(
        json.dumps({"name": "compute", "versions": {"2024.10": version, "2024.11": version}})
    )
    config_path = workdir / "reconciler.toml"
    config_path.write_text(
        f'state_dir = "state"\n[source]\npath = "inventory"\n'
        f'[boot]\nhttp_url = "http://10.0.2.2:{PORT}"\n[media]\ndns = ["10.0.2.3"]\n'
    )
    config = load_config(config_path)
    engine = Engine(config)
    source = source_from_config(config)
    loaded = engine.load(source)
    wanted = {
        "net": MediaRequest(MediaKind.net),
        "net-host": MediaRequest(MediaKind.net, host="node010"),
    }
    if live:
        wanted["live"] = MediaRequest(MediaKind.live, host="node010")
    server = subprocess.Popen(
        [sys.executable, "-c", BOOT_SERVICE, str(PORT), str(workdir / "build.log")], cwd=www
    )
    try:
        time.sleep(1)
        print(f"{'medium':10} {'build s':>8} {'MiB':>6}")
        paths = {}
        for name, request in wanted.items():
            out = workdir / f"{name}.iso"
            started = time.perf_counter()
            built = build_medium(
                config=config, inventory=loaded, revision="bench", request=request, out=out
            )
            seconds = time.perf_counter() - started
            print(f"{name:10} {seconds:8.2f} {built.size / 1048576:6.1f}")
            paths[name] = out
    finally:
        _stop(server)
    return paths


def first_request(log: Path, since: float, path_part: str) -> float | None:
    for line in log.read_text().splitlines() if log.exists() else []:
        stamp, path = line.split(" ", 1)
        if float(stamp) >= since and path_part in path:
            return float(stamp) - since
    return None


def run_machine(
    namespace: str,
    argv: list[str],
    *,
    until: Callable[[float, QemuVM], float | None],
    timeout: float = 300,
) -> float | None:
    """Start qemu; seconds until ``until(started, vm)`` returns a number; None on timeout
    or when qemu exits first (a machine that powered off gets a last look)."""
    with tempfile.TemporaryDirectory(prefix="bench-media-vm-") as folder:
        vm = QemuVM(argv, console=Path(folder) / "console", namespace=namespace)
        started = time.time()  # wall clock: the boot service's log stamps requests with it
        with vm:
            try:
                return vm.wait_until(lambda: until(started, vm), timeout=timeout, what="no boot")
            except TimeoutError:
                return None


def slirp_nic(tftp: Path | None = None, *, bootindex: bool = False) -> list[str]:
    netdev = "user,id=n0" + (f",tftp={tftp},bootfile=boot.ipxe" if tftp else "")
    device = f"virtio-net-pci,netdev=n0,mac={MAC}" + (",bootindex=0" if bootindex else "")
    return ["-netdev", netdev, "-device", device]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-live", action="store_true", help="no live media")
    parser.add_argument("--repeat", type=int, default=1, help="boots per way")
    args = parser.parse_args()
    pair = create_pair(server_cidr="10.99.0.1/24", prefix="bm")
    workdir = Path(tempfile.mkdtemp(prefix="bench-media-"))
    try:
        paths = build_all(workdir, live=not args.skip_live)
        www, log = workdir / "www", workdir / "boot.log"
        (www / "boot.ipxe").write_text(f"#!ipxe\nchain http://10.0.2.2:{PORT}/boot/${{net0/mac}}\n")
        server = popen_in(pair.server, [sys.executable, "-c", BOOT_SERVICE, str(PORT), str(log)],
                          cwd=www)  # fmt: skip
        time.sleep(1)
        rows: list[tuple[str, str, float | None]] = []

        def request_seen(started: float, _vm: QemuVM) -> float | None:
            return first_request(log, started, "/boot/")

        def marker_seen(_started: float, vm: QemuVM) -> float | None:
            return vm.seconds() if MARKER in vm.text() else None

        for _ in range(args.repeat):
            for firmware in ("bios", "uefi"):
                argv = [str(QEMU), "-nographic", "-no-reboot", "-m", "256"]
                argv += firmware_argv(firmware=firmware, workdir=workdir, tag="pxe")
                argv += slirp_nic(www, bootindex=True)
                rows.append(
                    (f"PXE {firmware}", "pxe", run_machine(pair.server, argv, until=request_seen))
                )
            for firmware, medium in WAYS:
                argv = qemu_argv(
                    image=paths["net"],
                    firmware=firmware,
                    medium=medium,
                    workdir=workdir,
                    tag=f"net-{firmware}-{medium}",
                    nic=None,
                )
                argv = [a for a in argv if a not in ("-nic", "none")] + slirp_nic()
                rows.append(
                    (
                        f"{firmware} {medium}",
                        "net",
                        run_machine(pair.server, argv, until=request_seen),
                    )
                )
            if "live" in paths:
                for firmware, medium in WAYS:
                    argv = qemu_argv(
                        image=paths["live"],
                        firmware=firmware,
                        medium=medium,
                        workdir=workdir,
                        tag=f"live-{firmware}-{medium}",
                        nic=None,
                    )
                    rows.append(
                        (
                            f"{firmware} {medium}",
                            "live (marker)",
                            run_machine(pair.server, argv, until=marker_seen),
                        )
                    )
        _stop(server)
        print(f"\n{'boot':12} {'kind':14} {'seconds':>8} {'÷ PXE':>6}  (net: to the boot request)")
        pxe = {way.split()[1]: sec for way, _, sec in rows if way.startswith("PXE")}
        for way, kind, seconds in rows:
            base = pxe.get(way.split()[0]) if kind == "net" else None
            ratio = f"{seconds / base:6.2f}" if seconds and base else "     -"
            shown = f"{seconds:8.1f}" if seconds is not None else f"{'timeout':>8}"
            print(f"{way:12} {kind:14} {shown} {ratio}")
    finally:
        pair.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
