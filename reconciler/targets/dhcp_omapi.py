"""The ``dhcp-omapi`` backend: host declarations put into a running dhcpd, no restart.

dhcpd takes hosts live over OMAPI and persists them as ``host`` blocks in its
leases file; OMAPI itself cannot list hosts. So live state is read two ways:
OMAPI lookups for every host the inventory names (by name, and by MAC for
those not found, to catch a hand-made host holding a wanted MAC), and the
leases file for hosts beyond those. dhcpd does not report a host's statements
over OMAPI, so its boot file statements (the iPXE script, its own ``filename``
and ``next-server``) come from the leases file, or, for a host declared in
dhcpd.conf (a legacy site being adopted), from that file when ``config_file``
names it; the inventory group is not a dhcpd property and is never compared.

Only hosts in the ownership ledger are deleted; an update is a delete and a
create (two writes), except the adoption of a host that already is exactly
what the inventory says, which only records it in the ledger. Requests are
pipelined, so a sync runs at OMAPI speed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from reconciler.config import RuntimeConfig
from reconciler.keyfiles import check_key_file
from reconciler.resources import AnyResource, DesiredState, DhcpHost
from reconciler.targets import parse_settings
from reconciler.targets.base import (
    Action,
    ApplyResult,
    Change,
    LiveState,
    OwnershipLedger,
    ServiceDown,
    TargetError,
)
from reconciler.targets.dhcp_hosts import DeclaredHosts, HostBlock, host_statements
from reconciler.targets.live_cache import HostLookups, LeasesTail
from reconciler.targets.omapi_client import (
    OmapiFailure,
    OmapiHost,
    OmapiSession,
    OmapiUnreachable,
)

log = logging.getLogger(__name__)


class DhcpOmapiSettings(BaseModel):
    """Hosts added and removed in a running dhcpd over OMAPI, without restarts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(
        default="127.0.0.1",
        description="dhcpd's OMAPI address; OMAPI must not be reachable from the node network",
    )
    port: int = Field(default=7911, ge=1, le=65535, description="dhcpd's omapi-port")
    key_name: str = Field(default="omapi_key", description="the key's name in dhcpd.conf")
    key_file: Path = Field(
        description="file holding the base64 HMAC-MD5 secret (mode 0600)",
        examples=["/etc/reconciler/omapi.secret"],
    )
    leases_file: Path = Field(
        description="dhcpd's leases file (its -lf), where OMAPI hosts persist; OMAPI cannot "
        "list hosts, so hosts removed from the inventory are found only here. Required; "
        "the file must exist (dhcpd needs it too)",
        examples=["/var/lib/dhcp/dhcpd.leases"],
    )
    timeout: float = Field(default=10.0, gt=0, description="seconds to wait for each answer")
    config_file: Path | None = Field(
        default=None,
        description="the dhcpd.conf dhcpd runs with (its -cf), read for the filename and "
        "next-server of hosts declared in it, which OMAPI cannot report; set it while "
        "adopting a legacy site whose hosts live in dhcpd.conf (without it, such hosts "
        "read as having none)",
        examples=["/etc/dhcp/dhcpd.conf"],
    )


