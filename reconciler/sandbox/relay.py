"""A relay from 127.0.0.1 of the machine to an address inside a network namespace.

A server started in a namespace made for it (sshd, ``reconciler serve`` beside
its nodes' link) is out of reach of the test's own process and of the
processes it starts in the machine's namespace. A ``Relay`` listens on
127.0.0.1 and, for each connection it accepts, opens one from inside the
namespace to the server and copies bytes both ways; the protocol runs end to
end between the two sides.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

from reconciler.sandbox.netns import entered

LOOPBACK = "127.0.0.1"


@dataclass
class Relay:
    """127.0.0.1:<port> of the machine -> ``host``:``port`` inside ``namespace``, byte for byte."""

    namespace: str
    host: str
    port: int
    listener: socket.socket = field(init=False)
    _thread: threading.Thread = field(init=False)
    _open: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self._thread = threading.Thread(target=self._accept, name="netns-relay", daemon=True)
        self._thread.start()

    @property
    def local_port(self) -> int:
        """The port on 127.0.0.1 of the machine that leads into the namespace."""
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the server is stopping
                return
            try:
                with entered(self.namespace):
                    upstream = socket.create_connection((self.host, self.port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept (EINVAL); only once it has returned is
        # the socket closed, so it never accepts on a number reused by the next relay.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self.listener.close()
        with self._lock:
            for connection in self._open:
                connection.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until end of file, then pass the end of file on (half-close)."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
