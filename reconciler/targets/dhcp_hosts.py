"""dhcpd ``host`` declarations: the one text form both DHCP host backends write and read.

The include-file backend and the OMAPI backend put the same statements into a
host: its fixed address, its host name, the host's own ``filename`` and
``next-server`` if it has them (kept from a legacy config), and the per-host
iPXE script for clients that already run iPXE (everyone else keeps the
class-based filename from dhcpd.conf). Reading back is the other half: a small
scanner finds ``host`` blocks in an include file or in dhcpd's leases file
(where OMAPI hosts persist, with ``deleted;`` tombstones and later blocks
overriding earlier ones) fast enough for tens of thousands of hosts. dhcpd
writes statements there in its own spelling (``supersede server.filename =
"..."``, ``supersede server.next-server = 0a:17:2d:02``); both spellings are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.importer.dhcpd_conf import declared_hosts
from reconciler.importer.records import ImportFailure
from reconciler.resources import DhcpHost
from reconciler.targets.base import TargetError

IPXE_CONDITION = 'exists user-class and option user-class = "iPXE"'

# One pass over the text: host headers, braces, strings and comments (so braces
# inside strings or comments do not count).
_TOKENS = re.compile(
    r"(?P<host>^[ \t]*host[ \t]+(?P<name>[^\s{;]+)[ \t]*\{)|(?P<open>\{)|(?P<close>\})"
    r'|"(?:[^"\\\n]|\\.)*"|#[^\n]*',
    re.MULTILINE,
)
_MAC = re.compile(r"hardware\s+ethernet\s+([0-9A-Fa-f:]+)\s*;")
_IP = re.compile(r"fixed-address\s+([^\s;]+)\s*;")
_FILENAME = re.compile(r'(?<![\w-])(?:supersede\s+server\.)?filename\s*=?\s*"([^"]*)"')
_NEXT_SERVER = re.compile(r"(?<![\w-])(?:supersede\s+server\.)?next-server\s*=?\s*([^\s;]+)\s*;")
_HEX_ADDRESS = re.compile(r"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){3}")
_IPXE_BLOCK = re.compile(
    r'if\s+exists\s+user-class\s+and\s+option\s+user-class\s*=\s*"iPXE"\s*\{([^{}]*)\}'
)
_GROUP = re.compile(r"#\s*group=(\S+)")
_DELETED = re.compile(r"^\s*deleted\s*;", re.MULTILINE)
_CANONICAL = re.compile(
    r"^host ([^\s{;#]+) \{  # group=(\S*)\n"
    r"  hardware ethernet ([0-9a-f:]+);\n"
    r"  fixed-address ([0-9.]+);\n"
    r'  option host-name "([^"]*)";'
    r'(?: filename "([^"]*)";)?'
    r"(?: next-server ([0-9.]+);)?"
    r'(?: if exists user-class and option user-class = "iPXE" \{ filename "([^"]*)"; \})?\n'
    r"\}\n",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class HostBlock:
    """A ``host`` block as found in a file: its name, its text, and what it declares."""

    name: str
    text: str  # the whole block, verbatim
    mac: str
    ip: str
    group: str
    url: str  # the iPXE filename, or ""
    deleted: bool = False
    filename: str = ""  # the host's own filename for every client, or ""
    next_server: str = ""

    @classmethod
    def parse(cls, *, name: str, text: str, body: str) -> HostBlock:
        mac = _MAC.search(body)
        ip = _IP.search(body)
        ipxe = _IPXE_BLOCK.search(body)
        url = _FILENAME.search(ipxe.group(1)) if ipxe else None
        rest = body[: ipxe.start()] + body[ipxe.end() :] if ipxe else body
        filename = _FILENAME.search(rest)
        next_server = _NEXT_SERVER.search(rest)
        group = _GROUP.search(text)
        return cls(
            name=name,
            text=text,
            mac=mac.group(1).lower() if mac else "",
            ip=ip.group(1) if ip else "",
            group=group.group(1) if group else "",
            url=url.group(1) if url else "",
            deleted=_DELETED.search(body) is not None,
            filename=filename.group(1) if filename else "",
            next_server=_address_text(next_server.group(1)) if next_server else "",
        )

    def to_host(self, *, boot_url: str) -> DhcpHost:
        """The DhcpHost this block declares; fields it lacks come back empty."""
        return DhcpHost(
            hostname=self.name,
            mac=self.mac,
            ip=self.ip,
            group=self.group,
            boot_filename=boot_filename_from_url(self.url, boot_url) if self.url else "",
            filename=self.filename,
            next_server=self.next_server,
        )


def _address_text(value: str) -> str:
    """dhcpd's leases file spells an address as hex octets (``0a:17:2d:02``): dotted."""
    if _HEX_ADDRESS.fullmatch(value):
        return ".".join(str(int(octet, 16)) for octet in value.split(":"))
    return value


def boot_url_for(host: DhcpHost, boot_url: str) -> str:
    """The HTTP URL an iPXE client fetches its per-host script from."""
    return f"{boot_url.rstrip('/')}/{host.boot_filename.lstrip('/')}"


def boot_filename_from_url(url: str, boot_url: str) -> str:
    """Inverse of ``boot_url_for``; a URL under another base stays whole (and so differs)."""
    prefix = boot_url.rstrip("/") + "/"
    return url[len(prefix) :] if url.startswith(prefix) else url


