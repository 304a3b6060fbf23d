"""kopf handlers: one reconcile loop per Site, Secrets through an index, deletion by policy.

- ``site_daemon`` runs the Site's ``WatchLoop`` in kopf's daemon thread until
  the Site goes or this replica stops being the active peer. A spec change
  (``on.update``) or a rotated Secret stops the loop; the daemon builds a new
  one from the new spec at once, restoring state from the ConfigMaps.
- ``spec.suspend``: the loop is not run; a read-only plan every interval keeps
  the status fresh (pending changes per target) and nothing is written.
- Secrets are read only when labelled ``reconciler.dev/secret=true``, through
  a kopf index; their values go to 0600 files and nowhere else.
- Git webhooks (``--webhook-secret-file``): every replica listens; a verified
  push annotates the Sites (``reconciler.operator.webhook``) and
  ``fetch_requested`` wakes the loop of each in the active replica.
- Deletion: kopf's finalizer holds the Site until ``on.delete`` ran:
  ``deletionPolicy: prune`` removes what the Site's targets own, ``orphan``
  (the default) leaves every live object; the state ConfigMaps go either way.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import kopf

from reconciler.config import ConfigError
from reconciler.operator.kube import Credentials, KubeClient, KubeError
from reconciler.operator.site import (
    ClusterStatusStore,
    SpecError,
    build_site_loop,
    runtime_config,
    secrets_digest,
)
from reconciler.operator.spec import GROUP, KIND, PLURAL, VERSION, SiteSpec
from reconciler.operator.statemap import StateMaps
from reconciler.operator.teardown import prune_site
from reconciler.operator.webhook import REQUESTED_AT, WebhookReceiver, load_secret

log = logging.getLogger(__name__)

SECRET_LABEL = "reconciler.dev/secret"
SecretIndex = kopf.Index[tuple[str, str], dict[str, str]]
RETRY_SECONDS = 10.0


class Settings:
    """Process-wide settings of the operator, set by ``reconciler operator run``."""

    work_root = Path(os.environ.get("RECONCILER_OPERATOR_WORK_DIR", "/var/lib/reconciler-operator"))
    client: KubeClient | None = None
    namespace = ""  # the namespace whose Sites this operator runs
    webhook_listen = "0.0.0.0:9180"
    webhook_secret_file: Path | None = None  # None: no webhook receiver
    webhooks: WebhookReceiver | None = None


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Log in as kopf would, and keep the credentials for the loops' own API calls."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is not None:
        Settings.client = KubeClient(Credentials.from_kopf(info))
    return info


@kopf.on.startup()
def start_webhooks(**_: Any) -> None:
    """Listen for git webhooks on every replica (only the active one acts on the Sites)."""
    if Settings.webhook_secret_file is None:
        return
    secret = load_secret(Settings.webhook_secret_file)
    if secret is None:
        return
    receiver = WebhookReceiver(
        listen=Settings.webhook_listen,
        secret=secret,
        namespace=Settings.namespace,
        client=lambda: Settings.client,
    )
    receiver.start()
    Settings.webhooks = receiver


@kopf.on.cleanup()
def stop_webhooks(**_: Any) -> None:
    if Settings.webhooks is not None:
        Settings.webhooks.stop()
        Settings.webhooks = None


@kopf.index("", "v1", "secrets", labels={SECRET_LABEL: "true"})
def secrets_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, str]]:
    return {(namespace or "", name): dict(body.get("data") or {})}


def _client() -> KubeClient:
    if Settings.client is None:
        raise kopf.TemporaryError("not logged in to the Kubernetes API yet", delay=5)
    return Settings.client


def _owner(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
    }


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def site_changed(memo: kopf.Memo, **_: Any) -> None:
    """A new spec (or a requested reconcile): the running loop ends, the daemon rebuilds it."""
    loop = memo.get("loop")
    if loop is not None:
        loop.stop()


@kopf.on.field(GROUP, VERSION, PLURAL, field=("metadata", "annotations", REQUESTED_AT))
def fetch_requested(memo: kopf.Memo, **_: Any) -> None:
    """A git webhook was received (by any replica): the Site's loop fetches now."""
    loop = memo.get("loop")
    if loop is not None:
        loop.trigger.fire("webhook")


