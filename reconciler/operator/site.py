"""One Site in this replica: its work folder, its Secrets as key files, and its watch loop.

The reconcile loop is ``reconciler watch``'s own ``WatchLoop``, built from the
runtime config a Site's spec makes (``spec.to_runtime_config``): same engine,
targets, gates (signatures, validation, change threshold) and accepted
revision. What differs is where state lives: ``ClusterStatusStore`` saves each
status to disk as ``watch`` does, writes the state dir to ConfigMaps
(``statemap``) and only then patches the Site's ``.status``, so a standby
replica that takes over restores exactly what was applied. What a successor
does not need (Events, deleting stale parts, the Reconciling status while the
targets apply) runs in a thread of the store, off the pass's critical path.
Secret values are written to 0600 files and are never logged, put in status
or in Events.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.config import ConfigError, RuntimeConfig, describe_errors
from reconciler.operator.kube import KubeClient, KubeError, events_path, site_path
from reconciler.operator.spec import SiteSpec, to_runtime_config
from reconciler.operator.statemap import StateMaps
from reconciler.operator.status import Event, events_between, inventory_counts, site_status
from reconciler.statefiles import mirror_state
from reconciler.watch.loop import WatchLoop
from reconciler.watch.service import build_source
from reconciler.watch.status import Status, StatusStore

log = logging.getLogger(__name__)

SecretData = Mapping[tuple[str, str], Mapping[str, str]]  # (namespace, name) -> base64 data


class SpecError(Exception):
    """The Site cannot be run as specified (a missing Secret, a bad target setting)."""


def secrets_digest(spec: SiteSpec, namespace: str, secrets: SecretData) -> str:
    """Changes when any Secret the Site uses changes: the loop is rebuilt with new key files."""
    names = sorted(_secret_names(spec))
    digest = hashlib.sha256()
    for name in names:
        for key, value in sorted(dict(secrets.get((namespace, name), {})).items()):
            digest.update(f"{name}/{key}={value}\n".encode())
    return digest.hexdigest()


def _secret_names(spec: SiteSpec) -> set[str]:
    names = {t.secret_ref.name for t in spec.targets if t.secret_ref is not None}
    if spec.source.verify is not None and spec.source.verify.allowed_signers is not None:
        names.add(spec.source.verify.allowed_signers.name)
    if spec.source.secret_ref is not None:
        names.add(spec.source.secret_ref.name)
    if spec.reports is not None and spec.reports.token_secret_ref is not None:
        names.add(spec.reports.token_secret_ref.name)
    return names


def _secret_value(secrets: SecretData, namespace: str, name: str, key: str) -> bytes:
    data = secrets.get((namespace, name))
    if data is None:
        raise SpecError(
            f"Secret {name!r} not found in {namespace}; create it with the label "
            "reconciler.dev/secret=true (only labelled Secrets are read)"
        )
    if key not in data:
        raise SpecError(f"Secret {name!r} has no key {key!r}; its keys: {', '.join(sorted(data))}")
    return base64.b64decode(data[key])


def _write_secret(path: Path, value: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(value)
    return path


def runtime_config(
    spec: SiteSpec, *, namespace: str, work_dir: Path, secrets: SecretData
) -> RuntimeConfig:
    """Write the Site's secret files and build its runtime config; SpecError when it cannot."""
    folder = work_dir / "secrets"
    shutil.rmtree(folder, ignore_errors=True)
    files: dict[str, dict[str, Path]] = {}
    for target in spec.targets:
        if target.secret_ref is None:
            continue
        for setting, key in target.secret_ref.items.items():
            value = _secret_value(secrets, namespace, target.secret_ref.name, key)
            files.setdefault(target.name, {})[setting] = _write_secret(
                folder / target.name / setting, value
            )
    signers = None
    verify = spec.source.verify
    if verify is not None and verify.mode == "ssh":
        if verify.allowed_signers is None:
            raise SpecError("spec.source.verify.allowedSigners is needed for mode ssh")
        ref = verify.allowed_signers
        signers = _write_secret(
            folder / "allowed_signers", _secret_value(secrets, namespace, ref.name, ref.key)
        )
    git_files = _git_credentials(spec, namespace=namespace, folder=folder, secrets=secrets)
    token = spec.reports.token_secret_ref if spec.reports is not None else None
    if token is not None:
        value = _secret_value(secrets, namespace, token.name, token.key)
        reports_token: Path | None = _write_secret(folder / "reports-token", value)
    else:
        reports_token = None
    try:
        return to_runtime_config(
            spec,
            work_dir=work_dir,
            secret_files=files,
            allowed_signers=signers,
            git_files=git_files,
            reports_token=reports_token,
        )
    except ValidationError as error:
        raise SpecError(describe_errors(error, prefix="spec.")) from None


