"""The agent's files under ``/run/reconciler``: what runs, what is staged, what was refused.

Everything the agent knows across its own restarts (and across a root switch,
which moves ``/run`` into the new root) lives in this tmpfs folder, as small
JSON files written atomically, so a reader never sees half a file. The layout
is the node protocol's (``docs/node-protocol.md``).
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

CURRENT = "current.json"
SWAP = "swap.json"
PENDING = "pending"
REFUSED = "refused.json"
LAST_SWAP = "last-swap.json"
STAGE = "stage"


class Version(Protocol):
    """What identifies a version: an assignment, or a ``Running`` of ``swap.json``."""

    @property
    def image(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def rootfs_sha256(self) -> str: ...
    @property
    def kernel_sha256(self) -> str: ...


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically with ``data`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Running:
    """One version as it runs (``current.json``) or will run (``swap.json``'s ``to``)."""

    image: str
    version: str
    kernel_sha256: str
    rootfs_sha256: str
    stage: str
    booted_by: str = "initramfs"

    @property
    def label(self) -> str:
        return f"{self.image}@{self.version}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Running | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                image=str(data["image"]),
                version=str(data["version"]),
                kernel_sha256=str(data["kernel_sha256"]),
                rootfs_sha256=str(data["rootfs_sha256"]),
                stage=str(data.get("stage", "")),
                booted_by=str(data.get("booted_by", "initramfs")),
            )
        except KeyError:
            return None


@dataclass(frozen=True)
class SwapRecord:
    """``swap.json``: written right before a swap, read by the agent in the new root."""

    method: str
    source: Running
    target: Running
    started: float
    previous_stage: str
    rollback: bool = False
    reason: str = ""  # why a rollback happens

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "from": self.source.to_dict(),
            "to": self.target.to_dict(),
            "started": self.started,
            "previous_stage": self.previous_stage,
            "rollback": self.rollback,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SwapRecord | None:
        if not isinstance(data, dict):
            return None
        source, target = Running.from_dict(data.get("from")), Running.from_dict(data.get("to"))
        if source is None or target is None:
            return None
        return cls(
            method=str(data.get("method", "")),
            source=source,
            target=target,
            started=float(data.get("started", 0.0)),
            previous_stage=str(data.get("previous_stage", source.stage)),
            rollback=bool(data.get("rollback", False)),
            reason=str(data.get("reason", "")),
        )


@dataclass
class Refusal:
    """A version the agent will not try again before ``retry_after`` (None: not this boot)."""

    image: str
    version: str
    rootfs_sha256: str
    kernel_sha256: str
    reason: str
    when: float
    retry_after: float | None = None

    def matches(self, version: Version) -> bool:
        return (
            self.rootfs_sha256 == version.rootfs_sha256
            and self.kernel_sha256 == version.kernel_sha256
        )


@dataclass
class RunDir:
    """Paths and records under the agent's run folder (``/run/reconciler`` on a node)."""

    root: Path
    refusals: list[Refusal] = field(default_factory=list)

    def __post_init__(self) -> None:
        for entry in read_json(self.root / REFUSED) or []:
            try:
                self.refusals.append(Refusal(**entry))
            except TypeError:
                continue  # a record of another agent version: forget it

    def stage(self, rootfs_sha256: str) -> Path:
        return self.root / STAGE / rootfs_sha256

    def current(self) -> Running | None:
        return Running.from_dict(read_json(self.root / CURRENT))

    def set_current(self, running: Running) -> None:
        write_json(self.root / CURRENT, running.to_dict())

    def swap(self) -> SwapRecord | None:
        return SwapRecord.from_dict(read_json(self.root / SWAP))

    def set_swap(self, record: SwapRecord) -> None:
        write_json(self.root / SWAP, record.to_dict())

    def clear_swap(self) -> None:
        (self.root / SWAP).unlink(missing_ok=True)
        (self.root / PENDING).unlink(missing_ok=True)

    def set_pending(self, target: Running) -> None:
        """The shell-sourceable ``pending`` file the busybox ``::restart:`` helper reads."""
        text = "".join(
            f"{name}={shlex.quote(value)}\n"
            for name, value in (
                ("NEXT_STAGE", target.stage),
                ("NEXT_IMAGE", target.image),
                ("NEXT_VERSION", target.version),
            )
        )
        path = self.root / PENDING
        tmp = path.with_name(".pending.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def last_swap(self) -> dict[str, Any] | None:
        data = read_json(self.root / LAST_SWAP)
        return data if isinstance(data, dict) else None

    def set_last_swap(self, outcome: dict[str, Any]) -> None:
        write_json(self.root / LAST_SWAP, outcome)

    def refusal_of(self, version: Version, now: float) -> Refusal | None:
        """The refusal that still holds for ``version``, if any."""
        for refusal in self.refusals:
            if refusal.matches(version) and (
                refusal.retry_after is None or refusal.retry_after > now
            ):
                return refusal
        return None

    def refuse(self, version: Version, reason: str, *, retry_in: float | None) -> Refusal:
        """Record that ``version`` is refused; a transient reason is retried later."""
        now = time.time()
        self.refusals = [r for r in self.refusals if not r.matches(version)]
        refusal = Refusal(
            image=version.image,
            version=version.version,
            rootfs_sha256=version.rootfs_sha256,
            kernel_sha256=version.kernel_sha256,
            reason=reason,
            when=now,
            retry_after=None if retry_in is None else now + retry_in,
        )
        self.refusals.append(refusal)
        write_json(self.root / REFUSED, [asdict(r) for r in self.refusals])
        return refusal
