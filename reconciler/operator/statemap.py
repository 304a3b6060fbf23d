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

The accepted revision is also written in plain form to ``site-<name>-accepted``
(key ``accepted.json``), which ``reconciler serve`` can mount.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import tarfile
from pathlib import Path
from typing import Any

from reconciler.operator.kube import KubeClient, configmaps_path

log = logging.getLogger(__name__)

PART_BYTES = 675_000  # raw bytes per part: 900 kB as base64, under the 1 MiB object limit
SKIPPED = ("watch", "lock")  # the git mirror, wake-up file and lock: not state
LABEL = "reconciler.dev/site"


def pack(state_dir: Path) -> bytes:
    """The state dir's files as a deterministic tar.gz (sorted, no times or owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for path in sorted(state_dir.rglob("*")):
            relative = path.relative_to(state_dir)
            if relative.parts[0] in SKIPPED or not path.is_file() or path.is_symlink():
                continue
            if path.name.startswith("."):  # temporary files of an atomic write in flight
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(str(relative))
            info.size, info.mtime, info.mode = len(data), 0, 0o600
            archive.addfile(info, io.BytesIO(data))
    # gzip stores a timestamp too: zero it so the same state gives the same bytes.
    raw = bytearray(buffer.getvalue())
    raw[4:8] = b"\0\0\0\0"
    return bytes(raw)


def unpack(blob: bytes, state_dir: Path) -> int:
    """Write the files of ``blob`` under ``state_dir``; refuses paths that leave it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    root = state_dir.resolve()
    count = 0
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
        for member in archive.getmembers():
            target = (state_dir / member.name).resolve()
            if not member.isfile() or not target.is_relative_to(root):
                raise ValueError(f"state archive entry {member.name!r} leaves the state dir")
            extracted = archive.extractfile(member)
            assert extracted is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(extracted.read())
            target.chmod(0o600)
            count += 1
    return count


class StateMaps:
    """Reads and writes one Site's state ConfigMaps."""

    def __init__(self, client: KubeClient, *, namespace: str, site: str, owner: dict[str, Any]):
        self.client = client
        self.namespace = namespace
        self.site = site
        self.owner = owner  # ownerReference to the Site: the maps go when the Site goes
        self.head_name = f"site-{site}-state"
        self._digest: str | None = None
        self._known: set[str] = set()  # maps this replica created or saw: patched, not fetched
        self._accepted = ""

    def _map(
        self, name: str, *, data: dict[str, str], binary: dict[str, str] | None = None
    ) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {LABEL: self.site},
                "ownerReferences": [self.owner],
            },
            "data": data,
        }
        if binary is not None:
            body["binaryData"] = binary
        path = f"{configmaps_path(self.namespace)}/{name}"
        if name in self._known or self.client.get(path) is not None:
            self.client.merge_patch(path, {"data": data, "binaryData": binary})
        else:
            self.client.create(configmaps_path(self.namespace), body)
        self._known.add(name)

    def save(self, state_dir: Path) -> bool:
        """Write the state if it changed since the last save; True when written."""
        blob = pack(state_dir)
        digest = hashlib.sha256(blob).hexdigest()[:16]
        if digest == self._digest:
            return False
        parts = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
        for number, part in enumerate(parts):
            encoded = base64.b64encode(part).decode()  # binaryData holds base64 of the bytes
            self._map(f"{self.head_name}-{digest}-{number}", data={}, binary={"part": encoded})
        self._map(self.head_name, data={"digest": digest, "parts": str(len(parts))})
        self._prune(keep=digest)
        accepted = state_dir / "accepted.json"
        text = accepted.read_text() if accepted.is_file() else ""
        if text and text != self._accepted:
            self._map(f"site-{self.site}-accepted", data={"accepted.json": text})
            self._accepted = text
        self._digest = digest
        log.info("state saved", extra={"site": self.site, "bytes": len(blob), "parts": len(parts)})
        return True

    def restore(self, state_dir: Path) -> int:
        """Bring the state dir to what the ConfigMaps hold; the number of files (0: none)."""
        head = self.client.get(f"{configmaps_path(self.namespace)}/{self.head_name}")
        if head is None:
            return 0
        digest, parts = head["data"]["digest"], int(head["data"]["parts"])
        blob = b""
        for number in range(parts):
            part = self.client.get(
                f"{configmaps_path(self.namespace)}/{self.head_name}-{digest}-{number}"
            )
            if part is None:
                raise ValueError(f"state part {number} of {digest} is missing")
            blob += base64.b64decode(part["binaryData"]["part"])
        if hashlib.sha256(blob).hexdigest()[:16] != digest:
            raise ValueError(f"state {digest} does not match its digest")
        count = unpack(blob, state_dir)
        self._digest = digest
        return count

    def _prune(self, *, keep: str) -> None:
        prefix = f"{self.head_name}-"
        for item in self.client.list(
            configmaps_path(self.namespace), labels=f"{LABEL}={self.site}"
        ):
            name = item["metadata"]["name"]
            if name.startswith(prefix) and not name.startswith(f"{prefix}{keep}-"):
                self.client.delete(f"{configmaps_path(self.namespace)}/{name}")
                self._known.discard(name)

    def delete_all(self) -> None:
        for item in self.client.list(
            configmaps_path(self.namespace), labels=f"{LABEL}={self.site}"
        ):
            self.client.delete(f"{configmaps_path(self.namespace)}/{item['metadata']['name']}")
