"""The ``dhcp-conf`` backend: the whole dhcpd.conf, rendered, checked, then swapped in.

Subnets, lease times, the unknown-client pools, PXE options and the OMAPI
listener are structure: dhcpd reads them only at start. So this target renders
the complete file from a jinja2 template, has ``dhcpd -t`` check a candidate
copy, replaces the live file atomically only when the check passes (dhcpd's
own complaint goes into the error otherwise) and restarts dhcpd only when the
text changed. The rendered subnets are embedded in the file as a JSON comment,
which is how the live state is read back. A file whose text differs from what
the current settings would render (settings changed, or hand edits) reports
its subnets as not ours, so the plan shows them being adopted and rewritten.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from reconciler.config import RuntimeConfig
from reconciler.keyfiles import check_key_file
from reconciler.model.embedded import check_config_path
from reconciler.resources import AnyResource, DesiredState, DhcpSubnet
from reconciler.targets import parse_settings
from reconciler.targets.base import (
    Action,
    ApplyResult,
    Change,
    LiveState,
    OwnershipLedger,
    TargetError,
    atomic_write,
)

log = logging.getLogger(__name__)

MARKER = "# reconciler-subnets: "
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_BANNER = re.compile(
    r"^(Internet Systems Consortium|Copyright|All rights reserved|For info|Config file:|"
    r"Database file:|PID file:|Wrote \d+|Source compiled|ldap-server)"
)
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("reconciler", "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


class DhcpConfSettings(BaseModel):
    """dhcpd.conf rendered from the inventory (subnets, pools, OMAPI), checked, then loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="dhcpd.conf to write", examples=["/etc/dhcp/dhcpd.conf"])
    omapi_port: int | None = Field(
        default=7911, ge=1, le=65535, description="omapi-port written into dhcpd.conf"
    )
    omapi_key_name: str = Field(
        default="omapi_key",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="name of the OMAPI key in dhcpd.conf (dhcp-omapi's key_name)",
    )
    omapi_key_file: Path | None = Field(default=None, description="base64 HMAC-MD5 secret")
    include: Path | None = Field(
        default=None,
        description="host include file (dhcp-file); written into dhcpd.conf in double quotes",
    )
    check_command: str = Field(
        default="dhcpd -t -cf {path}",
        description="checks a new file before it replaces the old ({path}: the new file)",
    )
    restart_command: str = Field(
        min_length=1,
        description="loads a new dhcpd.conf, run only when the file changed, e.g. "
        "'systemctl restart isc-dhcp-server'; required, so a written file is never left "
        "unloaded; set it to 'true' only if something else reloads dhcpd on change "
        "(a systemd path unit). It also starts dhcpd on a fresh site",
        examples=["systemctl restart isc-dhcp-server"],
    )
    command_timeout: float = Field(
        default=60.0, gt=0, description="seconds the check and restart commands may take"
    )

    @field_validator("include")
    @classmethod
    def _quotable(cls, value: Path | None) -> Path | None:
        if value is not None:
            check_config_path(str(value))
        return value


def subnets_to_json(subnets: Sequence[DhcpSubnet]) -> str:
    return json.dumps([s.to_dict() for s in subnets], sort_keys=True, separators=(",", ":"))


def subnets_from_json(text: str) -> list[DhcpSubnet]:
    return [
        DhcpSubnet(
            network=item["network"],
            gateway=item["gateway"],
            lease_time=int(item["lease_time"]),
            domain=item["domain"],
            unregistered_range=tuple(item["unregistered_range"])
            if item.get("unregistered_range")
            else None,
            groups=tuple(item.get("groups", ())),
        )
        for item in json.loads(text)
    ]


