"""The ``kea-conf`` backend: Kea's DHCPv4 structure, set through the control agent.

Subnets, pools, the unregistered range, PXE boot file names and the host
database are Kea JSON config. This target renders the whole ``Dhcp4`` object
from the inventory's subnets and changes Kea only when that structure changed,
in three commands to the control agent: ``config-test`` (Kea parses and checks
it without using it), ``config-set`` (Kea switches to it, same process, no
restart), ``config-write`` (Kea saves it to its config file). A config Kea
rejects never reaches ``config-set``, because a rejected ``config-set`` leaves
Kea with no DHCP service.

Every subnet has a fixed ``id``: its network address as a 32-bit number, so
the same inventory always gives the same ids and the ``kea-hosts`` target can
file each reservation under the subnet Kea selects for the client.

BIOS, UEFI and iPXE clients get their boot file by client class (option 93
and the ``iPXE`` user class). Every iPXE client gets ``<http_url>/boot.ipxe``,
which chains to ``/boot/<mac>``: the host's own script, the same one dhcpd
gives a reserved host directly.

Live state is ``config-get``: the rendered subnets ride along in the config's
``user-context`` with a digest of the rendered config. When the digest does not
match what the current settings render (settings changed, or someone used
``config-set`` by hand) the subnets are reported as not ours, so the plan shows
them being taken over and Kea's config rewritten.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reconciler.config import ConfigError, RuntimeConfig
from reconciler.resources import AnyResource, DesiredState, DhcpSubnet
from reconciler.targets import parse_settings
from reconciler.targets.base import Action, ApplyResult, Change, LiveState, TargetError
from reconciler.targets.dhcp_conf import subnets_from_json
from reconciler.targets.kea_ctrl import ControlAgent, KeaAnswer, KeaUnreachable
from reconciler.targets.kea_db import KeaDatabaseSettings, read_password

log = logging.getLogger(__name__)

MARKER = "reconciler"
UEFI_ARCHES = ("0x0007", "0x0009")  # option 93: EFI BC and EFI x86-64


def subnet_id(network: str) -> int:
    """Kea's ``id`` for a subnet: its network address as a number (stable, unique, > 0)."""
    return int(ipaddress.ip_network(network, strict=False).network_address)


class KeaConfSettings(KeaDatabaseSettings):
    control_agent_url: str = Field(
        default="http://127.0.0.1:8000/", description="Kea control agent (kea-ctrl-agent)"
    )
    control_agent_user: str | None = Field(default=None, description="basic auth user")
    control_agent_password_file: Path | None = Field(
        default=None, description="file holding the control agent's basic auth password"
    )
    interfaces: tuple[str, ...] = Field(
        default=("*",), description="interfaces Kea listens on (interfaces-config)"
    )
    control_socket: Path = Field(
        default=Path("/run/kea/kea4-ctrl-socket"),
        description="kea-dhcp4's Unix control socket, as kea-ctrl-agent.conf names it",
    )
    lease_database: Literal["postgresql", "memfile"] = Field(
        default="postgresql",
        description="postgresql: leases in the same database, so kea-hosts can free the "
        "address of a replaced NIC at once; memfile: Kea's CSV file",
    )
    lease_file: Path | None = Field(
        default=None, description="memfile only: Kea's lease CSV file (unset: Kea's default)"
    )
    threads: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Kea's packet-processing threads (multi-threading; 0: one thread). With "
        "the host database, threads keep answering while one waits on PostgreSQL",
    )
    max_reconnect_tries: int = Field(
        default=1_000_000, ge=0, le=2**31 - 1, description="Kea's database reconnect attempts"
    )
    reconnect_wait_time: int = Field(default=1000, ge=1, description="milliseconds")
    write_config: bool = Field(default=True, description="config-write after config-set")
    timeout: float = Field(default=30.0, gt=0, description="seconds to wait for each answer")


