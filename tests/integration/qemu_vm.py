"""One qemu machine for the integration tests: started, watched on its console, always stopped.

The PXE, boot-media and node-lab tests all run qemu the same way: software
emulation, ``-nographic`` so SeaBIOS/OVMF, iPXE and the kernel all write to
the serial console, which goes to a file the test reads. What they share lives
here: starting qemu inside a test namespace (or outside any, for a machine
with no NIC), waiting for a console line with a deadline (and giving up early
when qemu is gone), power-cycling, and stopping qemu whatever happens (the
namespace pair's cleanup stops it too, should the test never get that far).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

from reconciler.sandbox.netns import NetnsPair, popen_in

QEMU = Path("/usr/bin/qemu-system-x86_64")
POLL_SECONDS = 0.2
T = TypeVar("T")


def tap_nic(
    *, tap: str, mac: str, model: str = "virtio-net-pci", rom: str | None = ""
) -> list[str]:
    """qemu arguments for a NIC on ``tap``: ``rom`` "" means no option ROM (quicker to
    boot), None qemu's own (iPXE for a network boot), a path that ROM."""
    device = f"{model},netdev=n0,mac={mac}" + ("" if rom is None else f",romfile={rom}")
    return ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no", "-device", device]


class QemuVM:
    """One qemu process and its console file; a context manager that stops it on the way out.

    ``argv`` may still be changed until ``start``. ``namespace`` None runs qemu in
    the host's namespace (only for machines without a NIC). ``pair``: stop qemu in
    the pair's cleanup as well.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        console: Path,
        namespace: str | None,
        pair: NetnsPair | None = None,
        name: str = "qemu",
    ) -> None:
        self.argv = list(argv)
        self.console = console
        self.namespace = namespace
        self.pair = pair
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.power_cycles = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        """Start qemu with a fresh console file."""
        self.started = time.monotonic()
        self._spawn(mode="wb")
        if self.pair is not None:
            self.pair.on_cleanup(self.stop)
        return self

    def _spawn(self, *, mode: str) -> None:
        with self.console.open(mode) as stream:
            if self.namespace is None:
                self.process = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT
                )
            else:
                self.process = popen_in(
                    self.namespace, self.argv,
                    stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT,
                )  # fmt: skip

    def stop(self) -> None:
        """Kill qemu if it still runs (a VM has nothing to save); bounded."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def power_cycle(self, reason: str) -> None:
        """Stop qemu and start it again with the same arguments; the console file goes on,
        with a line saying why. ``seconds`` still counts from the first start."""
        self.stop()
        with self.console.open("ab") as stream:
            stream.write(f"\n[test] {reason}; power-cycling\n".encode())
        self._spawn(mode="ab")
        self.power_cycles += 1

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def seconds(self) -> float:
        """Seconds since the first start."""
        return time.monotonic() - self.started

    def text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def tail(self, size: int = 4000) -> str:
        return self.text()[-size:]

    def search(self, pattern: str | re.Pattern[str], *, start: int = 0) -> re.Match[str] | None:
        """The first match of ``pattern`` on the console after offset ``start``, if any."""
        return re.compile(pattern).search(self.text(), start)

    def wait_console(
        self, pattern: str | re.Pattern[str], *, timeout: float, start: int = 0
    ) -> re.Match[str]:
        """The first match of ``pattern`` on the console after offset ``start``.

        Raises TimeoutError with the console's tail when there is none by the
        deadline, or as soon as qemu has exited without printing it.
        """
        shown = pattern if isinstance(pattern, str) else pattern.pattern
        return self.wait_until(
            lambda: self.search(pattern, start=start),
            timeout=timeout,
            what=f"no {shown!r} on the console",
        )

    def wait_until(self, found: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """The first answer of ``found()`` that is not None, asked every POLL_SECONDS.

        Raises TimeoutError saying ``what`` (and the console's tail) when there is
        none by the deadline, or as soon as qemu has exited without one.
        """
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running()  # looked at before asking: nothing is missed
            answer = found()
            if answer is not None:
                return answer
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        why = "qemu exited" if exited else f"not within {timeout}s"
        raise TimeoutError(f"{self.name}: {what} ({why}):\n{self.tail()}")

    def wait_exit(self, *, timeout: float) -> int:
        """Wait until qemu ends by itself (a guest that powers off); its exit code."""
        assert self.process is not None, "qemu was never started"
        return self.process.wait(timeout=timeout)
