"""Sequential enrolment: give an unknown MAC the next free index of an open group, in git.

The decision is made against the head of the registration branch, read again
for every request, and the commit moves the branch only if nobody else moved
it in between; callers also run one enrolment at a time. So two machines never
get the same index, and machines booted one after another get consecutive
ones. The inventory with the new host is validated in full before it is
committed: an enrolment never produces a revision that would not apply.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.inventory.commit import Author, BranchMoved, CommitError, InventoryBranch
from reconciler.inventory.edit import EditError, append_host
from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import GitSource, SourceError
from reconciler.model.inventory import Group, Inventory
from reconciler.model.problems import InventoryError
from reconciler.server.push import PushRejected, RegistrationRemote, RemoteUnavailable

log = logging.getLogger(__name__)

ATTEMPTS = 5
RETRY_AFTER = 5  # seconds a client is asked to wait after a 503


class Refused(Exception):
    """The request is not granted; ``status`` is the HTTP status, the message the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    @property
    def retry_after(self) -> int | None:
        """Seconds to ask the client to wait: a 503 is a passing state (busy, unreachable)."""
        return RETRY_AFTER if self.status == 503 else None


@dataclass(frozen=True, slots=True)
class Enrolled:
    """The answer to a granted registration (and to every repeat of it)."""

    hostname: str
    ip: str
    index: int
    group: str
    commit: str | None
    new: bool  # False when the MAC was already in the group

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "ip": self.ip,
            "index": self.index,
            "group": self.group,
            "commit": self.commit,
        }


class MemorySource:
    """Inventory files held in memory: a proposed revision, validated before it is committed."""

    def __init__(self, files: dict[str, bytes], revision: str) -> None:
        self.files = files
        self._revision = revision

    def describe(self) -> str:
        return f"proposed revision on top of {self._revision}"

    def revision(self) -> str:
        return self._revision

    def read_files(self) -> dict[str, bytes]:
        return dict(self.files)


def lowest_free_index(group: Group) -> int | None:
    if group.registration is None:
        return None
    used = {host.index for host in group.hosts}
    first, last = group.registration.indexes
    return next((i for i in range(first, last + 1) if i not in used), None)


def open_groups_for(
    inventory: Inventory, address: ipaddress.IPv4Address, *, routed: bool
) -> list[Group]:
    """The groups that may enrol a machine asking from ``address``, by name; Refused if none."""
    in_subnet = sorted((g for g in inventory.groups if address in g.subnet), key=lambda g: g.name)
    if not in_subnet:
        raise Refused(403, f"{address} is not in the subnet of any group")
    open_groups = [g for g in in_subnet if g.registration is not None and g.registration.open]
    if not open_groups:
        names = ", ".join(g.name for g in in_subnet)
        raise Refused(403, f"registration is closed for {names} (subnet of {address})")
    if routed:
        open_groups = [g for g in open_groups if g.registration and g.registration.allow_routed]
        if not open_groups:
            raise Refused(
                403,
                f"no neighbour entry for {address}: the request did not come from the "
                "machine's own link (it was routed, or sent from this server), so its MAC "
                "cannot be checked; set registration.allow_routed: true in the group to "
                "enrol routed machines",
            )
    return open_groups


def commit_message(hostname: str, mac: str, group: str) -> str:
    return f"register {hostname} ({mac}) in {group}"


