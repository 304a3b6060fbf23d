"""Network namespaces for the sandbox and the integration tests: isolated, cleaned up always.

The sandbox (``reconciler sandbox``) and the integration tests start real
daemons (dhcpd, named, tftpd) as root. Each gets its own pair of namespaces
joined by a veth, so a server answers only the client we control, nothing on
the host sees the traffic, and two runs side by side never collide (names
carry the pid and a counter).

Two ways to reach a namespace: ``run_in``/``popen_in`` start a process inside it
(``ip netns exec``), and ``entered`` moves the calling thread into it for a
while, so test code (a target's client library) can open sockets to loopback
addresses of the namespace without any route from the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNET = 0x40000000
_counter = itertools.count()


class MissingTool(RuntimeError):
    """A program the sandbox needs (a daemon, ``ip``) is not installed; the message names it."""


def require(*paths: str) -> None:
    """Raise MissingTool naming every absent program of ``paths``."""
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise MissingTool(f"not installed: {', '.join(missing)} (run scripts/setup.sh as root)")


def namespaces() -> list[str]:
    """Names of the network namespaces that exist now (``ip netns list``)."""
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


_libc = ctypes.CDLL(None, use_errno=True)


def unique_name(prefix: str) -> str:
    """A name unique to this process and call; short enough for an interface (15 chars)."""
    return f"{prefix[:4]}{os.getpid() % 100000}x{next(_counter)}"[:15]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def run_in(
    namespace: str,
    argv: Sequence[str],
    *,
    timeout: float = 30,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command inside a namespace and wait for it, bounded by ``timeout``."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        input=input_text,
    )


def popen_in(namespace: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a long-running command inside a namespace; the caller stops it."""
    return subprocess.Popen(["ip", "netns", "exec", namespace, *argv], **kwargs)  # type: ignore[call-overload,no-any-return]


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM ``process`` and wait up to ``timeout`` s for it to end; SIGKILL it after that."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Move the calling thread into ``namespace`` (network only) and back afterwards.

    Sockets opened inside stay in the namespace after leaving it. The mount
    namespace is untouched, so files are the same as outside.
    """
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
        try:
            yield
        finally:
            if _libc.setns(original, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(target)
        os.close(original)


@dataclass
class NetnsPair:
    """Two namespaces joined by one veth: ``server`` side and ``client`` side."""

    server: str
    client: str
    server_if: str
    client_if: str
    server_cidr: str
    client_cidr: str | None = None
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def server_ip(self) -> str:
        return self.server_cidr.split("/")[0]

    def set_client_mac(self, mac: str) -> None:
        """Give the client's veth a new MAC (a replaced NIC)."""
        _ip("-n", self.client, "link", "set", self.client_if, "down")
        _ip("-n", self.client, "link", "set", self.client_if, "address", mac)
        _ip("-n", self.client, "link", "set", self.client_if, "up")

    def on_cleanup(self, action: Callable[[], None]) -> None:
        """Run ``action`` before the namespaces go (stop servers started in them)."""
        self._cleanups.append(action)

    def destroy(self) -> None:
        for action in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                action()
        self._cleanups.clear()
        for namespace in (self.client, self.server):
            _kill_all_in(namespace)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


def _kill_all_in(namespace: str) -> None:
    """Stop whatever still runs in a namespace we made (by pid, from ``ip netns pids``)."""
    result = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=10
    )
    for pid in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)


def create_pair(
    *, server_cidr: str, client_cidr: str | None = None, prefix: str = "rt"
) -> NetnsPair:
    """Create two namespaces, a veth between them, loopback up, and addresses."""
    server, client = unique_name(f"{prefix}s"), unique_name(f"{prefix}c")
    server_if, client_if = unique_name("vs"), unique_name("vc")
    pair = NetnsPair(server, client, server_if, client_if, server_cidr, client_cidr)
    try:
        _ip("netns", "add", server)
        _ip("netns", "add", client)
        _ip("link", "add", server_if, "type", "veth", "peer", "name", client_if)
        _ip("link", "set", server_if, "netns", server)
        _ip("link", "set", client_if, "netns", client)
        for namespace, ifname, cidr in (
            (server, server_if, server_cidr),
            (client, client_if, client_cidr),
        ):
            _ip("-n", namespace, "link", "set", "lo", "up")
            if cidr:
                _ip("-n", namespace, "addr", "add", cidr, "dev", ifname)
            _ip("-n", namespace, "link", "set", ifname, "up")
    except BaseException:
        pair.destroy()
        raise
    return pair


@contextlib.contextmanager
def netns_pair(
    *, server_cidr: str, client_cidr: str | None = None, prefix: str = "rt"
) -> Iterator[NetnsPair]:
    """``create_pair`` as a context manager: the namespaces go whatever happens."""
    pair = create_pair(server_cidr=server_cidr, client_cidr=client_cidr, prefix=prefix)
    try:
        yield pair
    finally:
        pair.destroy()


@contextlib.contextmanager
def lone_namespace(prefix: str = "rt") -> Iterator[str]:
    """One namespace with only loopback up: a server in it is reached through loopback alone.

    Whatever still runs in it is killed and the namespace removed on the way out.
    """
    name = unique_name(prefix)
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        _kill_all_in(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``predicate`` until true; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