class DhcpConfTarget:
    """dhcpd.conf rendered from the inventory's subnets; dhcpd restarted on change."""

    kind: ClassVar[str] = "dhcp-conf"
    live_update: ClassVar[bool] = False
    batch_size: ClassVar[int] = 1_000_000
    # The whole file is ours: a settings change shows its subnets as not ours
    # (see read()), and they must be taken over to be rewritten.
    adopts_by_default: ClassVar[bool] = True
    # Its restart_command (re)starts dhcpd: a dhcp-omapi target comes after it.
    provides_service: ClassVar[str] = "dhcpd"

    def __init__(
        self,
        *,
        name: str,
        settings: DhcpConfSettings,
        path: Path,
        key_file: Path | None,
        include: Path | None,
        ledger: OwnershipLedger,
        boot_url: str,
        tftp_server: str,
    ) -> None:
        self.name = name
        self.settings = settings
        self.path = path
        self.key_file = key_file
        self.include = include
        self.ledger = ledger
        self.boot_url = boot_url.rstrip("/")
        self.tftp_server = tftp_server

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        return state.dhcp_subnets

    def _secret(self) -> str:
        if self.settings.omapi_port is None:
            return ""
        if self.key_file is None:
            raise TargetError(self.name, "omapi_port is set but omapi_key_file is not")
        try:
            secret = self.key_file.read_text().strip()
        except OSError as error:
            raise TargetError(
                self.name, f"cannot read the OMAPI key file {self.key_file}: {error.strerror}"
            ) from None
        if not _BASE64.match(secret):
            raise TargetError(self.name, f"the OMAPI key file {self.key_file} is not base64")
        return secret

    def render(self, subnets: Sequence[DhcpSubnet]) -> str:
        """The complete dhcpd.conf for these subnets (sorted by network)."""
        ordered = sorted(subnets, key=lambda s: ipaddress.ip_network(s.network, strict=False))
        views = []
        for subnet in ordered:
            network = ipaddress.ip_network(subnet.network, strict=False)
            views.append(
                {
                    "address": str(network.network_address),
                    "netmask": str(network.netmask),
                    "gateway": subnet.gateway,
                    "domain": subnet.domain,
                    "lease_time": subnet.lease_time,
                    "range": subnet.unregistered_range,
                    "groups": subnet.groups,
                }
            )
        return _ENV.get_template("dhcpd.conf.j2").render(
            target=self.name,
            subnets_json=subnets_to_json(ordered),
            subnets=views,
            omapi_port=self.settings.omapi_port,
            omapi_key_name=self.settings.omapi_key_name,
            omapi_secret=self._secret(),
            tftp_server=self.tftp_server,
            ipxe_url=f"{self.boot_url}/boot.ipxe",
            include=str(self.include) if self.include else None,
        )

    def _current(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise TargetError(self.name, f"cannot read {self.path}: {error.strerror}") from None

    def _subnets_in(self, text: str | None) -> list[DhcpSubnet] | None:
        """The subnets our marker records, or None when the file is not ours."""
        if text is None:
            return None
        for line in text.splitlines()[:10]:
            if line.startswith(MARKER):
                try:
                    return subnets_from_json(line[len(MARKER) :])
                except (ValueError, KeyError, TypeError):
                    return None
        return None

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        text = self._current()
        subnets = self._subnets_in(text) or []
        owned_keys = self.ledger.load()
        in_step = text == self.render(subnets)
        owned: dict[str, AnyResource] = {}
        unmanaged: dict[str, AnyResource] = {}
        for subnet in subnets:
            ours = in_step and subnet.key in owned_keys
            (owned if ours else unmanaged)[subnet.key] = subnet
        return LiveState(owned=owned, unmanaged=unmanaged)

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        if not changes:
            return result
        text = self._current()
        subnets = {s.key: s for s in self._subnets_in(text) or []}
        for change in changes:
            if change.action is Action.DELETE:
                subnets.pop(change.key, None)
            elif isinstance(change.new, DhcpSubnet):
                subnets[change.key] = change.new
            else:
                raise TargetError(self.name, f"{change.key}: not a DHCP subnet")
            result.applied += 1
        rendered = self.render(list(subnets.values()))
        self.ledger.widen(c.key for c in changes if c.action is not Action.DELETE)
        if rendered != text:
            if text is not None and self._subnets_in(text) is None:
                backup = self.path.with_name(self.path.name + ".before-reconciler")
                if not backup.exists():
                    shutil.copy2(self.path, backup)
                    result.notes.append(f"kept the hand-made {self.path} as {backup}")
            self._check_and_replace(rendered)
            result.writes += 1
            for change in changes:
                log.info(
                    "dhcp-conf change",
                    extra={"target": self.name, "action": change.action.value, "key": change.key},
                )
            if self.settings.restart_command:
                self._run(self.settings.restart_command, what="restart dhcpd")
                result.restarted = True
        self.ledger.narrow(c.key for c in changes if c.action is Action.DELETE)
        return result

    def _check_and_replace(self, rendered: str) -> None:
        candidate = self.path.with_name(f".{self.path.name}.candidate-{os.getpid()}")
        try:
            atomic_write(candidate, rendered, mode=0o640)
            self._run(self.settings.check_command, what="check", path=candidate)
            os.replace(candidate, self.path)
        except OSError as error:
            raise TargetError(self.name, f"cannot write {self.path}: {error.strerror}") from None
        finally:
            candidate.unlink(missing_ok=True)

    def _run(self, command: str, *, what: str, path: Path | None = None) -> None:
        argv = [arg.format(path=path or self.path) for arg in shlex.split(command)]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.settings.command_timeout
            )
        except FileNotFoundError:
            raise TargetError(self.name, f"{what} command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise TargetError(
                self.name, f"{what} command {argv[0]} took over {self.settings.command_timeout}s"
            ) from None
        if done.returncode != 0:
            output = self._scrub(done.stdout + done.stderr)
            if path is not None:  # name the file the user knows, not our candidate copy
                output = output.replace(str(path), str(self.path))
            if what == "check":
                raise TargetError(
                    self.name,
                    f"dhcpd rejected the new config; {self.path} is unchanged. dhcpd said:\n"
                    f"{output}",
                )
            raise TargetError(self.name, f"{what} failed (exit {done.returncode}):\n{output}")

    def _scrub(self, output: str) -> str:
        """dhcpd's message without its banner, and never the key (it may quote a line)."""
        lines = [ln for ln in output.splitlines() if ln.strip() and not _BANNER.match(ln)]
        cut = next((i for i, ln in enumerate(lines) if ln.startswith("If you think")), len(lines))
        text = "\n".join(lines[:cut]).strip()
        secret = self._secret() if self.settings.omapi_port else ""
        return text.replace(secret, "<secret>") if secret else text


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> DhcpConfTarget:
    parsed = parse_settings(name, DhcpConfSettings, dict(settings))
    if parsed.omapi_key_file is not None:
        check_key_file(
            config.resolve(parsed.omapi_key_file), setting=f"targets.{name}.omapi_key_file"
        )
    return DhcpConfTarget(
        name=name,
        settings=parsed,
        path=config.resolve(parsed.path),
        key_file=config.resolve(parsed.omapi_key_file) if parsed.omapi_key_file else None,
        include=config.resolve(parsed.include) if parsed.include else None,
        ledger=OwnershipLedger(config.resolve(config.state_dir), name),
        boot_url=config.boot.http_url,
        tftp_server=config.boot.tftp_server,
    )
