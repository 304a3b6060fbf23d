"""A real tftpd-hpa serving a boot root, and the real tftp-hpa client to fetch from it.

The bootfiles target writes the folder; these helpers prove what a PXE ROM
would actually receive, in the sandbox and the integration tests. tftpd runs in
the foreground (``--secure``: chrooted into the root) on a loopback port, or on
an address inside a namespace.
tftp-hpa exits 0 even on a TFTP error, so ``tftp_get`` reads its messages.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from reconciler.sandbox.netns import popen_in, wait_for

TFTPD = Path("/usr/sbin/in.tftpd")
TFTP = Path("/usr/bin/tftp")


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int, namespace: str | None) -> bool:
    argv = ["ss", "-Hlun", f"sport = :{port}"]
    if namespace is not None:
        argv = ["ip", "netns", "exec", namespace, *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    return str(port) in result.stdout


@contextlib.contextmanager
def tftpd(
    root: Path, *, address: str = "127.0.0.1", port: int | None = None, namespace: str | None = None
) -> Iterator[int]:
    """Run in.tftpd on ``address:port`` serving ``root``; yield the port; always stop it."""
    port = port or free_udp_port()
    argv = [
        str(TFTPD), "--foreground", "--listen", "--address", f"{address}:{port}",
        "--user", "root", "--secure", str(root),
    ]  # fmt: skip
    if namespace is None:
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
    else:
        process = popen_in(
            namespace,
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: _listening(port, namespace) or process.poll() is not None,
            timeout=5,
            what="tftpd to listen",
        )
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"in.tftpd exited: {stderr}")
        yield port
    finally:
        process.kill()
        process.wait(timeout=5)


def tftp_get(path: str, *, port: int, workdir: Path, host: str = "127.0.0.1") -> str | None:
    """The content of ``path`` fetched with tftp-hpa, or None when the server refused it."""
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / path.replace("/", "_")
    local.unlink(missing_ok=True)
    result = subprocess.run(
        [str(TFTP), "-m", "octet", host, str(port), "-c", "get", path, str(local)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    said = result.stdout + result.stderr
    if result.returncode != 0 or "Error code" in said or "Transfer timed out" in said:
        return None
    return local.read_text()