class KeaConfTarget:
    """Kea's Dhcp4 config rendered from the inventory's subnets; set live on change."""

    kind: ClassVar[str] = "kea-conf"
    live_update: ClassVar[bool] = True
    batch_size: ClassVar[int] = 1_000_000
    adopts_by_default: ClassVar[bool] = True  # the whole Dhcp4 object is ours

    def __init__(
        self,
        *,
        name: str,
        settings: KeaConfSettings,
        db_password_file: Path | None,
        agent_password_file: Path | None,
        boot_url: str,
        tftp_server: str,
    ) -> None:
        self.name = name
        self.settings = settings
        self.db_password_file = db_password_file
        self.agent_password_file = agent_password_file
        self.boot_url = boot_url.rstrip("/")
        self.tftp_server = tftp_server

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        return state.dhcp_subnets

    # --- rendering ------------------------------------------------------------

    def _database(self, password: str) -> dict[str, Any]:
        s = self.settings
        database: dict[str, Any] = {
            "type": "postgresql",
            "name": s.db_name,
            "host": s.db_host,
            "port": s.db_port,
            "user": s.db_user,
            "connect-timeout": s.db_connect_timeout,
            "on-fail": "stop-retry-exit",
            "max-reconnect-tries": s.max_reconnect_tries,
            "reconnect-wait-time": s.reconnect_wait_time,
        }
        if password:
            database["password"] = password
        return database

    def _threads(self) -> dict[str, Any]:
        threads = self.settings.threads
        if threads == 0:
            return {"enable-multi-threading": False}
        return {
            "enable-multi-threading": True,
            "thread-pool-size": threads,
            "packet-queue-size": 16 * threads,
        }

    def _classes(self) -> list[dict[str, Any]]:
        uefi = " or ".join(f"option[93].hex == {arch}" for arch in UEFI_ARCHES)
        return [
            {
                "name": "ipxe",
                "test": "option[77].hex == 'iPXE'",
                "boot-file-name": f"{self.boot_url}/boot.ipxe",
            },
            {
                "name": "uefi",
                "test": f"not member('ipxe') and ({uefi})",
                "boot-file-name": "ipxe.efi",
            },
            {
                "name": "bios",
                "test": "not member('ipxe') and not member('uefi')",
                "boot-file-name": "undionly.kpxe",
            },
        ]

    def _subnet(self, subnet: DhcpSubnet) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": subnet_id(subnet.network),
            "subnet": str(ipaddress.ip_network(subnet.network, strict=False)),
            "valid-lifetime": subnet.lease_time,
            "option-data": [
                {"name": "routers", "data": subnet.gateway},
                {"name": "domain-name", "data": subnet.domain},
            ],
            "user-context": {"groups": list(subnet.groups)},
        }
        if subnet.unregistered_range:
            first, last = subnet.unregistered_range
            # Known hosts only ever get their reservation; everyone else gets the pool.
            entry["pools"] = [{"pool": f"{first} - {last}", "client-class": "UNKNOWN"}]
        return entry

    def render(self, subnets: Sequence[DhcpSubnet]) -> dict[str, Any]:
        """The complete config (``{"Dhcp4": ...}``) for these subnets, sorted by network."""
        ordered = sorted(subnets, key=lambda s: ipaddress.ip_network(s.network, strict=False))
        password = read_password(self.name, self.db_password_file)
        leases: dict[str, Any] = {"type": "memfile", "lfc-interval": 3600}
        if self.settings.lease_database == "postgresql":
            leases = self._database(password)
        elif self.settings.lease_file is not None:
            leases["name"] = str(self.settings.lease_file)
        dhcp4: dict[str, Any] = {
            "interfaces-config": {"interfaces": list(self.settings.interfaces)},
            "control-socket": {
                "socket-type": "unix",
                "socket-name": str(self.settings.control_socket),
            },
            "lease-database": leases,
            "hosts-database": self._database(password),
            "host-reservation-identifiers": ["hw-address"],
            "authoritative": True,
            "multi-threading": self._threads(),
            "next-server": self.tftp_server,
            "client-classes": self._classes(),
            "subnet4": [self._subnet(s) for s in ordered],
            "user-context": {
                MARKER: {"target": self.name, "subnets": [s.to_dict() for s in ordered]}
            },
        }
        digest = hashlib.sha256(json.dumps(dhcp4, sort_keys=True).encode()).hexdigest()
        dhcp4["user-context"][MARKER]["digest"] = digest
        return {"Dhcp4": dhcp4}

    # --- the control agent ------------------------------------------------------

    def _agent(self) -> ControlAgent:
        password = None
        if self.agent_password_file is not None:
            try:
                password = self.agent_password_file.read_text().strip()
            except OSError as error:
                raise TargetError(
                    self.name,
                    f"cannot read the control agent password file {self.agent_password_file}: "
                    f"{error.strerror}",
                ) from None
        return ControlAgent(
            url=self.settings.control_agent_url,
            user=self.settings.control_agent_user,
            password=password,
            timeout=self.settings.timeout,
        )

    def _send(self, agent: ControlAgent, command: str, arguments: Any = None) -> KeaAnswer:
        try:
            return agent.command(command, arguments)
        except KeaUnreachable as error:
            raise TargetError(self.name, f"{command}: {error}") from None

    def _scrub(self, text: str) -> str:
        password = read_password(self.name, self.db_password_file)
        return text.replace(password, "<secret>") if password else text

    def live_config(self) -> dict[str, Any]:
        """Kea's running Dhcp4 object (``config-get``)."""
        answer = self._send(self._agent(), "config-get")
        if not answer.ok:
            raise TargetError(self.name, f"Kea refused config-get: {self._scrub(answer.text)}")
        dhcp4 = answer.arguments.get("Dhcp4")
        if not isinstance(dhcp4, dict):
            raise TargetError(self.name, "config-get returned no Dhcp4 object")
        return dhcp4

    # --- reading ----------------------------------------------------------------

    def _ours(self, dhcp4: dict[str, Any]) -> list[DhcpSubnet] | None:
        """Our subnets when Kea runs exactly what we would render for them; else None."""
        marker = (dhcp4.get("user-context") or {}).get(MARKER)
        if not isinstance(marker, dict) or marker.get("target") != self.name:
            return None
        try:
            subnets = subnets_from_json(json.dumps(marker.get("subnets", [])))
        except (ValueError, KeyError, TypeError):
            return None
        expected = self.render(subnets)["Dhcp4"]
        running = {(s.get("id"), s.get("subnet")) for s in dhcp4.get("subnet4", [])}
        rendered = {(s["id"], s["subnet"]) for s in expected["subnet4"]}
        if marker.get("digest") != expected["user-context"][MARKER]["digest"]:
            return None
        return subnets if running == rendered else None

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        dhcp4 = self.live_config()
        ours = self._ours(dhcp4)
        if ours is not None:
            return LiveState(owned={s.key: s for s in ours})
        found = [_subnet_from_kea(entry) for entry in dhcp4.get("subnet4", [])]
        return LiveState(owned={}, unmanaged={s.key: s for s in found if s is not None})

    # --- applying -----------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        if not changes:
            return result
        subnets = {s.key: s for s in self._ours(self.live_config()) or []}
        for change in changes:
            if change.action is Action.DELETE:
                subnets.pop(change.key, None)
            elif isinstance(change.new, DhcpSubnet):
                subnets[change.key] = change.new
            else:
                raise TargetError(self.name, f"{change.key}: not a DHCP subnet")
            result.applied += 1
        config = self.render(list(subnets.values()))
        agent = self._agent()
        tested = self._send(agent, "config-test", config)
        if not tested.ok:
            raise TargetError(
                self.name,
                "Kea rejected the new config (config-test); Kea still runs the old one, "
                f"nothing was set. Kea said: {self._scrub(tested.text)}",
            )
        applied = self._send(agent, "config-set", config)
        if not applied.ok:
            raise TargetError(
                self.name,
                "config-set failed after config-test passed; Kea may have stopped serving "
                f"DHCP: check it now. Kea said: {self._scrub(applied.text)}",
            )
        result.writes += 1
        for change in changes:
            log.info(
                "kea-conf change",
                extra={"target": self.name, "action": change.action.value, "key": change.key},
            )
        if self.settings.write_config:
            written = self._send(agent, "config-write", {})
            if not written.ok:
                raise TargetError(
                    self.name,
                    "Kea runs the new config but could not save it to its config file "
                    f"(config-write); a Kea restart would bring back the old one. Kea said: "
                    f"{self._scrub(written.text)}",
                )
        return result


