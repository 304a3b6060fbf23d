"""The ``dhcp-file`` backend: every host declaration in one include file for dhcpd.conf.

The simplest DHCP backend, needing no running server: the reconciler owns one
file that dhcpd.conf includes. Its live state is the file itself, parsed back
(hosts it did not create are ``unmanaged`` and kept verbatim in every rewrite).
The file is replaced atomically and only when its content changes; dhcpd has
to be restarted by whoever runs it to pick the change up.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence, Set
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from reconciler.config import RuntimeConfig
from reconciler.plan_cache import LiveFiles
from reconciler.resources import AnyResource, DesiredState, DhcpHost
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
from reconciler.targets.dhcp_hosts import hosts_in_host_file, parse_host_file, render_host_block
from reconciler.targets.left_files import LeftFiles

log = logging.getLogger(__name__)

HEADER = (
    "# Host declarations managed by the reconciler (target {name}).\n"
    "# Hosts it did not create are kept as they are; edit the inventory for the others.\n"
)


class DhcpFileSettings(BaseModel):
    """Host declarations in one file that dhcpd.conf includes (dhcpd restarted by you)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(
        description="the include file to write; hand-made hosts in it are kept",
        examples=["/etc/dhcp/reconciler-hosts.conf"],
    )


class DhcpFileTarget:
    """Host declarations in one include file, rewritten atomically when they change."""

    kind: ClassVar[str] = "dhcp-file"
    live_update: ClassVar[bool] = False
    batch_size: ClassVar[int] = 1_000_000

    def __init__(self, *, name: str, path: Path, ledger: OwnershipLedger, boot_url: str) -> None:
        self.name = name
        self.path = path
        self.ledger = ledger
        self.boot_url = boot_url
        # The file as this target last left it: a one-host change re-renders one block.
        self._left: LeftFiles[HostsFile] = LeftFiles()

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        return state.dhcp_hosts

    def live_files(self, desired: Sequence[AnyResource]) -> LiveFiles:
        """What ``read`` looks at (``reconciler.plan_cache`` signs it)."""
        return LiveFiles((str(self.ledger.path), str(self.path)))

    def _hosts(self) -> list[DhcpHost]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise TargetError(self.name, f"cannot read {self.path}: {error}") from None
        return hosts_in_host_file(text, boot_url=self.boot_url)

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        owned_keys = self.ledger.owned()
        hosts = self._hosts()
        names = list(map(_HOSTNAME, hosts))
        if owned_keys.issuperset(names):  # a no-op plan: all ours, in one pass in C
            return LiveState(owned=dict(zip(names, hosts, strict=True)), unmanaged={})
        owned: dict[str, AnyResource] = {}
        unmanaged: dict[str, AnyResource] = {}
        for host in hosts:
            (owned if host.hostname in owned_keys else unmanaged)[host.hostname] = host
        return LiveState(owned=owned, unmanaged=unmanaged)

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        if not changes:
            return result
        owned_keys = self.ledger.owned()
        hosts_file = self._left.recall(self.path)
        current = self._left.text(self.path)
        self._left.forget(self.path)  # edited below: kept again once the file holds it
        if hosts_file is None or (
            hosts_file.owned is not owned_keys and hosts_file.owned != owned_keys
        ):  # the same ledger object: no 100,000-key comparison
            current, hosts_file = self._parsed(owned_keys)
        for change in changes:
            if change.action is Action.DELETE:
                hosts_file.remove(change.key)
            else:
                if not isinstance(change.new, DhcpHost):
                    raise TargetError(self.name, f"{change.key}: not a DHCP host")
                hosts_file.foreign.pop(change.key, None)  # adopted: ours from now on
                hosts_file.put(change.new)
            log.info(
                "dhcp-file change",
                extra={"target": self.name, "action": change.action.value, "key": change.key},
            )
            result.applied += 1
        text = hosts_file.text()
        created = {c.key for c in changes if c.action is not Action.DELETE}
        self.ledger.widen(created)
        if text != current:
            try:
                atomic_write(self.path, text)
            except OSError as error:
                raise TargetError(self.name, f"cannot write {self.path}: {error}") from None
            result.writes += 1
        self.ledger.narrow(c.key for c in changes if c.action is Action.DELETE)
        hosts_file.owned = self.ledger.owned()
        self._left.keep(self.path, text=text, value=hosts_file)
        return result

    def _parsed(self, owned_keys: Set[str]) -> tuple[str | None, HostsFile]:
        """The file's text (None when missing) and its blocks, ours and others'."""
        try:
            current: str | None = self.path.read_text()
        except FileNotFoundError:
            current = None
        except (OSError, UnicodeDecodeError) as error:
            raise TargetError(self.name, f"cannot read {self.path}: {error}") from None
        blocks = parse_host_file(current or "")
        hosts_file = HostsFile(
            header=HEADER.format(name=self.name),
            boot_url=self.boot_url,
            foreign={b.name: b.text for b in blocks if b.name not in owned_keys},
        )
        ours = {b.name: b for b in blocks if b.name in owned_keys}
        for block in ours.values():
            hosts_file.put(block.to_host(boot_url=self.boot_url))
        return current, hosts_file

    def render(self, *, foreign: list[str], hosts: list[DhcpHost]) -> str:
        """The whole include file: header, hand-made blocks as found, then ours by name."""
        parts = [HEADER.format(name=self.name)]
        parts.extend(f"{text}\n" for text in foreign)
        parts.extend(
            render_host_block(h, boot_url=self.boot_url)
            for h in sorted(hosts, key=lambda h: h.hostname)
        )
        return "".join(parts)


_HOSTNAME = attrgetter("hostname")


class HostsFile:
    """The include file as blocks: others' as found, ours rendered and sorted by name, so
    a change of one host re-renders one block (``DhcpFileTarget.render`` makes the same)."""

    def __init__(self, *, header: str, boot_url: str, foreign: dict[str, str]) -> None:
        self.header = header
        self.boot_url = boot_url
        self.foreign = foreign
        self.names: list[str] = []  # our hosts' names, sorted
        self.blocks: list[str] = []  # their rendered blocks, in the same order
        self.owned: frozenset[str] = frozenset()  # the ledger's keys these blocks were split by

    def put(self, host: DhcpHost) -> None:
        at = bisect.bisect_left(self.names, host.hostname)
        block = render_host_block(host, boot_url=self.boot_url)
        if at < len(self.names) and self.names[at] == host.hostname:
            self.blocks[at] = block
        else:
            self.names.insert(at, host.hostname)
            self.blocks.insert(at, block)

    def remove(self, name: str) -> None:
        at = bisect.bisect_left(self.names, name)
        if at < len(self.names) and self.names[at] == name:
            del self.names[at], self.blocks[at]

    def text(self) -> str:
        others = "".join(f"{text}\n" for text in self.foreign.values())
        return self.header + others + "".join(self.blocks)


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> DhcpFileTarget:
    parsed = parse_settings(name, DhcpFileSettings, dict(settings))
    return DhcpFileTarget(
        name=name,
        path=config.resolve(parsed.path),
        ledger=OwnershipLedger(config.resolve(config.state_dir), name),
        boot_url=config.boot.http_url,
    )
