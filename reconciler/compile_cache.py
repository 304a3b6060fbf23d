"""What one host compiles to, and the cache that keeps it from one compile to the next.

A long-running process compiles revision after revision that differ in a few
hosts; ``CompileCache`` (held by the engine) lets every other host reuse its
output instead of rendering its boot files again (see ``reconciler.compile``).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.inventory import Host
from reconciler.resources import BootFile, DhcpHost, DnsRecord, NodeImage


@dataclass(frozen=True, slots=True)
class HostOutput:
    """Everything one host compiles to."""

    dhcp_host: DhcpHost
    records: tuple[DnsRecord, ...]
    node_image: NodeImage | None
    boot_files: tuple[BootFile, ...]


@dataclass(frozen=True, slots=True)
class CompiledHost:
    """One host's output and what it was compiled from."""

    host: Host  # kept, so its id() is not reused while the entry lives
    group_key: tuple[object, ...]
    image_key: str
    key: tuple[object, ...]  # every input, by value
    output: HostOutput


class CompileCache:
    """Host outputs of the latest compile, holding those of the latest compile only.

    Found first by the host object itself: the load cache hands the next revision
    the very Host objects of unchanged entries, so most hosts are found without
    building their key. Then by the key of all their inputs (a host parsed again).
    """

    def __init__(self) -> None:
        self._previous: dict[tuple[object, ...], CompiledHost] = {}
        self._current: dict[tuple[object, ...], CompiledHost] = {}
        self._previous_hosts: dict[int, CompiledHost] = {}
        self._current_hosts: dict[int, CompiledHost] = {}

    def of_host(
        self, host: Host, group_key: tuple[object, ...], image_key: str
    ) -> CompiledHost | None:
        entry = self._previous_hosts.get(id(host))
        if entry is None or entry.host is not host or entry.image_key != image_key:
            return None
        return entry if entry.group_key == group_key else None

    def get(self, key: tuple[object, ...]) -> HostOutput | None:
        entry = self._previous.get(key)
        return entry.output if entry is not None else None

    def keep(self, entry: CompiledHost) -> None:
        self._current[entry.key] = entry
        self._current_hosts[id(entry.host)] = entry

    def swap(self) -> None:
        self._previous, self._current = self._current, {}
        self._previous_hosts, self._current_hosts = self._current_hosts, {}
