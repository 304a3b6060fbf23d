"""Loading revision after revision of one site: only what changed is parsed and checked.

The watch loop and the HTTP service load a new revision per commit, and a
commit usually changes a few hosts of one group file. This cache keeps the last
valid load: its files, their validated models, each group file cut into its
host entries (``host_entries``), and the rule context (every MAC, name and
address in use). A new revision then

- reuses the model of every file whose content did not change;
- for a changed group file, reuses the host of every entry whose text did not
  change, and parses and validates only the new entries;
- when nothing but host entries changed, checks only the new hosts, against
  the kept context from which the removed hosts were taken out.

Every shortcut is a shortcut to success only: when one does not apply, or
finds anything wrong at all, the full load runs (``reconciler.inventory.load``)
and reports every problem with its file and line, as it always does.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.inventory.host_entries import (
    HOSTS_KEY,
    HostEntries,
    entries_align,
    header_mapping,
    parse_entry,
    split_hosts,
)
from reconciler.inventory.yamlfile import Mark, YamlProblem
from reconciler.model.inventory import Group, Host, Inventory
from reconciler.model.registration_rules import check_registration
from reconciler.model.rule_context import RuleContext
from reconciler.model.rules import check_group


@dataclass(frozen=True, slots=True)
class GroupFile:
    """A valid group file, and its host entries when the file cuts cleanly into them."""

    group: Group
    entries: HostEntries | None = None
    hosts: dict[str, Host] = dataclasses.field(default_factory=dict)  # entry text -> host

    @classmethod
    def parsed(cls, group: Group, text: str, marks: list[Mark] | None) -> GroupFile:
        """A group the full parse validated; its entries are kept if they align with it."""
        entries = split_hosts(text)
        if entries is None or not entries_align(entries, marks):
            return cls(group)
        return cls(group, entries, dict(zip(entries.entries, group.hosts, strict=True)))


@dataclass(frozen=True, slots=True)
class ValidLoad:
    """What the cache keeps of the last load that found no problem."""

    raw: dict[str, bytes]
    models: dict[str, BaseModel]  # file -> its validated model
    groups: dict[str, GroupFile]
    context: RuleContext
    boot_profiles: frozenset[str] | None
    inventory: Inventory


@dataclass(frozen=True, slots=True)
class _GroupChange:
    file: GroupFile
    removed: list[Host]
    added: list[Host]


def _group_model_valid_alone() -> bool:
    """Hosts are validated one by one only while Group has no rule across its fields."""
    return not Group.__pydantic_decorators__.model_validators


class LoadCache:
    """The last valid load, and the shortcuts it allows for the next one."""

    def __init__(self) -> None:
        self._last: ValidLoad | None = None
        self._lock = threading.Lock()

    def model(self, file: str, content: bytes) -> BaseModel | None:
        """The validated model of ``file`` if the last valid load had it with this content."""
        last = self._last
        if last is None or last.raw.get(file) != content:
            return None
        return last.models.get(file)

    def group_file(self, file: str, content: bytes) -> GroupFile | None:
        """The last valid load's ``file`` if unchanged, else its entries reused where unchanged.

        None when the shortcut does not apply or the file has any problem: then the
        full parse says which.
        """
        last = self._last
        previous = last.groups.get(file) if last is not None else None
        if last is None or previous is None:
            return None
        if last.raw.get(file) == content:
            return previous
        return group_file_changed(previous, content, elsewhere=last.groups.values())

    def remember(self, load: ValidLoad) -> None:
        with self._lock:
            self._last = load

    def incremental(
        self,
        raw: dict[str, bytes],
        *,
        boot_profiles: frozenset[str] | None,
        revision: str,
    ) -> Inventory | None:
        """The new revision, when only host entries of group files changed and all is valid."""
        with self._lock:
            last = self._last
            if last is None or boot_profiles != last.boot_profiles or raw.keys() != last.raw.keys():
                return None
            changes: dict[str, _GroupChange] = {}
            for file, content in raw.items():
                if content == last.raw[file] or not _read_by_loader(file):
                    continue
                change = _hosts_changed(last.groups.get(file), content, last.groups.values())
                if change is None:
                    return None
                changes[file] = change
            if not changes:
                inventory = dataclasses.replace(last.inventory, revision=revision)
                self._last = dataclasses.replace(last, raw=raw, inventory=inventory)
                return inventory
            groups = {**last.groups, **{file: change.file for file, change in changes.items()}}
            context = _checked(last, changes, groups)
            if context is None:
                return None
            inventory = dataclasses.replace(
                last.inventory,
                groups=tuple(groups[file].group for file in sorted(groups)),
                revision=revision,
            )
            models: dict[str, BaseModel] = {**last.models}
            models.update((file, group_file.group) for file, group_file in groups.items())
            self._last = ValidLoad(raw, models, groups, context, boot_profiles, inventory)
            return inventory


def _read_by_loader(file: str) -> bool:
    """Whether the loader reads the file at all (it skips README.md and the like)."""
    return file.endswith((".yaml", ".yml")) or file.startswith("site.")


def group_file_changed(
    previous: GroupFile, content: bytes, *, elsewhere: Iterable[GroupFile] = ()
) -> GroupFile | None:
    """``previous`` brought to ``content`` with its unchanged entries reused (also those
    that moved from a group of ``elsewhere``); None when the shortcut does not apply or
    finds a problem."""
    change = _changed_group(previous, content, elsewhere, same_header=False)
    return change.file if change is not None else None


def _hosts_changed(
    previous: GroupFile | None, content: bytes, elsewhere: Iterable[GroupFile]
) -> _GroupChange | None:
    """The change of a group file in which nothing but host entries changed, else None."""
    if previous is None:
        return None
    return _changed_group(previous, content, elsewhere, same_header=True)


def _changed_group(
    previous: GroupFile, content: bytes, elsewhere: Iterable[GroupFile], *, same_header: bool
) -> _GroupChange | None:
    """``previous`` brought to ``content``: unchanged entries reused, new ones validated.

    ``same_header``: None unless the group's own keys are unchanged too.
    """
    if previous.entries is None or not _group_model_valid_alone():
        return None
    try:
        entries = split_hosts(content.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    if entries is None or len(set(entries.entries)) != len(entries.entries):
        return None  # a repeated entry is a duplicate host: the full load reports it
    group: Group | None = previous.group
    if entries.header != previous.entries.header:
        group = None if same_header else _validated_header(entries.header)
    if group is None:
        return None
    hosts: dict[str, Host] = {}
    for entry in entries.entries:
        host = previous.hosts.get(entry) or _moved(entry, elsewhere) or _validated_host(entry)
        if host is None:
            return None
        hosts[entry] = host
    removed = [host for entry, host in previous.hosts.items() if entry not in hosts]
    added = [host for entry, host in hosts.items() if entry not in previous.hosts]
    updated = group.model_copy(update={HOSTS_KEY: list(hosts.values())})
    return _GroupChange(GroupFile(updated, entries, hosts), removed, added)


def _moved(entry: str, elsewhere: Iterable[GroupFile]) -> Host | None:
    """The host of an entry that was in another group file (a host moved between groups)."""
    return next((g.hosts[entry] for g in elsewhere if entry in g.hosts), None)


def _validated_header(header: str) -> Group | None:
    try:
        return Group.model_validate({**header_mapping(header), HOSTS_KEY: []})
    except (YamlProblem, ValidationError):
        return None


def _validated_host(entry: str) -> Host | None:
    try:
        value: Any = parse_entry(entry)
        return Host.model_validate(value)
    except (YamlProblem, ValidationError):
        return None


def _checked(
    last: ValidLoad, changes: dict[str, _GroupChange], groups: dict[str, GroupFile]
) -> RuleContext | None:
    """The rule context with the removed hosts taken out and the added ones checked in;
    None when any rule fails (the full load then reports it)."""
    old = last.context
    context = dataclasses.replace(
        old,
        problems=[],
        macs=dict(old.macs),
        hostnames=dict(old.hostnames),
        addresses=dict(old.addresses),
    )
    for change in changes.values():
        group = change.file.group
        for host in change.removed:
            keys = (
                context.macs.pop(host.mac, None),
                context.hostnames.pop(group.name_of(host), None),
                context.addresses.pop(int(group.address_for(host)), None),
                *(context.hostnames.pop(alias, None) for alias in host.aliases),
            )
            if None in keys:
                return None  # not what the last load recorded: start afresh
    for file, change in changes.items():
        group = change.file.group
        if len({host.index for host in group.hosts}) != len(group.hosts):
            return None
        check_group(context, file, group.model_copy(update={HOSTS_KEY: change.added}))
    # Registration ranges must stay clear of every name and address in the site.
    for file, group_file in sorted(groups.items()):
        if group_file.group.registration is not None:
            check_registration(context, file, group_file.group)
    return None if context.problems else context
