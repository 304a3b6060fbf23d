"""The operator's own API client keeps one connection per thread, and survives its loss.

A pass makes several API calls in a row; each on a new TCP (in a cluster, TLS)
connection would cost more than the call. An apiserver may close a kept-alive
connection while it is idle: the next call then goes out once more on a new
one, never as an error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.operator.kube import Credentials, KubeClient, KubeError


class Counting(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0
    requests = 0
    close_after_each = False  # an apiserver that drops idle connections, without saying so


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Counting

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        self.server.requests += 1
        status = 404 if self.path.endswith("/absent") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.server.close_after_each

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[Counting]:
    httpd = Counting(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def client_of(server: Counting) -> KubeClient:
    host, port = server.server_address[:2]
    return KubeClient(Credentials(server=f"http://{host!s}:{port}/prefix"))


def test_calls_in_a_row_share_one_connection(server: Counting) -> None:
    client = client_of(server)
    for _ in range(3):
        assert client.get("/api/v1/namespaces/ns/configmaps/a") == {
            "path": "/prefix/api/v1/namespaces/ns/configmaps/a"
        }
    assert client.get("/api/v1/namespaces/ns/configmaps/absent") is None
    assert (server.requests, server.connections) == (4, 1)


def test_a_connection_the_server_dropped_is_replaced_without_an_error(server: Counting) -> None:
    server.close_after_each = True
    client = client_of(server)
    for _ in range(3):
        assert client.get("/api/v1/x") == {"path": "/prefix/api/v1/x"}
    assert server.requests == 3
    assert server.connections == 3


def test_an_unreachable_server_is_a_kube_error(server: Counting) -> None:
    client = client_of(server)
    server.shutdown()
    server.server_close()
    with pytest.raises(KubeError, match="unreachable"):
        client.get("/api/v1/x")