class Enroller:
    """Enrols MACs into the inventory on one branch. Not thread-safe: run one at a time.

    With a ``remote``, ``repo`` is its work repository: every attempt fetches the
    remote branch into it first and pushes the commit afterwards.
    """

    def __init__(
        self,
        *,
        repo: Path,
        branch: str,
        subdir: str,
        author: Author,
        boot_profiles: frozenset[str] | None,
        signing_key: Path | None = None,
        remote: RegistrationRemote | None = None,
    ) -> None:
        self.repo_path = repo
        self.remote = remote
        self.branch_name = branch
        self.branch = None if remote is not None else InventoryBranch(repo, branch)
        self.subdir = subdir.strip("/")
        self.author = author
        self.boot_profiles = boot_profiles
        self.signing_key = signing_key

    def _repo_path(self, relative: str) -> str:
        return f"{self.subdir}/{relative}" if self.subdir else relative

    def enrol(self, mac: str, address: str, *, routed: bool = False) -> Enrolled:
        """Register ``mac`` asking from ``address``; raise Refused with the reason if not.

        ``routed``: the request came without a neighbour entry, so only groups
        with ``allow_routed`` may take it.
        """
        for _ in range(ATTEMPTS):
            try:
                return self._attempt(mac, ipaddress.IPv4Address(address), routed=routed)
            except BranchMoved:
                log.info("registration branch moved; trying again", extra={"mac": mac})
            except RemoteUnavailable as error:
                raise Refused(503, f"cannot register now: {error}") from None
            except OSError as error:  # a full disk, a vanished repository
                raise Refused(
                    503, f"cannot commit the registration: {error.strerror or error}"
                ) from None
        raise Refused(503, f"branch {self.branch_name} keeps moving; try again")

    def _current(self) -> InventoryBranch:
        """The branch to enrol on; with a remote, fetched from it just now."""
        if self.remote is not None:
            name = self.remote.fetch()
            if self.branch is None or self.branch.branch != name:
                self.branch = InventoryBranch(self.repo_path, name)
            self.branch_name = name
        assert self.branch is not None
        return self.branch

    def _publish(self, branch: InventoryBranch, sha: str, parent: str) -> None:
        """Push ``sha`` to the remote; BranchMoved if someone pushed first, Refused if refused."""
        if self.remote is None:
            return
        try:
            self.remote.push(sha)
            return
        except PushRejected as error:
            problem = str(error)
        self.remote.fetch()  # what is there now decides: ours, someone else's, or unchanged
        now = branch.head().hexsha
        if now == sha:  # the push went through; only its answer was lost
            return
        if now != parent:
            raise BranchMoved(f"{self.remote.shown_url} {branch.branch} moved; read it again")
        raise Refused(
            503,
            f"{self.remote.shown_url} refused the registration commit on {branch.branch}: "
            f"{problem}; check [serve] push_url and its credentials",
        )

    def _attempt(self, mac: str, address: ipaddress.IPv4Address, *, routed: bool) -> Enrolled:
        branch = self._current()
        head = branch.head()
        try:
            files = GitSource(self.repo_path, head.hexsha, self.subdir).read_files()
            inventory = load_inventory(
                MemorySource(files, head.hexsha), boot_profiles=self.boot_profiles
            )
        except (SourceError, InventoryError) as error:
            raise Refused(
                503, f"the inventory at the head of {branch.branch} is not usable: {error}"
            ) from None
        existing = self._existing(branch, inventory, mac, address)
        if existing is not None:
            return existing
        group, index = self._choose(inventory, address, routed=routed)
        hostname = group.hostname_of(index)
        relative = f"groups/{group.name}.yaml"
        try:
            edited = append_host(files[relative].decode("utf-8"), index=index, mac=mac)
        except (EditError, KeyError, UnicodeDecodeError) as error:
            raise Refused(500, f"cannot edit {relative}: {error}") from None
        proposed = {**files, relative: edited.encode("utf-8")}
        try:
            load_inventory(MemorySource(proposed, head.hexsha), boot_profiles=self.boot_profiles)
        except InventoryError as error:
            raise Refused(
                409, f"enrolling {mac} as {hostname} would make the inventory invalid: {error}"
            ) from None
        try:
            sha = branch.commit_file(
                parent=head,
                path=self._repo_path(relative),
                content=proposed[relative],
                message=commit_message(hostname, mac, group.name),
                author=self.author,
                signing_key=self.signing_key,
            )
        except BranchMoved:
            raise
        except CommitError as error:
            raise Refused(503, str(error)) from None
        self._publish(branch, sha, head.hexsha)
        log.info(
            "registered",
            extra={"host": hostname, "mac": mac, "group": group.name, "commit": sha},
        )
        return Enrolled(hostname, str(group.address_of(index)), index, group.name, sha, new=True)

    def _existing(
        self,
        branch: InventoryBranch,
        inventory: Inventory,
        mac: str,
        address: ipaddress.IPv4Address,
    ) -> Enrolled | None:
        for group in inventory.groups:
            for host in group.hosts:
                if host.mac != mac:
                    continue
                hostname = group.name_of(host)
                if address not in group.subnet:
                    raise Refused(
                        409,
                        f"{mac} is already registered as {hostname} in group {group.name} "
                        f"({group.subnet}), not in the subnet of {address}",
                    )
                commit = branch.last_commit_mentioning(f"({mac})")
                return Enrolled(
                    hostname, str(group.address_for(host)), host.index, group.name,
                    commit, new=False,
                )  # fmt: skip
        return None

    def _choose(
        self, inventory: Inventory, address: ipaddress.IPv4Address, *, routed: bool
    ) -> tuple[Group, int]:
        open_groups = open_groups_for(inventory, address, routed=routed)
        for group in open_groups:
            index = lowest_free_index(group)
            if index is not None:
                return group, index
        windows = ", ".join(
            f"{g.name} {g.registration.indexes[0]}-{g.registration.indexes[1]}"
            for g in open_groups
            if g.registration is not None
        )
        raise Refused(409, f"registration window is full: every index is taken ({windows})")
