"""Edit a group file the way a person would: append one host, keep everything else as written.

Registration commits change files people wrote and review. ruamel.yaml's
round-trip mode keeps comments, key order and quoting; the indentation of the
file is found by trying the usual styles until one reproduces the file
exactly, so the only lines that change are the ones added.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

# (mapping, sequence, offset): "hosts:\n  - index: 1" is (2, 4, 2), "hosts:\n- index: 1" (2, 2, 0).
_STYLES: tuple[tuple[int, int, int], ...] = ((2, 4, 2), (2, 2, 0), (4, 6, 4), (4, 4, 0), (4, 4, 2))


class EditError(Exception):
    """The file cannot be edited safely (not a mapping, ``hosts`` not a list)."""


def _yaml(style: tuple[int, int, int]) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = style
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(yaml: YAML, data: Any) -> str:
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _style_of(text: str) -> tuple[int, int, int]:
    for style in _STYLES:
        yaml = _yaml(style)
        if _dump(yaml, yaml.load(text)) == text:
            return style
    return _STYLES[0]


def append_host(text: str, *, index: int, mac: str) -> str:
    """The group file ``text`` with ``- index: N\n  mac: "..."`` appended to ``hosts``."""
    return append_hosts(text, [(index, mac)])


def append_hosts(text: str, hosts: list[tuple[int, str]]) -> str:
    """The group file ``text`` with one ``- index/mac`` entry per ``(index, mac)`` appended."""
    yaml = _yaml(_style_of(text))
    data = yaml.load(text)
    if not isinstance(data, CommentedMap):
        raise EditError("the group file is not a mapping of 'key: value' lines")
    existing = data.get("hosts")
    if existing is None:
        existing = CommentedSeq()
        data["hosts"] = existing
    if not isinstance(existing, CommentedSeq):
        raise EditError("'hosts' in the group file is not a list")
    if existing.fa.flow_style():
        existing.fa.set_block_style()
    for index, mac in hosts:
        entry = CommentedMap()
        entry["index"] = index
        entry["mac"] = DoubleQuotedScalarString(mac)
        existing.append(entry)
    edited = _dump(yaml, data)
    if text.endswith("\n") and not text.endswith("\n\n"):
        edited = edited.rstrip("\n") + "\n"
    return edited


def yaml_like(text: str) -> YAML:
    """A round-trip YAML that writes ``text`` back in its own indentation style."""
    return _yaml(_style_of(text))
