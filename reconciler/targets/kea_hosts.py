"""The ``kea-hosts`` backend: reservations as rows of Kea's own PostgreSQL ``hosts`` table.

Kea (2.2 and later, without the commercial ``host_cmds`` hook) reads host
reservations from its host database when a client asks, so a committed row is
live at once: no reload, no restart, no lost DHCP answers. The table is Kea's
own, made by ``kea-admin db-init pgsql``; nothing is added to its schema.

- Ownership lives in the row: ``user_context`` holds ``{"reconciler": {"target":
  <name>, "group": ..., "boot_filename": ...}}``. Rows without it were made by
  hand (or by another tool) and are reported as unmanaged, never touched.
- A host's own ``filename`` and ``next_server`` (kept from a legacy site) are
  the reservation's ``dhcp4_boot_file_name`` and ``dhcp4_next_server``, which
  Kea gives every client of that MAC, as dhcpd does with the same statements.
  The per-host iPXE script is only recorded in the marker: Kea cannot scope a
  reservation's file to iPXE, so iPXE clients get ``boot.ipxe`` by class, which
  chains to the same script.
- Live read is one query of the whole table.
- One apply is one transaction: deletes, the duplicate-address check, inserts
  and the lease clean-up commit together or not at all. A database that goes
  away mid-apply rolls everything back; the next pass does it again.
- Kea's schema does not stop two reservations from sharing an IPv4 address
  (the inventory's validation does); an apply still refuses to add a
  reservation for an address a row outside the change (a hand-made one) holds.
- A reserved address still leased to the old MAC (a replaced NIC), or the
  address of a removed or renumbered host, would keep its lease until it
  expires; with leases in the same database (``kea-conf``'s default) those
  lease rows are deleted in the same transaction, so the change is live for
  the very next DISCOVER.

Every reservation is filed under the Kea subnet id of the subnet holding its
address (see ``kea_conf.subnet_id``), the subnet Kea selects for the client.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from reconciler.config import RuntimeConfig
from reconciler.resources import AnyResource, DesiredState, DhcpHost
from reconciler.targets import parse_settings
from reconciler.targets.base import Action, ApplyResult, Change, LiveState, TargetError
from reconciler.targets.kea_conf import subnet_id
from reconciler.targets.kea_db import KeaDatabaseSettings, describe, read_password

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

MARKER = "reconciler"
HW_ADDRESS = 0  # Kea's host_identifier_type for a MAC

READ_ALL = """
SELECT host_id, dhcp_identifier, dhcp_identifier_type, dhcp4_subnet_id, ipv4_address,
       hostname, user_context::text, dhcp4_boot_file_name, dhcp4_next_server
FROM hosts WHERE dhcp4_subnet_id IS NOT NULL ORDER BY host_id
"""
LOCK_BY_NAME = (
    "SELECT host_id, hostname, user_context::text FROM hosts WHERE hostname = ANY(%s) FOR UPDATE"
)
DELETE_BY_ID = "DELETE FROM hosts WHERE host_id = ANY(%s)"
HOLDERS = "SELECT hostname, ipv4_address FROM hosts WHERE ipv4_address = ANY(%s)"
INSERT = """
INSERT INTO hosts (dhcp_identifier, dhcp_identifier_type, dhcp4_subnet_id, ipv4_address,
                   hostname, user_context, dhcp4_boot_file_name, dhcp4_next_server)
SELECT m, 0, s, a, h, u::json, f, n
FROM unnest(%s::bytea[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],
            %s::bigint[]) AS t(m, s, a, h, u, f, n)