def host_statements(host: DhcpHost, *, boot_url: str) -> str:
    """The statements a host carries beyond MAC and address (also sent over OMAPI)."""
    statements = f'option host-name "{host.hostname}";'
    if host.filename:
        statements += f' filename "{host.filename}";'
    if host.next_server:
        statements += f" next-server {host.next_server};"
    if host.boot_filename:
        statements += f' if {IPXE_CONDITION} {{ filename "{boot_url_for(host, boot_url)}"; }}'
    return statements


def render_host_block(host: DhcpHost, *, boot_url: str) -> str:
    """The canonical block the include-file backend writes: one per host, fixed shape."""
    return (
        f"host {host.hostname} {{  # group={host.group}\n"
        f"  hardware ethernet {host.mac};\n"
        f"  fixed-address {host.ip};\n"
        f"  {host_statements(host, boot_url=boot_url)}\n"
        "}\n"
    )


def iter_host_blocks(text: str) -> Iterator[HostBlock]:
    """Every top-level ``host`` block of a dhcpd config or leases file, in file order."""
    depth = 0
    start = body_start = 0
    name = ""
    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        if kind == "host" or kind == "name":
            if depth == 0:
                start, body_start, name = match.start(), match.end(), match.group("name")
            depth += 1
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0 and name:
                yield HostBlock.parse(
                    name=name.strip('"'),
                    text=text[start : match.end()],
                    body=text[body_start : match.start()],
                )
                name = ""
            depth = max(depth, 0)


def parse_host_file(text: str) -> list[HostBlock]:
    """The host blocks of an include file, fast for the canonical shape we write.

    Blocks in exactly the shape of ``render_host_block`` are read by one regex;
    anything between them (hand-made blocks) goes through the general scanner.
    """
    blocks: list[HostBlock] = []
    for piece in _pieces(text):
        if isinstance(piece, HostBlock):
            blocks.append(piece)
        else:
            name, group, mac, ip, _, filename, next_server, url = piece.groups()
            blocks.append(
                HostBlock(
                    name,
                    piece.group(0).rstrip("\n"),
                    mac,
                    ip,
                    group,
                    url or "",
                    filename=filename or "",
                    next_server=next_server or "",
                )
            )
    return blocks


def hosts_in_host_file(text: str, *, boot_url: str) -> list[DhcpHost]:
    """``[b.to_host(boot_url=boot_url) for b in parse_host_file(text)]``, without the
    blocks in between: a no-op plan reads 100,000 canonical blocks, and the
    intermediate ``HostBlock`` of each took a third of the read."""
    prefix = boot_url.rstrip("/") + "/"
    cut = len(prefix)
    hosts: list[DhcpHost] = []
    append = hosts.append
    for piece in _pieces(text):
        if isinstance(piece, HostBlock):
            append(piece.to_host(boot_url=boot_url))
            continue
        name, group, mac, ip, _, filename, next_server, url = piece.groups()
        boot_filename = (url[cut:] if url.startswith(prefix) else url) if url else ""
        append(DhcpHost(name, mac, ip, group, boot_filename, filename or "", next_server or ""))
    return hosts


def _pieces(text: str) -> Iterator[re.Match[str] | HostBlock]:
    """The host blocks of an include file in file order: a canonical one as its
    ``_CANONICAL`` match, any other one parsed by the general scanner."""
    position = 0
    for match in _CANONICAL.finditer(text):
        if match.start() > position:
            yield from iter_host_blocks(text[position : match.start()])
        if match.group(5) != match.group(1):  # option host-name differs from the block's name
            yield from iter_host_blocks(match.group(0))
        else:
            yield match
        position = match.end()
    if position < len(text):
        yield from iter_host_blocks(text[position:])


def hosts_in_leases(text: str) -> dict[str, HostBlock]:
    """Host blocks dhcpd keeps in its leases file: the last block of a name wins."""
    result: dict[str, HostBlock] = {}
    for block in iter_host_blocks(text):
        if block.deleted:
            result.pop(block.name, None)
        else:
            result[block.name] = block
    return result


class DeclaredHosts:
    """The hosts a dhcpd.conf declares, read again only when the file changes.

    dhcpd reports such a host over OMAPI (name, MAC, address) but not its
    statements; a legacy site keeps its hosts here, each maybe with its own
    ``filename`` and ``next-server``. dhcpd reads the file only at start, so a
    parse per change of the file is enough.
    """

    def __init__(self, target: str, path: Path) -> None:
        self.target = target
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._hosts: dict[str, DhcpHost] = {}

    def hosts(self) -> dict[str, DhcpHost]:
        """Block name -> the host as declared (no iPXE script: dhcpd.conf's hosts are foreign)."""
        try:
            info = self.path.stat()
        except OSError as error:
            raise TargetError(
                self.target, f"cannot read config_file {self.path}: {error.strerror}"
            ) from None
        stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return self._hosts
        try:
            records = declared_hosts(self.path)
        except ImportFailure as error:
            raise TargetError(self.target, f"config_file: {error}") from None
        self._hosts = {
            name: DhcpHost(
                hostname=name,
                mac=record.mac or "",
                ip=str(record.address) if record.address else "",
                group="",
                boot_filename="",
                filename=record.filename or "",
                next_server=record.next_server or "",
            )
            for name, record in records.items()
        }
        self._stamp = stamp
        return self._hosts