# A graceful exit first: the loop finishes the apply in progress (never cut mid-apply).
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5.0, cancellation_timeout=60.0)
def site_daemon(
    namespace: str | None,
    name: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    """Run the Site's loop until the Site goes or this replica stands down."""
    assert namespace is not None  # Sites are namespaced
    secrets_index: SecretIndex = kwargs["secrets_index"]  # kopf passes indices by name
    client = _client()
    work_dir = Settings.work_root / namespace / name
    maps = StateMaps(client, namespace=namespace, site=name, owner=_owner(body))
    involved = {**_owner(body), "namespace": namespace}
    restored = False
    memo["idle"] = idle = threading.Event()  # set when no loop of this Site is running
    idle.set()
    while not stopped:
        spec = SiteSpec.model_validate(dict(body["spec"]))
        secrets = _secrets(secrets_index)
        try:
            config = runtime_config(spec, namespace=namespace, work_dir=work_dir, secrets=secrets)
        except (SpecError, ConfigError) as error:
            _stall(client, namespace, name, body, str(error))
            stopped.wait(RETRY_SECONDS)
            continue
        state_dir = config.resolve(config.state_dir)
        if not restored:
            try:
                maps.restore(state_dir)
                restored = True
            except (KubeError, ValueError) as error:
                _stall(client, namespace, name, body, f"state not restored: {error}")
                stopped.wait(RETRY_SECONDS)
                continue
        store = ClusterStatusStore(
            state_dir,
            client=client,
            namespace=namespace,
            name=name,
            generation=lambda: int(body["metadata"].get("generation") or 0),
            maps=maps,
            involved=involved,
        )
        store.suspended = spec.suspend
        try:
            loop = build_site_loop(config, store, suspended=spec.suspend)
        except ConfigError as error:  # a target's settings: the same message as watch gives
            _stall(client, namespace, name, body, str(error))
            stopped.wait(RETRY_SECONDS)
            continue
        memo["loop"] = loop
        digest = secrets_digest(spec, namespace, secrets)

        def rotated(spec: SiteSpec = spec, digest: str = digest) -> bool:
            return secrets_digest(spec, namespace, _secrets(secrets_index)) != digest

        threading.Thread(target=_stop_when, args=(loop, stopped, rotated), daemon=True).start()
        idle.clear()
        try:
            if not stopped:
                loop.run()
        finally:
            store.close()
            memo["loop"] = None
            idle.set()


def _secrets(index: SecretIndex) -> dict[tuple[str, str], dict[str, str]]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for key, values in index.items():
        for value in values:
            found[key] = value
    return found


def _stop_when(loop: Any, stopped: kopf.DaemonStopped, rotated: Any) -> None:
    """Stop the loop when kopf stops the daemon or a Secret the Site uses changed."""
    while not stopped.wait(0.5):
        if loop.stopping:
            return
        if rotated():
            log.info("a Secret of the site changed: rebuilding its loop")
            loop.stop()
            return
    loop.stop()


def _stall(client: KubeClient, namespace: str, name: str, body: kopf.Body, message: str) -> None:
    log.error("site cannot run", extra={"site": name, "error": message})
    generation = int(body["metadata"].get("generation") or 0)
    condition = {"status": "True", "reason": "InvalidSpec", "message": message,
                 "observedGeneration": generation}  # fmt: skip
    status = {
        "observedGeneration": generation,
        "conditions": [
            {"type": "Stalled", **condition},
            {**condition, "type": "Ready", "status": "False"},
        ],
    }
    try:
        client.merge_patch(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/sites/{name}/status",
                           {"status": status})  # fmt: skip
    except KubeError as error:
        log.error("status not written", extra={"site": name, "error": str(error)})


@kopf.on.delete(GROUP, VERSION, PLURAL)
def site_deleted(
    namespace: str | None,
    name: str,
    body: kopf.Body,
    **kwargs: Any,
) -> None:
    """Honour deletionPolicy, then remove the state ConfigMaps."""
    assert namespace is not None  # Sites are namespaced
    secrets_index: SecretIndex = kwargs["secrets_index"]
    memo: kopf.Memo = kwargs["memo"]
    loop = memo.get("loop")
    if loop is not None:  # the Site's loop finishes its apply and saves its state first
        loop.stop()
    idle = memo.get("idle")
    if idle is not None and not idle.wait(timeout=120):
        raise kopf.TemporaryError("the site's loop is still applying", delay=10)
    client = _client()
    spec = SiteSpec.model_validate(dict(body["spec"]))
    maps = StateMaps(client, namespace=namespace, site=name, owner=_owner(body))
    if spec.deletion_policy == "prune":
        work_dir = Settings.work_root / namespace / name
        config = runtime_config(
            spec, namespace=namespace, work_dir=work_dir, secrets=_secrets(secrets_index)
        )
        state_dir = config.resolve(config.state_dir)
        maps.restore(state_dir)
        problems = prune_site(config)
        if problems:
            raise kopf.TemporaryError("; ".join(problems), delay=30)
    maps.delete_all()
