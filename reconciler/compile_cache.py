"""What hosts and groups compile to, and the cache that keeps it from one compile to the next.

A long-running process compiles revision after revision that differ in a few
hosts. ``CompileCache`` (held by the engine) keeps the previous compile per
group, so that (see ``reconciler.compile``):

- a group whose inputs are all the same as last time gives its whole output
  again without looking at one host (at 100,000 hosts in racks of 2,500, a
  one-host commit walks one group instead of forty). Its inputs: the group's
  own settings and the site's (``group_key``), the very same Host objects in the
  same order (the load cache hands an unchanged group's Host objects on; Hosts
  are frozen), every image reference its hosts resolved to and what each
  reference says now, and the rollout assignments of its hosts;
- in a group that changed, each host whose inputs are the same reuses its own
  output: found by the Host object itself, else by the value of all its inputs
  (a host parsed again), instead of rendering its boot files again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.model.inventory import Group, Host
from reconciler.resources import BootFile, DhcpHost, DnsRecord, NodeImage


class HostOutput(NamedTuple):
    """Everything one host compiles to (a tuple: made 100,000 times at 100k hosts)."""

    dhcp_host: DhcpHost
    records: tuple[DnsRecord, ...]
    node_image: NodeImage | None
    boot_files: tuple[BootFile, ...]


@dataclass(frozen=True, slots=True)
class CompiledHost:
    """One host's output and what it was compiled from."""

    host: Host  # kept, so its id() is not reused while the entry lives
    image_key: str
    key: tuple[object, ...]  # every input, by value
    output: HostOutput


@dataclass(frozen=True, slots=True)
class GroupOutput:
    """Everything one group's hosts compile to, in host order."""

    dhcp_hosts: tuple[DhcpHost, ...]
    records: tuple[DnsRecord, ...]
    node_images: tuple[NodeImage, ...]
    boot_files: tuple[BootFile, ...]
    hosts_by_mac: dict[str, str]


@dataclass(frozen=True, slots=True)
class CompiledGroup:
    """One group's output and everything it was compiled from."""

    group_key: tuple[object, ...]  # the group's and the site's settings, by value
    hosts: tuple[Host, ...]  # the very Host objects, in order
    # Every image reference its hosts looked at (their own, the group's, an assigned
    # one), with what it said: its image key, None for a version this revision lacks.
    images: tuple[tuple[str, str | None], ...]
    names: frozenset[str]  # its host names: whose rollout assignments it followed
    by_id: dict[int, CompiledHost]  # id(host) -> entry
    by_key: dict[tuple[object, ...], CompiledHost]  # all of a host's inputs -> entry
    output: GroupOutput


class CompileCache:
    """The groups of the latest compile, found again by name.

    ``keep=False`` (a one-off command: plan, apply) keeps nothing, and compile then
    skips the per-host keys that only a next compile would look at.
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.keeps = keep
        self._previous: dict[str, CompiledGroup] = {}
        self._current: dict[str, CompiledGroup] = {}
        self._assignments: dict[str, str] = {}  # those ``_previous`` was compiled with
        self._pending: dict[str, str] = {}  # those of the compile under way
        self._templates: object = None
        self._reassigned: frozenset[str] = frozenset()  # names whose assignment changed
        self.groups_reused = 0  # in the latest compile (for tests and benchmarks)

    def begin(self, *, templates: object, assignments: Mapping[str, str]) -> None:
        """Start a compile with these boot templates and rollout assignments."""
        self._current, self.groups_reused = {}, 0
        if templates is not self._templates:  # other templates render everything anew
            self._previous, self._templates = {}, templates
        current = dict(assignments)
        if current == self._assignments:
            self._reassigned = frozenset()
        else:
            self._reassigned = frozenset(n for n, _ in current.items() ^ self._assignments.items())
        self._pending = current

    def reusable(
        self,
        group: Group,
        group_key: tuple[object, ...],
        image_key_of: Callable[[str], str | None],
    ) -> CompiledGroup | None:
        """The previous compile of ``group`` when none of its inputs changed, else None."""
        entry = self._previous.get(group.name)
        if entry is None or entry.group_key != group_key:
            return None
        hosts = group.hosts
        if len(hosts) != len(entry.hosts) or not all(map(operator.is_, hosts, entry.hosts)):
            return None
        if any(image_key_of(ref) != key for ref, key in entry.images):
            return None
        if not self._reassigned.isdisjoint(entry.names):
            return None
        self.groups_reused += 1
        return entry

    def previous(self, name: str, group_key: tuple[object, ...]) -> CompiledGroup | None:
        """The previous compile of a group of this name and the same settings: its hosts'
        entries are candidates for reuse."""
        entry = self._previous.get(name)
        return entry if entry is not None and entry.group_key == group_key else None

    def keep(self, name: str, entry: CompiledGroup) -> None:
        if self.keeps:
            self._current[name] = entry

    def finish(self) -> None:
        """The compile is whole: its groups are what the next one compares against."""
        self._previous, self._current = self._current, {}
        self._assignments = self._pending
