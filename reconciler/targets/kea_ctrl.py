"""A small client for Kea's control agent: JSON commands over HTTP with basic auth.

The ``kea-conf`` target needs four commands (``config-get``, ``config-test``,
``config-set``, ``config-write``), all addressed to the ``dhcp4`` service. The
agent answers with a list of one result per service; ``result`` 0 is success,
anything else carries Kea's own explanation in ``text``. Proxies from the
environment are never used: the agent is on loopback or the site's own network.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class KeaUnreachable(Exception):
    """The control agent could not be reached or answered something that is not Kea's JSON."""


@dataclass(frozen=True, slots=True)
class KeaAnswer:
    """Kea's answer to one command: ``result`` 0 is success; ``text`` says why not."""

    result: int
    text: str
    arguments: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.result == 0


class ControlAgent:
    """Commands to one Kea service behind one control agent."""

    def __init__(
        self,
        *,
        url: str,
        user: str | None,
        password: str | None,
        timeout: float,
        service: str = "dhcp4",
    ) -> None:
        self.url = url
        self.service = service
        self.timeout = timeout
        self._auth = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if user is not None and password is not None
            else None
        )

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> KeaAnswer:
        """Send one command; raise KeaUnreachable when no Kea answer came back."""
        body: dict[str, Any] = {"command": name, "service": [self.service]}
        if arguments is not None:
            body["arguments"] = arguments
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with _NO_PROXY.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                raise KeaUnreachable(
                    f"the control agent at {self.url} refused our credentials (HTTP {error.code})"
                ) from None
            raise KeaUnreachable(
                f"the control agent at {self.url} said HTTP {error.code}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise KeaUnreachable(
                f"cannot reach Kea's control agent at {self.url}: {reason}"
            ) from None
        return self._parse(raw, name)

    def _parse(self, raw: bytes, name: str) -> KeaAnswer:
        try:
            data = json.loads(raw)
        except ValueError:
            raise KeaUnreachable(f"{self.url} did not answer {name} with JSON") from None
        item = data[0] if isinstance(data, list) and data else data
        if not isinstance(item, dict) or "result" not in item:
            raise KeaUnreachable(f"{self.url} gave an answer to {name} that is not Kea's")
        arguments = item.get("arguments")
        return KeaAnswer(
            result=int(item["result"]),
            text=str(item.get("text", "")),
            arguments=arguments if isinstance(arguments, dict) else {},
        )
