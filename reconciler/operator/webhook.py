"""Git webhooks to the operator: a verified push makes the active replica fetch at once.

Any replica may receive a webhook (the Service selects them all); the checks
are those of ``reconciler serve`` and ``reconciler watch --listen``, from
``reconciler.watch.webhooks``: the same HMAC and token verification, body
limit and duplicate-delivery filter. A verified push annotates each Site of
the operator's namespace with ``reconciler.dev/requested-at``; the change
reaches the active replica through its kopf watch, and its handler wakes the
Site's loop as a webhook does in ``watch`` (a remote source fetches at once).
A standby replica does nothing with it: kopf peering keeps it paused. A Site
whose repository did not move fetches once and finds nothing new.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.config import ConfigError
from reconciler.keyfiles import read_key_file
from reconciler.operator.kube import KubeClient, KubeError
from reconciler.operator.spec import GROUP, PLURAL, VERSION
from reconciler.watch.http import BackgroundServer
from reconciler.watch.service import parse_listen
from reconciler.watch.webhooks import webhook_routes

log = logging.getLogger(__name__)

REQUESTED_AT = "reconciler.dev/requested-at"
SETTING = "--webhook-secret-file"


def load_secret(path: Path) -> bytes | None:
    """The webhook secret; None (webhooks off, with a warning) when the file does not exist.

    The StatefulSet mounts the Secret ``reconciler-webhook`` as an optional
    volume, so an operator without one still runs. A secret that is empty or
    that others may write is a ConfigError.
    """
    if not path.exists():
        log.warning(
            "git webhooks off: the secret file does not exist; create the Secret "
            "reconciler-webhook (key: secret) and restart the operator",
            extra={"path": str(path)},
        )
        return None
    secret = read_key_file(path, setting=SETTING)
    if not secret:
        raise ConfigError(f"{SETTING}: {path} is empty; put the webhook secret in it")
    return secret


def request_fetch(client: KubeClient, namespace: str) -> list[str]:
    """Annotate every Site of ``namespace`` so its active loop fetches now; the Sites' names."""
    sites_path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
    names = []
    for site in client.list(sites_path, labels=""):
        name = site["metadata"]["name"]
        patch = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
        client.merge_patch(f"{sites_path}/{name}", patch)
        names.append(name)
    return names


class WebhookReceiver:
    """POST /webhook/github, /webhook/gitlab, /webhook on ``listen``: 202 and a fetch, or 401."""

    def __init__(
        self,
        *,
        listen: str,
        secret: bytes,
        namespace: str,
        client: Callable[[], KubeClient | None],
    ) -> None:
        host, port = parse_listen(listen)
        self.namespace = namespace
        self.client = client
        self.server = BackgroundServer(webhook_routes(self._pushed, secret), host=host, port=port)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start()
        log.info("git webhooks listening", extra={"port": self.server.port})

    def stop(self) -> None:
        self.server.stop()

    def _pushed(self, reason: str) -> None:
        # Called in the server's event loop: the API calls run beside it, not in it.
        threading.Thread(target=self._annotate, args=(reason,), daemon=True).start()

    def _annotate(self, reason: str) -> None:
        client = self.client()
        if client is None:
            log.error("webhook not acted on: not logged in to the Kubernetes API yet")
            return
        try:
            names = request_fetch(client, self.namespace)
        except KubeError as error:
            log.error("webhook not acted on", extra={"error": str(error)})
            return
        log.info("fetch requested", extra={"reason": reason, "sites": names})
