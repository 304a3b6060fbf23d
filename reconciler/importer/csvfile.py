"""A CSV of ``name,mac,address[,group]``: what every other tool can export.

A first row of these words is a header; blank lines and ``#`` lines are
skipped; a bad row is an error naming its line.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from pathlib import Path

from reconciler.importer.records import HostRecord, ImportFailure, Sources, Where
from reconciler.model.types import normalize_mac


def read_csv(path: Path, sources: Sources) -> None:
    """``name,mac,address[,group]``; a first row of these words is a header."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ImportFailure(Where(str(path)), f"cannot read: {error.strerror}") from None
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        where = Where(str(path), number)
        if number == 1 and [c.lower() for c in cells[:3]] == ["name", "mac", "address"]:
            continue
        if len(cells) not in (3, 4):
            raise ImportFailure(
                where, f"expected name,mac,address[,group], found {len(cells)} columns"
            )
        try:
            mac = normalize_mac(cells[1])
        except ValueError as error:
            raise ImportFailure(where, f"expected a MAC address in column 2: {error}") from None
        try:
            address = ipaddress.IPv4Address(cells[2])
        except ValueError:
            raise ImportFailure(
                where, f"expected an IPv4 address in column 3, found {cells[2]!r}"
            ) from None
        group = cells[3] if len(cells) == 4 and cells[3] else None
        sources.hosts.append(
            HostRecord(mac=mac, where=where, address=address, name=cells[0], group=group)
        )
