"""A deterministic ``newc`` cpio writer: the archive format the kernel unpacks as initramfs.

Python's standard library reads no cpio and GNU cpio records the build
machine's inode numbers and times, so the same inputs would give different
bytes. This writer numbers inodes in order, sets owner root and time 0, and
writes members in the order given, so an initramfs is reproducible.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Member:
    """One archive member; ``path`` is relative (no leading slash)."""

    path: str
    mode: int  # file type bits included (stat.S_IFREG | 0o755, ...)
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)

    @classmethod
    def directory(cls, path: str, perm: int = 0o755) -> Member:
        return cls(path, stat.S_IFDIR | perm)

    @classmethod
    def file(cls, path: str, data: bytes, perm: int = 0o644) -> Member:
        return cls(path, stat.S_IFREG | perm, data)

    @classmethod
    def symlink(cls, path: str, target: str) -> Member:
        return cls(path, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def char_device(cls, path: str, major: int, minor: int, perm: int = 0o600) -> Member:
        return cls(path, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _entry(*, ino: int, member: Member, name: str, mtime: int) -> bytes:
    encoded = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(member.mode) else 1
    fields = (
        ino, member.mode, 0, 0, nlink, mtime, len(member.data), 0, 0,
        member.rdev[0], member.rdev[1], len(encoded), 0,
    )  # fmt: skip
    header = MAGIC + b"".join(b"%08X" % value for value in fields)
    head = header + encoded
    return head + _pad(len(head)) + member.data + _pad(len(member.data))


def write_newc(members: Iterable[Member], *, mtime: int = 0) -> bytes:
    """The archive of ``members`` in the given order, with its trailer."""
    chunks = []
    seen: set[str] = set()
    for ino, member in enumerate(members, start=1):
        path = member.path.strip("/")
        if not path or path in seen:
            raise ValueError(f"cpio member {member.path!r}: empty or given twice")
        seen.add(path)
        chunks.append(_entry(ino=ino, member=member, name=path, mtime=mtime))
    chunks.append(_entry(ino=0, member=Member(TRAILER, 0), name=TRAILER, mtime=0))
    archive = b"".join(chunks)
    return archive + _pad(len(archive))