def _git_credentials(
    spec: SiteSpec, *, namespace: str, folder: Path, secrets: SecretData
) -> dict[str, Path]:
    """The source Secret's keys as 0600 files, by the ``[watch]`` setting that names them.

    As Flux's GitRepository: an http(s) URL takes ``username`` + ``password`` (a token),
    an ssh URL ``identity`` + ``known_hosts`` (required: a host key is never taken on trust).
    """
    ref = spec.source.secret_ref
    if ref is None:
        return {}
    data = secrets.get((namespace, ref.name)) or {}
    if spec.source.url.startswith(("http://", "https://")):
        user = _secret_value(secrets, namespace, ref.name, "username").strip()
        password = _secret_value(secrets, namespace, ref.name, "password").rstrip(b"\r\n")
        if b":" in user or b"\n" in user + password:
            raise SpecError(
                f"Secret {ref.name!r}: username may not hold ':' and neither key a line break"
            )
        path = _write_secret(folder / "git" / "credentials", user + b":" + password)
        return {"credentials_file": path}
    identity = _secret_value(secrets, namespace, ref.name, "identity")
    if "known_hosts" not in data:
        raise SpecError(
            f"Secret {ref.name!r} has no key 'known_hosts': an ssh source needs the host keys "
            "of the git server (ssh-keyscan HOST), as Flux does"
        )
    known = _secret_value(secrets, namespace, ref.name, "known_hosts")
    return {
        "ssh_identity": _write_secret(folder / "git" / "identity", identity),
        "ssh_known_hosts": _write_secret(folder / "git" / "known_hosts", known),
    }