class DhcpOmapiTarget:
    """Hosts created and deleted in a running dhcpd over OMAPI."""

    kind: ClassVar[str] = "dhcp-omapi"
    live_update: ClassVar[bool] = True
    batch_size: ClassVar[int] = 1
    # dhcpd is started by a dhcp-conf target: planned and applied after it, and read
    # from the leases file alone while that target is about to start it.
    needs_service: ClassVar[str] = "dhcpd"

    def __init__(
        self,
        *,
        name: str,
        settings: DhcpOmapiSettings,
        key_file: Path,
        leases_file: Path,
        ledger: OwnershipLedger,
        boot_url: str,
        config_file: Path | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.key_file = key_file
        self.leases_file = leases_file
        self.leases = LeasesTail(leases_file)  # parses only what dhcpd appended since
        self.lookups = HostLookups()  # OMAPI answers the leases file shows unchanged
        self.ledger = ledger
        self.boot_url = boot_url
        self.declared = DeclaredHosts(name, config_file) if config_file else None

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        return state.dhcp_hosts

    # --- plumbing -----------------------------------------------------------

    def _secret(self) -> str:
        try:
            secret = self.key_file.read_text().strip()
        except OSError as error:
            raise TargetError(
                self.name, f"cannot read the OMAPI key file {self.key_file}: {error.strerror}"
            ) from None
        if not secret:
            raise TargetError(self.name, f"the OMAPI key file {self.key_file} is empty")
        return secret

    def session(self, *, wait: float = 0.0) -> OmapiSession:
        """A connection; with ``wait``, keep trying that long while dhcpd is starting."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return OmapiSession(
                    host=self.settings.server,
                    port=self.settings.port,
                    key_name=self.settings.key_name,
                    secret=self._secret(),
                    timeout=self.settings.timeout,
                )
            except OmapiUnreachable as error:
                if time.monotonic() >= deadline:
                    raise ServiceDown(self.name, str(error)) from None
                time.sleep(0.1)
            except OmapiFailure as error:
                raise TargetError(self.name, str(error)) from None

    def _leases(self) -> dict[str, HostBlock]:
        try:
            return self.leases.hosts()
        except FileNotFoundError:
            raise TargetError(
                self.name,
                f"dhcpd's leases file {self.leases_file} does not exist; set leases_file to "
                "the file dhcpd runs with (its -lf; Debian: /var/lib/dhcp/dhcpd.leases)",
            ) from None
        except OSError as error:
            raise TargetError(
                self.name, f"cannot read dhcpd's leases file {self.leases_file}: {error.strerror}"
            ) from None

    # --- reading ------------------------------------------------------------

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        return self._read(desired, online=True)

    def read_persisted(self, desired: Sequence[AnyResource]) -> LiveState:
        """Live state while dhcpd is down: what it will load from its leases file on start."""
        return self._read(desired, online=False)

    def _read(self, desired: Sequence[AnyResource], *, online: bool) -> LiveState:
        wanted = [r for r in desired if isinstance(r, DhcpHost)]
        owned_keys = self.ledger.load()
        persisted = self._leases()
        by_name: dict[str, OmapiHost] = {}
        by_mac: dict[str, OmapiHost] = {}
        if online:
            try:
                self.lookups.forget_changed(self.leases)
                with self.session() as session:
                    names = [h.hostname for h in wanted]
                    by_name = self.lookups.by_name(names, session.lookup_hosts_by_name)
                    missing = [h.mac for h in wanted if h.hostname not in by_name and h.mac]
                    by_mac = self.lookups.by_mac(missing, session.lookup_hosts_by_mac)
            except OmapiFailure as error:
                self.lookups.forget_all()
                raise TargetError(self.name, str(error)) from None
        groups = {h.hostname: h.group for h in wanted}
        live: dict[str, DhcpHost] = {}
        for name, block in persisted.items():
            declared = block.to_host(boot_url=self.boot_url)
            live[name] = self._host(name, block=declared, group=groups.get(name, block.group))
        found_hosts = [h for h in [*by_name.values(), *by_mac.values()] if h.name]
        in_config = self.declared.hosts() if self.declared and found_hosts else {}
        for found in found_hosts:
            leased = persisted.get(found.name)
            live[found.name] = self._host(
                found.name,
                omapi=found,
                block=leased.to_host(boot_url=self.boot_url)
                if leased
                else in_config.get(found.name),
                group=groups.get(found.name, ""),
            )
        owned: dict[str, AnyResource] = {}
        unmanaged: dict[str, AnyResource] = {}
        for name, host in live.items():
            (owned if name in owned_keys else unmanaged)[name] = host
        return LiveState(owned=owned, unmanaged=unmanaged)

    def _host(
        self,
        name: str,
        *,
        group: str,
        block: DhcpHost | None,
        omapi: OmapiHost | None = None,
    ) -> DhcpHost:
        """The host OMAPI reports, with the statements its leases or config block shows."""
        mac = omapi.mac if omapi else (block.mac if block else "")
        ip = omapi.ip if omapi else (block.ip if block else "")
        # The leases file (or dhcpd.conf) is the only place statements can be read;
        # trust it only for the object OMAPI reports (same MAC and address).
        if block and block.mac == mac and block.ip == ip:
            return replace(block, hostname=name, group=group)
        return DhcpHost(hostname=name, mac=mac, ip=ip, group=group, boot_filename="")

    # --- applying -------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        if not changes:
            return result
        # A host adopted as it is needs no write: recording it in the ledger is all.
        as_is = [c for c in changes if c.adopt and c.old == c.new]
        if as_is:
            self.ledger.widen(c.key for c in as_is)
        changes = [c for c in changes if not (c.adopt and c.old == c.new)]
        result.applied = len(as_is)
        for change in as_is:
            log.info(
                "dhcp-omapi change",
                extra={"target": self.name, "action": "adopt", "key": change.key},
            )
        if not changes:
            return result
        removals = [c.key for c in changes if c.action in (Action.DELETE, Action.UPDATE)]
        creations: list[DhcpHost] = []
        for change in changes:
            if change.action is not Action.DELETE:
                if not isinstance(change.new, DhcpHost):
                    raise TargetError(self.name, f"{change.key}: not a DHCP host")
                creations.append(change.new)
        self.ledger.widen(h.hostname for h in creations)
        try:  # dhcpd may just have been started by dhcp-conf: give it time to listen
            with self.session(wait=self.settings.timeout) as session:
                result.writes += self._remove(session, removals)
                deleted = [c.key for c in changes if c.action is Action.DELETE]
                self.ledger.narrow(deleted)
                result.writes += self._create(session, creations)
        except OmapiFailure as error:
            raise TargetError(self.name, str(error)) from None
        for change in changes:
            log.info(
                "dhcp-omapi change",
                extra={"target": self.name, "action": change.action.value, "key": change.key},
            )
        result.applied += len(changes)
        return result

    def _remove(self, session: OmapiSession, names: list[str]) -> int:
        """Delete host objects by name; one already gone counts as deleted."""
        handles: list[tuple[str, int]] = []
        for name, reply in zip(
            names, session.pipeline(session.open_host(name=n) for n in names), strict=True
        ):
            if reply.ok and reply.handle:
                handles.append((name, reply.handle))
        replies = session.pipeline(session.delete(handle) for _, handle in handles)
        for (name, _), reply in zip(handles, replies, strict=True):
            if not reply.ok:
                raise TargetError(
                    self.name, f"dhcpd refused to delete host {name}: {reply.message}"
                )
        return len(handles)

    def _create(self, session: OmapiSession, hosts: list[DhcpHost]) -> int:
        messages = (
            session.create_host(
                name=h.hostname,
                mac=h.mac,
                ip=h.ip,
                statements=host_statements(h, boot_url=self.boot_url),
            )
            for h in hosts
        )
        refused: list[str] = []
        for host, reply in zip(hosts, session.pipeline(messages), strict=True):
            if not reply.ok:
                refused.append(f"{host.hostname} ({host.mac}, {host.ip}): {reply.message}")
        if refused:
            more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
            raise TargetError(
                self.name, f"dhcpd refused to create host {'; '.join(refused[:5])}{more}"
            )
        return len(hosts)


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> DhcpOmapiTarget:
    parsed = parse_settings(name, DhcpOmapiSettings, dict(settings))
    check_key_file(config.resolve(parsed.key_file), setting=f"targets.{name}.key_file")
    return DhcpOmapiTarget(
        name=name,
        settings=parsed,
        key_file=config.resolve(parsed.key_file),
        leases_file=config.resolve(parsed.leases_file),
        ledger=OwnershipLedger(config.resolve(config.state_dir), name),
        boot_url=config.boot.http_url,
        config_file=config.resolve(parsed.config_file) if parsed.config_file else None,
    )
