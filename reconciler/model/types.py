"""Value types of the inventory: MAC addresses, hostname formats, address ranges.

They normalise what users write (``52-54-00-AB-CD-EF`` and ``5254.00ab.cdef`` are
one MAC) and refuse what could never work, with messages that say how to fix it.
A hostname format is checked strictly because its output ends up verbatim in
dhcpd.conf and zone files: only DNS label characters and one integer
conversion are allowed, so nothing can be injected there.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_HEX = re.compile(r"[0-9a-f]{12}")
_MAC_OCTETS = re.compile(r"[0-9a-f]{1,2}([:.-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){4}")
_MAC_QUADS = re.compile(r"[0-9a-f]{4}([:.-])[0-9a-f]{4}\1[0-9a-f]{4}")
_SEPARATORS = str.maketrans("", "", ":-.")

# Patterns end in \Z, not $: "$" also matches before a trailing newline, which
# would let "node%d\n" or "login\n" through into dhcpd.conf and zone files.
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
# Width only with zero padding: "%3d" would pad with spaces.
_FORMAT = re.compile(r"^([a-z0-9-]*)%(?:0[1-9][0-9]?)?d([a-z0-9-]*)\Z")
IMAGE_REF = re.compile(r"^([a-z0-9][a-z0-9._-]*)@([A-Za-z0-9][A-Za-z0-9._-]*)\Z")
SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
MAX_FQDN = 253
_MAC_CANONICAL = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def normalize_mac(value: object) -> str:
    """``52-54-00-AB-CD-EF`` -> ``52:54:00:ab:cd:ef``; raise ValueError if not 6 octets.

    Accepted spellings: six octets joined by one separator (``:``, ``-`` or ``.``),
    three groups of four hex digits (``5254.00ab.cdef``), or twelve hex digits.
    """
    if not isinstance(value, str):
        raise ValueError('a MAC address must be a quoted string such as "52:54:00:12:34:56"')
    text = value.strip().lower()
    if _MAC_CANONICAL.fullmatch(text):
        return text
    if _MAC_OCTETS.fullmatch(text):
        digits = "".join(octet.zfill(2) for octet in re.split(r"[:\-.]", text))
    elif _MAC_QUADS.fullmatch(text) or _HEX.fullmatch(text):
        digits = text.translate(_SEPARATORS)
    else:
        raise ValueError(
            f'{value!r} is not a MAC address of 6 octets; write it like "52:54:00:12:34:56"'
        )
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_station_mac(mac: str) -> str:
    """Refuse a normalised MAC that no network card sends from: broadcast, multicast, zero.

    The group bit (lowest bit of the first octet) marks multicast, and
    ``ff:ff:ff:ff:ff:ff`` is its broadcast case. Locally administered MACs (the
    second-lowest bit) stay valid: virtual machines use them.
    """
    if mac == "00:00:00:00:00:00":
        raise ValueError(
            f"{mac} is the all-zero MAC, which no network card has; use the card's MAC"
        )
    if int(mac[:2], 16) & 1:
        kind = "the broadcast" if mac == "ff:ff:ff:ff:ff:ff" else "a multicast (group bit set)"
        raise ValueError(
            f"{mac} is {kind} MAC address, which no single machine has; "
            "use the MAC printed on the network card"
        )
    return mac


def check_hostname_format(value: str) -> str:
    """A printf format with exactly one integer conversion and DNS label characters only."""
    if not _FORMAT.match(value):
        raise ValueError(
            f"hostname format {value!r} must be lower-case letters, digits and '-' around "
            'exactly one integer conversion such as %d or %03d (for example "node%03d")'
        )
    return value


def check_label(value: str) -> str:
    if not LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid DNS label: use 1-63 lower-case letters, digits and '-', "
            "not starting or ending with '-'"
        )
    return value


def check_domain(value: str) -> str:
    name = value.rstrip(".")
    if not name or len(name) > MAX_FQDN or not all(LABEL.match(p) for p in name.split(".")):
        raise ValueError(
            f"{value!r} is not a valid domain: dot-separated DNS labels of lower-case letters, "
            "digits and '-', at most 253 characters"
        )
    return name


def check_image_ref(value: str) -> str:
    if not IMAGE_REF.match(value):
        raise ValueError(
            f"{value!r} is not an image reference; write <image name>@<version>, "
            'for example "compute@2024.10"'
        )
    return value


def check_sha256(value: str) -> str:
    if not SHA256.match(value):
        raise ValueError(
            f"sha256 {value!r} must be 64 lower-case hex digits (the output of sha256sum)"
        )
    return value


def parse_address_range(value: object) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """``10.0.0.200-10.0.0.250`` -> (first, last), first <= last."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        first_text, last_text = str(value[0]), str(value[1])
    elif isinstance(value, str) and value.count("-") == 1:
        first_text, last_text = (part.strip() for part in value.split("-"))
    else:
        raise ValueError(
            f'{value!r} is not an address range; write it as "10.23.45.200-10.23.45.250"'
        )
    try:
        first, last = ipaddress.IPv4Address(first_text), ipaddress.IPv4Address(last_text)
    except ValueError as error:
        raise ValueError(f"{value!r}: {error}") from None
    if first > last:
        raise ValueError(f"range {value!r} ends before it starts; put the lower address first")
    return first, last


def parse_index_range(value: object) -> tuple[int, int]:
    """``21-40`` -> (21, 40)."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text) or re.fullmatch(r"(\d+)", text)
    if match is None:
        raise ValueError(f'{value!r} is not an index range; write it as "21-40"')
    first = int(match.group(1))
    last = int(match.group(match.lastindex or 1))
    if first > last:
        raise ValueError(f'index range {value!r} ends before it starts; write "{last}-{first}"')
    return first, last


def _format_range(value: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]) -> str:
    return f"{value[0]}-{value[1]}"


MacAddress = Annotated[
    str,
    BeforeValidator(normalize_mac),
    AfterValidator(check_station_mac),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": (
                "^([0-9A-Fa-f]{1,2}[:.-]?){5}[0-9A-Fa-f]{1,2}$"
                "|^([0-9A-Fa-f]{4}\\.){2}[0-9A-Fa-f]{4}$"
            ),
            "description": "MAC address, 6 octets; case and ':', '-', '.' separators do not matter",
        }
    ),
]
HostnameFormat = Annotated[str, AfterValidator(check_hostname_format)]
Label = Annotated[str, AfterValidator(check_label)]
Domain = Annotated[str, AfterValidator(check_domain)]
ImageRef = Annotated[str, AfterValidator(check_image_ref)]
Sha256 = Annotated[str, AfterValidator(check_sha256)]
AddressRange = Annotated[
    tuple[ipaddress.IPv4Address, ipaddress.IPv4Address],
    BeforeValidator(parse_address_range),
    PlainSerializer(_format_range, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^\\d+\\.\\d+\\.\\d+\\.\\d+-\\d+\\.\\d+\\.\\d+\\.\\d+$",
            "description": "first-last IPv4 address, inclusive",
        }
    ),
]
IndexRange = Annotated[
    tuple[int, int],
    BeforeValidator(parse_index_range),
    PlainSerializer(lambda v: f"{v[0]}-{v[1]}", return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^\\d+(-\\d+)?$",
            "description": "first-last index, inclusive",
        }
    ),
]