class ClusterStatusStore(StatusStore):
    """status.json as watch keeps it, plus the Site's status, Events and state ConfigMaps."""

    def __init__(
        self,
        state_dir: Path,
        *,
        client: KubeClient,
        namespace: str,
        name: str,
        generation: Callable[[], int],
        maps: StateMaps,
        involved: dict[str, Any],
    ) -> None:
        super().__init__(state_dir)
        self.client = client
        self.namespace = namespace
        self.name = name
        self.generation = generation
        self.maps = maps
        self.involved = involved
        self.counts: Callable[[], dict[str, Any]] = dict
        self.suspended = False
        self.suspended_since = time.time()  # a store lives as long as its spec
        self._last: Status | None = None
        self._reported: dict[str, Any] | None = None  # the .status last written (or queued)
        # What need not delay a pass (Events, tidying, the Reconciling status) runs here, in
        # order; each save waits for what the one before left, so patches never overtake.
        self._later = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"site-{name}")
        self._pending: Future[None] | None = None
        # Ledger keys reach the ConfigMaps before the objects they name are created.
        resolved = state_dir.resolve()
        mirror_state(
            resolved, lambda path, keys: maps.record_ledger(path, state_dir=resolved, keys=keys)
        )

    def close(self) -> None:
        mirror_state(self.path.parent, None)
        if self.maps.untidy:  # the newest manifests too, which tidy writes only now and then
            self._submit(lambda: self.maps.tidy(flush=True))
        self._later.shutdown(wait=True)  # the last pass's Events and tidy are not dropped

    def save(self, status: Status) -> None:
        super().save(status)
        mid_pass = _mid_pass(status)
        body = site_status(
            status,
            generation=self.generation(),
            counts=self._counts(mid_pass=mid_pass),
            suspended=self.suspended,
            suspended_since=self.suspended_since,
        )
        events = events_between(self._last, status)
        self._last = Status.from_dict(status.to_dict())
        if mid_pass:  # Reconciling while the targets apply: in the meantime
            self._reported = body
            self._submit(self._report, body, events)  # one worker: in order
            return
        try:
            self.maps.save(self.path.parent, tidy=False)  # durable before it is reported
            if body != self._reported:  # a pass that changed nothing writes nothing
                self._drain()  # what the worker still has to patch goes first
                self._reported = body
                self._patch(body)
        except (KubeError, OSError, ValueError) as error:
            self._reported = None
            log.error("site status not written", extra={"site": self.name, "error": str(error)})
            return
        # Neither is state a successor needs: Events, stale parts, the plain accepted record.
        if events or self.maps.untidy:
            self._submit(self._after_status, events)

    def _counts(self, *, mid_pass: bool) -> dict[str, Any]:
        """Inventory counts of the revision in force.

        While the targets apply a new revision, the one in force is still the one
        last reported: its counts are reused, and the new revision's (a walk over
        every host) are counted at the end of the pass, not on its way.
        """
        if mid_pass and self._reported is not None and "inventory" in self._reported:
            counts: dict[str, Any] = self._reported["inventory"]
            return counts
        return self.counts()

    def _submit(self, work: Callable[..., None], *args: Any) -> None:
        self._pending = self._later.submit(self._guarded, work, *args)

    def _patch(self, body: dict[str, Any]) -> None:
        self.client.merge_patch(site_path(self.namespace, self.name) + "/status", {"status": body})

    def _report(self, body: dict[str, Any], events: list[Event]) -> None:
        self._patch(body)
        self._after_status(events)

    def _after_status(self, events: list[Event]) -> None:
        for event in events:
            self._post(event.kind, event.reason, event.message)
        self.maps.tidy()

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except (KubeError, OSError, ValueError) as error:
            self._reported = None  # the next pass patches its status, changed or not
            log.error("site status not written", extra={"site": self.name, "error": str(error)})

    def _drain(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def _post(self, kind: str, reason: str, message: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.client.create(
            events_path(self.namespace),
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
                "involvedObject": self.involved,
                "type": kind,
                "reason": reason,
                "message": message,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "source": {"component": "reconciler-operator"},
                "reportingComponent": "reconciler-operator",
            },
        )


def _mid_pass(status: Status) -> bool:
    """The save a pass makes when it starts (Reconciling: Progressing); its end saves again."""
    reconciling = status.condition("Reconciling")
    return reconciling is not None and reconciling.status and reconciling.reason == "Progressing"


def build_site_loop(
    config: RuntimeConfig, store: ClusterStatusStore, *, suspended: bool = False
) -> WatchLoop:
    """The watch loop of one Site, with the cluster-backed status store."""
    from reconciler.engine import Engine

    loop = WatchLoop(
        engine=Engine(config),
        settings=config.watch,
        source=build_source(config, config.watch),
        store=store,
        suspended=suspended,
    )

    counted: list[
        tuple[object, object, dict[str, Any]]
    ] = []  # one pass over 10k hosts per revision

    def counts() -> dict[str, Any]:
        good = loop.good
        if good is None:
            return {}
        assignments = good.rollouts.assignments if good.rollouts is not None else {}
        if counted and counted[0][0] is good.inventory and counted[0][1] is assignments:
            return counted[0][2]
        counted[:] = [(good.inventory, assignments, inventory_counts(good.inventory, assignments))]
        return counted[0][2]

    store.counts = counts
    return loop


__all__ = [
    "ClusterStatusStore",
    "ConfigError",
    "SpecError",
    "build_site_loop",
    "runtime_config",
    "secrets_digest",
]