def _subnet_from_kea(entry: dict[str, Any]) -> DhcpSubnet | None:
    """A subnet someone else configured in Kea, as far as it maps onto ours."""
    try:
        network = str(ipaddress.ip_network(entry["subnet"], strict=False))
    except (KeyError, ValueError):
        return None
    options = {o.get("name"): str(o.get("data", "")) for o in entry.get("option-data", [])}
    pools = [str(p.get("pool", "")) for p in entry.get("pools", [])]
    first_range: tuple[str, str] | None = None
    if pools and "-" in pools[0]:
        low, high = (part.strip() for part in pools[0].split("-", 1))
        first_range = (low, high)
    groups = (entry.get("user-context") or {}).get("groups", [])
    return DhcpSubnet(
        network=network,
        gateway=options.get("routers", ""),
        lease_time=int(entry.get("valid-lifetime", 0) or 0),
        domain=options.get("domain-name", ""),
        unregistered_range=first_range,
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
    )


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> KeaConfTarget:
    parsed = parse_settings(name, KeaConfSettings, dict(settings))
    if (parsed.control_agent_user is None) != (parsed.control_agent_password_file is None):
        raise ConfigError(
            f"targets.{name}: give both control_agent_user and control_agent_password_file, "
            "or neither"
        )
    return KeaConfTarget(
        name=name,
        settings=parsed,
        db_password_file=config.resolve(parsed.db_password_file)
        if parsed.db_password_file
        else None,
        agent_password_file=config.resolve(parsed.control_agent_password_file)
        if parsed.control_agent_password_file
        else None,
        boot_url=config.boot.http_url,
        tftp_server=config.boot.tftp_server,
    )