"""
FREE_LEASES = "DELETE FROM lease4 WHERE address = ANY(%s)"
FREE_FOREIGN_LEASES = """
DELETE FROM lease4 l USING unnest(%s::bigint[], %s::bytea[]) AS n(a, m)
WHERE l.address = n.a AND l.hwaddr IS DISTINCT FROM n.m
"""


class KeaHostsSettings(KeaDatabaseSettings):
    clear_leases: bool = Field(
        default=True,
        description="delete lease rows (lease4, same database) of addresses a change moves, "
        "so a replaced NIC gets its address at once; off when Kea keeps leases elsewhere",
    )


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _mac_text(identifier: bytes, kind: int) -> str:
    if kind == HW_ADDRESS:
        return ":".join(f"{b:02x}" for b in identifier)
    return f"id{kind}:{identifier.hex()}"  # a client-id, DUID or flex-id reservation


class KeaHostsTarget:
    """Host reservations as rows in Kea's PostgreSQL host database."""

    kind: ClassVar[str] = "kea-hosts"
    live_update: ClassVar[bool] = True
    batch_size: ClassVar[int] = 1_000_000

    def __init__(
        self, *, name: str, settings: KeaHostsSettings, password_file: Path | None
    ) -> None:
        self.name = name
        self.settings = settings
        self.password_file = password_file
        self._subnets: list[ipaddress.IPv4Network] = []

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        self._subnets = [ipaddress.IPv4Network(s.network, strict=False) for s in state.dhcp_subnets]
        return state.dhcp_hosts

    # --- plumbing -------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError:
            raise TargetError(
                self.name, "psycopg is not installed: pip install 'reconciler[kea]'"
            ) from None
        s = self.settings
        try:
            return psycopg.connect(
                host=s.db_host,
                port=s.db_port,
                dbname=s.db_name,
                user=s.db_user,
                password=read_password(self.name, self.password_file) or None,
                connect_timeout=s.db_connect_timeout,
                application_name=f"reconciler {self.name}",
            )
        except psycopg.Error as error:
            raise TargetError(
                self.name, f"cannot connect to {describe(s)}: {_first(error)}"
            ) from None

    def _subnet_id(self, host: DhcpHost) -> int:
        address = ipaddress.IPv4Address(host.ip)
        for network in self._subnets:
            if address in network:
                return subnet_id(str(network))
        raise TargetError(
            self.name,
            f"{host.hostname}: {host.ip} is in none of the inventory's subnets, so Kea would "
            "never select a subnet for it; add the subnet or fix the address",
        )

    def _marker(self, host: DhcpHost) -> str:
        mark = {"target": self.name, "group": host.group, "boot_filename": host.boot_filename}
        return json.dumps({MARKER: mark}, sort_keys=True)

    def _mark_of(self, context: str | None) -> dict[str, Any] | None:
        """Our marker in a row's user_context, or None when the row is not ours."""
        try:
            mark = json.loads(context or "null")
        except ValueError:
            return None
        ours = mark.get(MARKER) if isinstance(mark, dict) else None
        if isinstance(ours, dict) and ours.get("target") == self.name:
            return ours
        return None

    # --- reading ----------------------------------------------------------------

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        import psycopg

        try:
            with self.connect() as conn:
                rows = conn.execute(READ_ALL).fetchall()
        except psycopg.errors.UndefinedTable:
            raise TargetError(
                self.name,
                f"{describe(self.settings)} has no hosts table: create Kea's schema with "
                "`kea-admin db-init pgsql -n <db> -u <user> -p <password> -h <host>`",
            ) from None
        except psycopg.Error as error:
            raise TargetError(
                self.name, f"reading {describe(self.settings)}: {_first(error)}"
            ) from None
        owned: dict[str, AnyResource] = {}
        unmanaged: dict[str, AnyResource] = {}
        for row in rows:
            host_id, identifier, kind, subnet, address, hostname, context, filename, server = row
            mark = self._mark_of(context)
            ip = str(ipaddress.IPv4Address(address)) if address else ""
            host = DhcpHost(
                hostname=hostname or f"host-id-{host_id}",
                mac=_mac_text(bytes(identifier), kind),
                ip=self._filed_ip(ip, subnet),
                group=str(mark.get("group", "")) if mark else "",
                boot_filename=str(mark.get("boot_filename", "")) if mark else "",
                filename=filename or "",
                next_server=str(ipaddress.IPv4Address(server)) if server else "",
            )
            bucket = owned if mark is not None else unmanaged
            key = host.key if host.key not in bucket else f"{host.key}#{host_id}"
            bucket[key] = host
        return LiveState(owned=owned, unmanaged=unmanaged)

    def _filed_ip(self, ip: str, subnet: int) -> str:
        """The address, flagged when filed under a subnet id Kea would not select for it."""
        if not ip or not self._subnets:
            return ip
        address = ipaddress.IPv4Address(ip)
        expected = next((subnet_id(str(n)) for n in self._subnets if address in n), None)
        return ip if expected == subnet else f"{ip} (filed under Kea subnet {subnet})"

    # --- applying ---------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        import psycopg

        result = ApplyResult()
        if not changes:
            return result
        new_hosts: list[DhcpHost] = []
        for change in changes:
            if change.action is not Action.DELETE:
                if not isinstance(change.new, DhcpHost):
                    raise TargetError(self.name, f"{change.key}: not a DHCP host")
                new_hosts.append(change.new)
        rows = [(h, self._subnet_id(h)) for h in new_hosts]
        try:
            with self.connect() as conn, conn.transaction():
                result.writes = self._write(conn, changes, rows)
        except psycopg.errors.IntegrityError as error:
            raise TargetError(
                self.name,
                f"Kea's hosts table refused the change: {_first(error)}; nothing was changed. "
                "A reservation made by hand probably holds this MAC: remove it or adopt it",
            ) from None
        except psycopg.Error as error:
            raise TargetError(
                self.name,
                f"{describe(self.settings)} failed during the apply: {_first(error)}; the "
                "transaction was rolled back, nothing was changed; the next pass retries",
            ) from None
        result.applied = len(changes)
        for change in changes:
            log.info(
                "kea-hosts change",
                extra={"target": self.name, "action": change.action.value, "key": change.key},
            )
        return result

    def _write(
        self,
        conn: psycopg.Connection[Any],
        changes: Sequence[Change],
        rows: list[tuple[DhcpHost, int]],
    ) -> int:
        adopting = {c.key for c in changes if c.adopt}
        leaving = [c.key for c in changes if c.action is not Action.CREATE]
        doomed = [
            host_id
            for host_id, hostname, context in conn.execute(LOCK_BY_NAME, [leaving]).fetchall()
            if self._mark_of(context) is not None or hostname in adopting
        ]
        if doomed:
            conn.execute(DELETE_BY_ID, [doomed])
        addresses = [int(ipaddress.IPv4Address(h.ip)) for h, _ in rows]
        holders = conn.execute(HOLDERS, [addresses]).fetchall() if addresses else []
        if holders:
            taken = ", ".join(
                f"{ipaddress.IPv4Address(a)} (row {n or 'without a hostname'})"
                for n, a in holders[:5]
            )
            raise TargetError(
                self.name,
                f"address already reserved by a row this change does not own: {taken}; "
                "remove that reservation or change the inventory; nothing was changed",
            )
        if rows:
            conn.execute(
                INSERT,
                [
                    [_mac_bytes(h.mac) for h, _ in rows],
                    [s for _, s in rows],
                    addresses,
                    [h.hostname for h, _ in rows],
                    [self._marker(h) for h, _ in rows],
                    [h.filename or None for h, _ in rows],
                    [
                        int(ipaddress.IPv4Address(h.next_server)) if h.next_server else None
                        for h, _ in rows
                    ],
                ],
            )
        if self.settings.clear_leases:
            self._free_leases(conn, changes, rows)
        return len(doomed) + len(rows)

    def _free_leases(
        self,
        conn: psycopg.Connection[Any],
        changes: Sequence[Change],
        rows: list[tuple[DhcpHost, int]],
    ) -> None:
        """Leases that would keep a moved address from its new owner, deleted in the same go."""
        freed = [
            int(ipaddress.IPv4Address(c.old.ip))
            for c in changes
            if isinstance(c.old, DhcpHost)
            and c.old.ip
            and " " not in c.old.ip
            and (not isinstance(c.new, DhcpHost) or (c.new.ip, c.new.mac) != (c.old.ip, c.old.mac))
        ]
        if freed:
            conn.execute(FREE_LEASES, [freed])
        if rows:
            conn.execute(
                FREE_FOREIGN_LEASES,
                [
                    [int(ipaddress.IPv4Address(h.ip)) for h, _ in rows],
                    [_mac_bytes(h.mac) for h, _ in rows],
                ],
            )


def _first(error: Exception) -> str:
    """The first line of a database error (psycopg's messages carry context lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> KeaHostsTarget:
    parsed = parse_settings(name, KeaHostsSettings, dict(settings))
    return KeaHostsTarget(
        name=name,
        settings=parsed,
        password_file=config.resolve(parsed.db_password_file) if parsed.db_password_file else None,
    )
