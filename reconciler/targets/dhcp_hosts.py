"""dhcpd ``host`` declarations: the one text form both DHCP host backends write and read.

The include-file backend and the OMAPI backend put the same statements into a
host: its fixed address, its host name, and the per-host iPXE script for
clients that already run iPXE (everyone else keeps the class-based filename
from dhcpd.conf). Reading back is the other half: a small scanner finds
``host`` blocks in an include file or in dhcpd's leases file (where OMAPI hosts
persist, with ``deleted;`` tombstones and later blocks overriding earlier ones)
fast enough for tens of thousands of hosts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.resources import DhcpHost

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
_FILENAME = re.compile(r'filename\s*=?\s*"([^"]*)"')
_GROUP = re.compile(r"#\s*group=(\S+)")
_DELETED = re.compile(r"^\s*deleted\s*;", re.MULTILINE)
_CANONICAL = re.compile(
    r"^host ([^\s{;#]+) \{  # group=(\S*)\n"
    r"  hardware ethernet ([0-9a-f:]+);\n"
    r"  fixed-address ([0-9.]+);\n"
    r'  option host-name "([^"]*)";'
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

    @classmethod
    def parse(cls, *, name: str, text: str, body: str) -> HostBlock:
        mac = _MAC.search(body)
        ip = _IP.search(body)
        url = _FILENAME.search(body)
        group = _GROUP.search(text)
        return cls(
            name=name,
            text=text,
            mac=mac.group(1).lower() if mac else "",
            ip=ip.group(1) if ip else "",
            group=group.group(1) if group else "",
            url=url.group(1) if url else "",
            deleted=_DELETED.search(body) is not None,
        )

    def to_host(self, *, boot_url: str) -> DhcpHost:
        """The DhcpHost this block declares; fields it lacks come back empty."""
        return DhcpHost(
            hostname=self.name,
            mac=self.mac,
            ip=self.ip,
            group=self.group,
            boot_filename=boot_filename_from_url(self.url, boot_url) if self.url else "",
        )


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
    position = 0
    for match in _CANONICAL.finditer(text):
        if match.start() > position:
            blocks.extend(iter_host_blocks(text[position : match.start()]))
        name, group, mac, ip, host_name, url = match.groups()
        if host_name != name:
            blocks.extend(iter_host_blocks(match.group(0)))
        else:
            blocks.append(HostBlock(name, match.group(0).rstrip("\n"), mac, ip, group, url or ""))
        position = match.end()
    if position < len(text):
        blocks.extend(iter_host_blocks(text[position:]))
    return blocks


def hosts_in_leases(text: str) -> dict[str, HostBlock]:
    """Host blocks dhcpd keeps in its leases file: the last block of a name wins."""
    result: dict[str, HostBlock] = {}
    for block in iter_host_blocks(text):
        if block.deleted:
            result.pop(block.name, None)
        else:
            result[block.name] = block
    return result
