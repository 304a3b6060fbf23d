"""Downtime of a node image change, by method, in one run (by hand, as root; qemu TCG).

Why it exists: the project's promise is that a node moves to a new image with
the least downtime, without a reboot where possible. This measures, in the same
VM setup as the tests (dhcpd, ``reconciler serve``, an image store in a
namespace; nodes booted through the project's initramfs), the time between
the last answer of the node's service from the old image and the first from
the new one, polled every 50 ms:

1. root switch (busybox init, same kernel; the agent does it);
2. soft-reboot (systemd >= 254 image, same kernel; the agent does it);
3. kexec (kernel changed; the agent does it);
4. reboot with qemu ``-kernel`` (``reboot`` on the node; no PXE);
5. full PXE reboot (``reboot`` on the node; SeaBIOS, iPXE, DHCP, serve's script).

It prints each downtime and its ratio to the PXE reboot (goal: root switch
<= 10 %, kexec <= 50 %). Under emulation the kernel boot dominates, so kexec
and reboot look closer than on hardware, where firmware POST adds 30-180 s.

    sudo .venv/bin/python bench/bench_swap.py [--skip-systemd]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.sandbox.netns import netns_pair
from tests.integration.node_images import MARKER, busybox_image, systemd_image
from tests.integration.node_lab import (
    BOOT_TIMEOUT,
    NodeBoots,
    NodeLab,
    NodeVM,
    version_of,
    wait_version,
)

POLL = 0.05
SWAP_TIMEOUT = 400.0


class Poller:
    """Asks the node's service every 50 ms (0.25 s timeout); keeps (time, answer) pairs."""

    def __init__(self, lab: NodeLab) -> None:
        self.lab = lab
        self.seen: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            answer = version_of(self.lab.node(timeout=0.25))
            if answer:
                self.seen.append((time.monotonic(), answer))
            self._stop.wait(max(0.0, POLL - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def downtime(self, is_new: Callable[[dict[str, str]], bool]) -> float:
        """Last answer that is not new -> first answer that is, in seconds."""
        first_new = next(i for i, (_, answer) in enumerate(self.seen) if is_new(answer))
        old = [when for when, answer in self.seen[:first_new] if not is_new(answer)]
        return self.seen[first_new][0] - old[-1]


def measure(
    lab: NodeLab, trigger: Callable[[], None], is_new: Callable[[dict[str, str]], bool]
) -> float:
    poller = Poller(lab)
    try:
        time.sleep(0.5)
        trigger()
        deadline = time.monotonic() + SWAP_TIMEOUT
        while time.monotonic() < deadline and not any(is_new(a) for _, a in poller.seen):
            time.sleep(0.2)
        time.sleep(0.3)
    finally:
        poller.stop()
    return poller.downtime(is_new)


def reboot_node(lab: NodeLab) -> None:
    lab.run_on_node("(sleep 0.3; reboot) >/dev/null 2>&1 &\n")


def busybox_methods(
    lab: NodeLab, *, boots: NodeBoots, workdir: Path, results: dict[str, float]
) -> None:
    for version in ("b1", "b2"):
        rootfs = busybox_image(version, agent=True, kexec=True)
        lab.add_version(version, rootfs=rootfs, boot=boots.running)
    rootfs = busybox_image("b3-kernel", agent=True, kexec=True)
    lab.add_version("b3-kernel", rootfs=rootfs, boot=boots.other)
    lab.start("b1")
    with NodeVM(
        lab, boot=boots.running, append=lab.kernel_args(), allow_reboot=True,
        console=workdir / "busybox.console",
    ) as vm:  # fmt: skip
        vm.wait_console(f"{MARKER} version=b1 ", timeout=BOOT_TIMEOUT)
        boot = wait_version(lab, "b1", timeout=60)["boot_id"]
        time.sleep(5)  # the agent's first long poll is in place
        print("root switch b1 -> b2 ...", flush=True)
        results["root switch"] = measure(
            lab, lambda: lab.assign("b2"), lambda a: a.get("version") == "b2"
        )
        print("reboot with -kernel ...", flush=True)
        results["reboot (-kernel)"] = measure(
            lab, lambda: reboot_node(lab), lambda a: a.get("boot_id") != boot
        )
        # qemu reboots with its -append (b1's rootfs); the agent then moves it to b2 again.
        wait_version(lab, "b2", timeout=SWAP_TIMEOUT)
        time.sleep(5)
        print("kexec b2 -> b3-kernel ...", flush=True)
        results["kexec"] = measure(
            lab, lambda: lab.assign("b3-kernel"), lambda a: a.get("version") == "b3-kernel"
        )
    with NodeVM(
        lab, boot=None, allow_reboot=True, console=workdir / "pxe.console"
    ) as vm:  # PXE: serve's boot script for b3-kernel
        vm.wait_console(f"{MARKER} version=b3-kernel ", timeout=BOOT_TIMEOUT)
        boot = wait_version(lab, "b3-kernel", timeout=60)["boot_id"]
        print("PXE reboot ...", flush=True)
        results["PXE reboot"] = measure(
            lab, lambda: reboot_node(lab), lambda a: a.get("boot_id") != boot
        )


def systemd_method(
    lab: NodeLab, *, boots: NodeBoots, workdir: Path, results: dict[str, float]
) -> None:
    for version in ("s1", "s2"):
        lab.add_version(version, rootfs=systemd_image(version), boot=boots.running)
    lab.start("s1")
    with NodeVM(
        lab, boot=boots.running, append=lab.kernel_args(), memory=1024,
        console=workdir / "systemd.console",
    ) as vm:  # fmt: skip
        vm.wait_console(f"{MARKER} version=s1 ", timeout=BOOT_TIMEOUT * 2)
        wait_version(lab, "s1", timeout=120)
        time.sleep(5)
        print("soft-reboot s1 -> s2 ...", flush=True)
        results["soft-reboot"] = measure(
            lab, lambda: lab.assign("s2"), lambda a: a.get("version") == "s2"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-systemd", action="store_true", help="no soft-reboot run")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as folder:
        workdir = Path(folder)
        boots = NodeBoots(workdir / "boot")
        runs = [("busybox", busybox_methods)]
        if not args.skip_systemd:
            runs.append(("systemd", systemd_method))
        for name, run in runs:
            (workdir / name).mkdir()
            with netns_pair(server_cidr="10.23.45.2/24", prefix="bsw") as pair:
                lab = NodeLab(pair, workdir / name)
                try:
                    run(lab, boots=boots, workdir=workdir / name, results=results)
                finally:
                    lab.close()
    pxe = results.get("PXE reboot")
    print(f"\n{'method':<18} {'downtime':>9} {'/ PXE reboot':>13}")
    for method in ("root switch", "soft-reboot", "kexec", "reboot (-kernel)", "PXE reboot"):
        if method in results:
            ratio = f"{results[method] / pxe:.2f}" if pxe else "-"
            print(f"{method:<18} {results[method]:>8.2f}s {ratio:>13}")
    if pxe:
        print("goal: root switch <= 0.10, kexec <= 0.50 of a PXE reboot")


if __name__ == "__main__":
    main()
