"""Checks for values that end up inside another language: iPXE scripts, pxelinux, dhcpd.conf.

A kernel command line, an image URL or the boot server's address is pasted
into iPXE ``kernel`` lines, pxelinux ``APPEND`` lines and dhcpd ``filename``
and ``next-server`` statements. iPXE splits a line into words and treats a word
``||``, ``&&`` or ``;`` as the end of a command, a word starting with ``#`` as a
comment and ``${...}`` as a setting to expand; pxelinux and dhcpd end a value
at a newline or a double quote. Rather than quote for three languages at once,
these values are checked against what is harmless in all of them, and refused
with a message naming the offending part. The same rules serve the inventory
models (errors with file:line) and the runtime config (errors at load).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# A kernel command line: words of these characters, separated by spaces. A "$"
# is allowed (memmap=64M$0x...), "${" is not (iPXE would expand it).
_CMDLINE_CHARS = re.compile(r"[A-Za-z0-9 ._,:=/+@%~!*?()\[\]$^|&-]*")
MAX_CMDLINE = 1024
# iPXE's command terminators (as whole words; refused anywhere, to be safe).
_TERMINATORS = ("||", "&&", ";")
# URLs: RFC 3986 characters without quotes, backslash, "<>", "{}", "|", spaces.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+")
_HOST = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?\Z")
_PATH_BAD = re.compile(r'["\\\x00-\x1f\x7f]')

ALLOWED_CMDLINE = (
    "letters, digits, spaces and . _ , : = / + @ % ~ ! * ? ( ) [ ] $ ^ | & - "
    "(not '||', '&&' or '${')"
)


def check_cmdline(value: str) -> str:
    """A kernel command line safe in an iPXE ``kernel`` line and a pxelinux ``APPEND`` line."""
    if len(value) > MAX_CMDLINE:
        raise ValueError(
            f"the kernel command line is {len(value)} characters long; keep it under "
            f"{MAX_CMDLINE} (the kernel's own limit is 2048 and the reconciler adds to it)"
        )
    if "${" in value:
        raise ValueError(
            f"kernel command line {value!r} contains '${{': iPXE would expand it as a "
            "setting; write the value out"
        )
    for terminator in _TERMINATORS:
        if terminator in value:
            raise ValueError(
                f"kernel command line {value!r} contains {terminator!r}, which ends the "
                "command in an iPXE script (the rest would run as a command of its own); remove it"
            )
    bad = sorted({c for c in value if not _CMDLINE_CHARS.fullmatch(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(
            f"kernel command line {value!r} contains {shown}; it is written into iPXE "
            f"scripts and pxelinux APPEND lines, so use only {ALLOWED_CMDLINE}"
        )
    return value


def check_url(value: str, *, schemes: tuple[str, ...] = ("http", "https", "tftp")) -> str:
    """A URL that can stand as one word in iPXE and inside double quotes in dhcpd.conf."""
    usage = " or ".join(f"{s}://" for s in schemes)
    if "${" in value:
        raise ValueError(f"{value!r} contains '${{', which iPXE would expand; write it out")
    if not _URL_CHARS.fullmatch(value):
        bad = sorted({c for c in value if not _URL_CHARS.fullmatch(c)})
        shown = ", ".join(repr(c) for c in bad) or "nothing"
        raise ValueError(
            f"{value!r} is not a usable URL: it contains {shown}; use {usage} with no "
            "spaces, quotes, backslashes or control characters (percent-encode them)"
        )
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{value!r} is not a usable URL: use {usage} followed by a host")
    return value


def check_base_url(value: str) -> str:
    """``[boot] http_url``: an http(s) URL that paths are appended to (no query or fragment)."""
    check_url(value, schemes=("http", "https"))
    parts = urlsplit(value)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(
            f"{value!r}: the boot URL is a base that paths are appended to; "
            "remove the query ('?...') or fragment ('#...')"
        )
    if parts.username or parts.password:
        raise ValueError(f"{value!r}: the boot URL must not carry a user name or password")
    return value


def check_server_address(value: str) -> str:
    """``[boot] tftp_server``: an IPv4 address or a host name, as dhcpd's ``next-server`` takes."""
    try:
        ipaddress.IPv4Address(value)
        return value
    except ValueError:
        pass
    if not _HOST.match(value) or len(value) > 253:
        raise ValueError(
            f"{value!r} is not an IPv4 address or a host name; it becomes dhcpd's next-server "
            'statement, so write it like "10.23.45.2" or "boot.cluster.example"'
        )
    return value


MAX_DHCP_FILENAME = 128  # the BOOTP "file" field, and Kea's dhcp4_boot_file_name column
_DHCP_FILENAME_CHARS = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # printable, no space " \\


def check_dhcp_filename(value: str) -> str:
    """A host's DHCP ``filename``: one quoted string in dhcpd.conf, a Kea reservation field."""
    if not value or len(value) > MAX_DHCP_FILENAME:
        raise ValueError(
            f"a DHCP filename must have 1 to {MAX_DHCP_FILENAME} characters (the size of "
            f"the DHCP 'file' field); {value!r} has {len(value)}"
        )
    if not _DHCP_FILENAME_CHARS.fullmatch(value):
        bad = sorted({c for c in value if not _DHCP_FILENAME_CHARS.fullmatch(c)})
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(
            f"DHCP filename {value!r} contains {shown}; it is written into dhcpd.conf between "
            "double quotes and into Kea's reservations, so use printable ASCII without "
            "spaces, double quotes or backslashes (percent-encode them in a URL)"
        )
    return value


def check_config_path(value: str) -> str:
    """A file path written into dhcpd.conf between double quotes."""
    if _PATH_BAD.search(value):
        raise ValueError(
            f"{value!r} contains a double quote, backslash or control character; "
            "it is written into dhcpd.conf in double quotes, so rename the file"
        )
    return value
