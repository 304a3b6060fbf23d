"""A Site's state dir kept in ConfigMaps, so any replica can take over without a shared disk.

What ``reconciler watch`` keeps on disk (ownership ledgers, file manifests, the
accepted revision, rollout state, the last status) is packed into one
deterministic ``tar.gz``, split into ConfigMap-sized parts (a ConfigMap holds
at most 1 MiB) and written as ``site-<name>-state-<digest>-<n>``; a small
head ConfigMap ``site-<name>-state`` then names the digest and the number of
parts. Switching the head is the one atomic step, so a replica killed while
writing parts leaves the previous state whole; parts of older digests are
deleted after the switch. The git mirror and the lock are not state: a new
replica fetches and locks afresh.

Two kinds of writes, so a pass costs a few API calls and not one full copy per
ledger write:

- ``save`` (once per pass, from the status store) writes the whole state, and
  only when it changed: the files are fingerprinted first (the pass counter
  and timestamps of ``status.json`` aside), and the packed bytes are compared
  with what the ConfigMaps hold.
- ``record_ledger`` (the ``mirror_state`` hook, called after a ledger is
  widened and before the objects it names are created) adds only the keys
  added since the last full save to a journal kept in the head ConfigMap: one
  small patch. ``restore`` unpacks the parts and adds the journal's keys to the
  ledgers, so a replica killed mid-apply leaves no object its successor does
  not know it owns. A full save resets the journal in the same head switch.

The file targets' manifests (``*.files.json``: size, mtime, ctime, inode and sha256 of each
file written, over half of the state at 10k hosts) are only a cache: without
them a file target reads and digests its files again, with the same result.
So they stay out of the parts a commit waits for: ``save`` only takes a copy,
and ``tidy`` (after the status patch) writes it to ``site-<name>-cache-<n>``
maps, each naming the digest and part count of the whole. ``restore`` unpacks
them first when they are whole and match, and otherwise goes on without them:
a missing, torn or old cache costs reads, never a wrong plan (a manifest entry
is trusted only while the file's size and mtime are still the recorded ones).

The accepted revision is also written in plain form to ``site-<name>-accepted``
(key ``accepted.json``), which ``reconciler serve`` mounts, together with the
rollout assignments (``assignments.json.gz``: the version each node runs while
its group rolls out in waves), so serve answers each node what its wave says.
Both keys change in one write, and a mounted ConfigMap's files change together.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from reconciler.operator.kube import KubeClient, KubeError, configmaps_path
from reconciler.operator.statefiles import (
    LEDGER_SUFFIX,
    PART_BYTES,
    archive,
    decode_journal,
    encode_journal,
    file_identity,
    fingerprint,
    inside_state_dir,
    is_cache,
    ledger_bytes,
    ledger_keys,
    state_files,
    unchanged_since,
    unpack,
)
from reconciler.rollout.store import pack_assignments

log = logging.getLogger(__name__)

LABEL = "reconciler.dev/site"
ASSIGNMENTS = "rollouts/assignments.json"  # in the state dir (reconciler.rollout.store)
# The manifests' cache is written at most this often (a ~2 MB write at 10k hosts, which
# every commit changes); the newest copy waits for a later pass or for ``tidy(flush=True)``.
CACHE_SECONDS = 30.0


class StateMaps:
    """Reads and writes one Site's state ConfigMaps."""

    def __init__(self, client: KubeClient, *, namespace: str, site: str, owner: dict[str, Any]):
        self.client = client
        self.namespace = namespace
        self.site = site
        self.owner = owner  # ownerReference to the Site: the maps go when the Site goes
        self.head_name = f"site-{site}-state"
        self.cache_name = f"site-{site}-cache"  # the manifests, as parts -0, -1, ...
        self._digest: str | None = None  # the parts the head names
        self._parts = 0
        self._fingerprint: str | None = None
        self._quick: tuple[object, ...] | None = None  # unchanged_since() at the last save
        self._base_files: dict[str, bytes] = {}  # ledger files in the parts the head names
        self._base: dict[str, frozenset[str]] = {}  # their keys, parsed when a ledger is widened
        # Each ledger's keys as its last write (the hook) told them, with the file's identity
        # then: a save whose parts hold that very file takes them as its base, unparsed.
        self._told: dict[str, tuple[tuple[int, int, int], frozenset[str]]] = {}
        self._journal: dict[str, list[str]] = {}  # ledger keys added since then
        self._known: set[str] = set()  # maps that exist: patched, not created
        self._listed = False  # stale parts of other replicas looked for
        # What site-<name>-accepted holds for serve: the accepted record and the assignments.
        self._published: tuple[bytes, bytes] = (b"", b"")
        self._published_due: tuple[bytes, bytes] | None = None  # what tidy() writes next
        self._stale: list[tuple[str | None, int]] = []  # parts tidy() deletes: (digest, count)
        self._lock = threading.RLock()  # tidy() may run in a thread of its own
        self._cache_seen: str | None = None  # fingerprint of the manifests last taken
        self._cache_due: dict[str, bytes] | None = None  # manifests tidy() writes
        self._cache_parts = 0  # parts the cache maps hold now
        self._cache_lock = threading.Lock()  # one cache write at a time, outside _lock
        self._cache_written = float("-inf")  # time.monotonic() of the last cache write

    @property
    def _maps_path(self) -> str:
        return configmaps_path(self.namespace)

    def _body(self, name: str, *, data: dict[str, str], binary: dict[str, str]) -> dict[str, Any]:
        """A ConfigMap of this Site's state: labelled for it and owned by it."""
        metadata = {
            "name": name,
            "namespace": self.namespace,
            "labels": {LABEL: self.site},
            "ownerReferences": [self.owner],
        }
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": data,
            "binaryData": binary,
        }

    def _map(self, name: str, *, data: dict[str, str], binary: dict[str, str]) -> None:
        """Create or update a ConfigMap; one call when this replica knows whether it exists."""
        path = f"{self._maps_path}/{name}"
        if name in self._known:
            self.client.merge_patch(path, {"data": data, "binaryData": binary})
            return
        try:
            self.client.create(self._maps_path, self._body(name, data=data, binary=binary))
        except KubeError as error:
            if error.status != 409:
                raise
            self.client.merge_patch(path, {"data": data, "binaryData": binary})
        self._known.add(name)

    def _part(self, digest: str, number: int, part: bytes) -> None:
        """A part is named by the digest of the whole: one that exists already holds these bytes."""
        name = f"{self.head_name}-{digest}-{number}"
        binary = {"part": base64.b64encode(part).decode()}
        try:
            self.client.create(self._maps_path, self._body(name, data={}, binary=binary))
        except KubeError as error:
            if error.status != 409:
                raise

    def save(self, state_dir: Path, *, tidy: bool = True) -> bool:
        """Write the whole state if it changed since the last save; True when written.

        The head switch makes it durable; the rest (deleting the parts it no
        longer names, the plain accepted record) is ``tidy``'s, which a caller
        in a hurry to report the pass runs after reporting it, in another thread.
        """
        quick = unchanged_since(state_dir)
        if quick == self._quick:  # without the lock: only the loop's thread saves
            return False
        with self._lock:
            written = self._save(state_dir, tidy=tidy, quick=quick)
        if tidy:
            self._write_cache()
        return written

    def _save(
        self, state_dir: Path, *, tidy: bool, quick: tuple[object, ...] | None = None
    ) -> bool:
        quick = unchanged_since(state_dir) if quick is None else quick
        if quick == self._quick:
            return False
        files = state_files(state_dir)
        cache = {name: data for name, data in files.items() if is_cache(name)}
        files = {name: data for name, data in files.items() if not is_cache(name)}
        cache_seen = fingerprint(cache)
        if cache_seen != self._cache_seen:  # written by tidy(), after the status patch
            self._cache_seen, self._cache_due = cache_seen, cache
        seen = fingerprint(files)
        if seen == self._fingerprint:
            self._quick = quick
            return False
        blob = archive(files)
        digest = hashlib.sha256(blob).hexdigest()[:16]
        written = digest != self._digest or bool(self._journal)
        if written:
            parts = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
            if digest != self._digest:
                for number, part in enumerate(parts):
                    self._part(digest, number, part)
            head = {"digest": digest, "parts": str(len(parts))}
            self._map(self.head_name, data=head, binary={"journal": encode_journal({})})
            previous, previous_parts = self._digest, self._parts
            self._digest, self._parts, self._journal = digest, len(parts), {}
            self._set_base(files, state_dir)
            if previous != digest:
                self._stale.append((previous, previous_parts))
            log.info("state saved", extra={"site": self.site, "bytes": len(blob)})
        self._fingerprint, self._quick = seen, quick
        published = (files.get("accepted.json", b""), files.get(ASSIGNMENTS, b"{}\n"))
        if published[0] and published != self._published:
            self._published_due, written = published, True
        if tidy:
            self._tidy()
        return written

    @property
    def untidy(self) -> bool:
        """Stale parts to delete or a plain accepted record to write: ``tidy`` has work."""
        due = self._published_due is not None or self._cache_due is not None
        return bool(self._stale) or due

    def tidy(self, *, flush: bool = False) -> None:
        """Delete the parts the head no longer names; write the plain record and the cache.

        The cache is written when ``CACHE_SECONDS`` passed since the last write, or ``flush``.
        """
        with self._lock:
            self._tidy()
        self._write_cache(flush=flush)

    def _write_cache(self, *, flush: bool = True) -> None:
        """The manifests last taken by a save, packed here and not on a commit's path."""
        with self._cache_lock:
            if not flush and time.monotonic() - self._cache_written < CACHE_SECONDS:
                return  # still due: a later tidy writes the newest copy
            with self._lock:
                cache, self._cache_due = self._cache_due, None
            if cache is None:
                return
            self._cache_written = time.monotonic()
            try:
                blob = archive(cache)
                digest = hashlib.sha256(blob).hexdigest()[:16]
                parts = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
                head = {"digest": digest, "parts": str(len(parts))}
                for number, part in enumerate(parts):
                    binary = {"part": base64.b64encode(part).decode()}
                    self._map(f"{self.cache_name}-{number}", data=head, binary=binary)
                for number in range(len(parts), self._cache_parts):
                    self.client.delete(f"{self._maps_path}/{self.cache_name}-{number}")
                self._cache_parts = len(parts)
            except BaseException:
                self._cache_written = float("-inf")
                with self._lock:  # the next tidy tries again, unless a newer copy is due
                    if self._cache_due is None:
                        self._cache_due = cache
                raise

    def _tidy(self) -> None:
        while self._stale:
            previous, count = self._stale[0]
            if previous != self._digest:  # the state may have come back to the same bytes
                self._prune(previous=previous, count=count)
            self._stale.pop(0)
        if self._published_due is not None:
            accepted, assignments = self._published_due
            self._map(
                f"site-{self.site}-accepted",
                data={"accepted.json": accepted.decode(errors="replace")},
                binary={
                    "assignments.json.gz": base64.b64encode(pack_assignments(assignments)).decode()
                },
            )
            self._published, self._published_due = self._published_due, None

    def _set_base(self, files: dict[str, bytes], state_dir: Path | None = None) -> None:
        self._base_files = {n: d for n, d in files.items() if n.endswith(LEDGER_SUFFIX)}
        self._base = {}
        if state_dir is None:
            self._told = {}
            return
        for name in self._base_files:  # the files saved are still those the hook was told of
            told = self._told.get(name)
            if told is not None and told[0] == file_identity(state_dir / name):
                self._base[name] = told[1]

    def record_ledger(
        self, path: Path, *, state_dir: Path, keys: frozenset[str] | None = None
    ) -> None:
        """A ledger was written: its new keys reach the head's journal before they are created.

        ``keys``: what the ledger now holds, when its writer says (else the file is read).
        """
        with self._lock:
            self._record_ledger(path, state_dir=state_dir, keys=keys)

    def _record_ledger(self, path: Path, *, state_dir: Path, keys: frozenset[str] | None) -> None:
        name = path.relative_to(state_dir).as_posix()
        if keys is not None and name.endswith(LEDGER_SUFFIX):
            identity = file_identity(path)
            if identity is not None:
                self._told[name] = (identity, keys)
        if self._digest is None or not name.endswith(LEDGER_SUFFIX):
            self._save(state_dir, tidy=True)  # nothing to journal against yet: the whole state
            return
        if keys is not None:
            current: frozenset[str] | set[str] = keys
        else:
            try:
                current = ledger_keys(path.read_bytes())
            except FileNotFoundError:
                return
        journaled = set(self._journal.get(name, ()))
        if name not in self._base:
            self._base[name] = frozenset(ledger_keys(self._base_files.get(name)))
        added = current - self._base[name] - journaled
        if not added:  # a narrowed ledger, or keys journaled already: nothing new to protect
            return
        journal = {**self._journal, name: sorted(journaled | added)}
        encoded = encode_journal(journal)
        if len(encoded) > PART_BYTES:  # a huge first apply: a full save is the smaller write
            self._save(state_dir, tidy=True)
            return
        self.client.merge_patch(
            f"{self._maps_path}/{self.head_name}", {"binaryData": {"journal": encoded}}
        )
        self._known.add(self.head_name)
        self._journal = journal

    def restore(self, state_dir: Path) -> int:
        """Bring the state dir to what the ConfigMaps hold; the number of files (0: none)."""
        head = self.client.get(f"{self._maps_path}/{self.head_name}")
        if head is None:
            return 0
        self._restore_cache(state_dir)  # first: manifests in an older state's parts win
        digest, parts = head["data"]["digest"], int(head["data"]["parts"])
        blob = b""
        for number in range(parts):
            part = self.client.get(f"{self._maps_path}/{self.head_name}-{digest}-{number}")
            if part is None:
                raise ValueError(f"state part {number} of {digest} is missing")
            blob += base64.b64decode(part["binaryData"]["part"])
        if hashlib.sha256(blob).hexdigest()[:16] != digest:
            raise ValueError(f"state {digest} does not match its digest")
        files = unpack(blob, state_dir)
        journal = decode_journal((head.get("binaryData") or {}).get("journal"))
        for name, keys in journal.items():
            if not name.endswith(LEDGER_SUFFIX):
                raise ValueError(f"state journal entry {name!r} is not an ownership ledger")
            target = inside_state_dir(state_dir, name)
            merged = ledger_keys(target.read_bytes() if target.is_file() else None) | set(keys)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ledger_bytes(merged))
            target.chmod(0o600)
        self._digest, self._parts = digest, parts
        self._set_base(files)
        self._journal = journal
        self._fingerprint, self._quick = None, None
        self._known.add(self.head_name)
        # Unknown: a replica killed after the head switch may not have written the plain
        # record yet, so the first save after a takeover writes it again.
        self._published = (b"", b"")
        return len(files)

    def _restore_cache(self, state_dir: Path) -> None:
        """Unpack the manifests when the cache maps are whole; without them, files get read."""
        path = f"{self._maps_path}/{self.cache_name}"
        try:
            first = self.client.get(f"{path}-0")
            if first is None:
                return
            digest, count = first["data"]["digest"], int(first["data"]["parts"])
            blob = b""
            for number in range(count):
                part = first if number == 0 else self.client.get(f"{path}-{number}")
                if part is None or part["data"]["digest"] != digest:
                    raise ValueError(f"cache part {number} of {digest} is missing or newer")
                blob += base64.b64decode(part["binaryData"]["part"])
            if hashlib.sha256(blob).hexdigest()[:16] != digest:
                raise ValueError(f"cache {digest} does not match its digest")
            unpack(blob, state_dir, allowed=is_cache)
            self._cache_parts = count
            self._known.update(f"{self.cache_name}-{n}" for n in range(count))
        except (KeyError, TypeError, ValueError, tarfile.TarError, EOFError, OSError) as error:
            log.warning(  # only a cache: files are read again instead
                "file manifests not restored", extra={"site": self.site, "error": str(error)}
            )

    def _prune(self, *, previous: str | None, count: int) -> None:
        """Delete the parts the head no longer names (all stale ones, the first time)."""
        if self._listed and previous is not None:
            for number in range(count):
                self.client.delete(f"{self._maps_path}/{self.head_name}-{previous}-{number}")
            return
        prefix = f"{self.head_name}-"
        for item in self.client.list(self._maps_path, labels=f"{LABEL}={self.site}"):
            name = item["metadata"]["name"]
            if name.startswith(prefix) and not name.startswith(f"{prefix}{self._digest}-"):
                self.client.delete(f"{self._maps_path}/{name}")
        self._listed = True

    def delete_all(self) -> None:
        for item in self.client.list(self._maps_path, labels=f"{LABEL}={self.site}"):
            self.client.delete(f"{self._maps_path}/{item['metadata']['name']}")
