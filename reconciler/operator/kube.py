"""The few Kubernetes API calls the operator makes itself, from its worker threads.

kopf watches Sites and Secrets and runs the handlers; the reconcile loop of a
Site runs in a thread (the same ``WatchLoop`` as ``reconciler watch``), and
from there it patches the Site's status, keeps its state in ConfigMaps and
posts Events. Those calls go through this small synchronous client, built from
the credentials kopf logged in with (``ConnectionInfo``), so the operator needs
no second Kubernetes library. Every call has a timeout; an API error is a
``KubeError`` with the status code, never a crash of the loop.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

TIMEOUT = 30.0


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API: {status or 'unreachable'}: {message}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """What ``kopf.ConnectionInfo`` carries, reduced to what the client uses."""

    server: str
    token: str | None = None
    scheme: str | None = None
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None

    @classmethod
    def from_kopf(cls, info: Any) -> Credentials:
        ca_data = info.ca_data
        if isinstance(ca_data, str):
            ca_data = base64.b64decode(ca_data) if "BEGIN" not in ca_data else ca_data.encode()
        return cls(
            server=str(info.server).rstrip("/"),
            token=info.token,
            scheme=info.scheme,
            ca_path=str(info.ca_path) if info.ca_path else None,
            ca_data=ca_data,
            insecure=bool(info.insecure),
            certificate_path=str(info.certificate_path) if info.certificate_path else None,
            private_key_path=str(info.private_key_path) if info.private_key_path else None,
        )


class KubeClient:
    """JSON over HTTP(S) to the apiserver: get, create, merge-patch, delete, list.

    One kept-alive connection per thread (the loop of each Site, its store's
    thread, the webhook receiver): a pass makes several calls in a row, and a
    new TCP (and TLS) handshake for each would cost more than the call.
    """

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._context = self._ssl_context() if credentials.server.startswith("https") else None
        server = urllib.parse.urlsplit(credentials.server)
        self._host, self._port = server.hostname or "localhost", server.port
        self._prefix = server.path.rstrip("/")  # a server URL may carry a path (a proxy's)
        self._local = threading.local()

    def _ssl_context(self) -> ssl.SSLContext:
        creds = self.credentials
        context = ssl.create_default_context(cafile=creds.ca_path)
        if creds.ca_data:
            with tempfile.NamedTemporaryFile("wb", suffix=".crt") as handle:
                handle.write(creds.ca_data)
                handle.flush()
                context.load_verify_locations(handle.name)
        if creds.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if creds.certificate_path:
            context.load_cert_chain(creds.certificate_path, creds.private_key_path)
        return context

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._context is not None:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=TIMEOUT, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT)
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        target = self._prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        if self.credentials.token:
            headers["Authorization"] = (
                f"{self.credentials.scheme or 'Bearer'} {self.credentials.token}"
            )
        status, text = self._exchange(method, target, data, headers)
        if status >= 400:
            detail = text[:500].decode(errors="replace")
            raise KubeError(status, f"{method} {path}: {detail}")
        parsed: dict[str, Any] = json.loads(text) if text else {}
        return parsed

    def _exchange(
        self, method: str, target: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.request(method, target, body=data, headers=headers)
                answer = connection.getresponse()
                text = answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self._drop()
                # A kept-alive connection the server closed while idle: it never saw this
                # request, so it is sent once more on a new one.
                if reused and attempt == 1:
                    continue
                raise KubeError(0, f"{method} {target}: {error}") from None
            except (http.client.HTTPException, OSError) as error:
                self._drop()
                raise KubeError(0, f"{method} {target}: {error}") from None
            if answer.will_close:
                self._drop()
            return answer.status, text
        raise AssertionError("unreachable")

    def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def delete(self, path: str) -> None:
        try:
            self.request("DELETE", path)
        except KubeError as error:
            if error.status != 404:
                raise

    def list(self, path: str, *, labels: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request(
            "GET", path, query={"labelSelector": labels}
        ).get("items", [])
        return items


def site_path(namespace: str, name: str) -> str:
    return f"/apis/reconciler.dev/v1alpha1/namespaces/{namespace}/sites/{name}"


def configmaps_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"
