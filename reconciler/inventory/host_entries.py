"""A group file cut into its host entries, so a one-host commit parses one entry, not 10,000.

A group file is a short header (name, subnet, image...) and a long block list
under ``hosts:``, one ``- index: ...`` entry per machine. ``split_hosts`` cuts
the text at the lines where an entry starts, without parsing YAML; the loader
(``reconciler.inventory.load_cache``) then parses only the entries whose text it
has not seen before, and reuses the validated host of every other one.

The cut is only trusted when it provably gives what parsing the whole file
gives. ``split_hosts`` refuses (returns None) any text with a construct that
could make an entry depend on its neighbours: anchors, aliases and tags (``&``,
``*``, ``!``), tabs, carriage returns, document markers and directives, a
``hosts:`` that is not one plain top-level key. What is left can still be odd,
for instance a quoted string running over several lines past an entry start;
so a file's cut is accepted the first time only when the full parse's own
entries start exactly where the cut says (``entries_align``), and a new entry is
accepted only when it parses on its own as one complete entry
(``parse_entry``). A parser that starts an entry at a ``- `` line is in plain
block context there, so an entry that parsed completely once is complete
wherever it stands. The header, with ``hosts:`` left empty, is parsed on its own
and must read ``hosts`` as empty (``header_mapping``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from reconciler.inventory.yamlfile import YamlProblem, parse_yaml

HOSTS_KEY = "hosts"
_HOSTS_LINE = re.compile(r"hosts:[ ]*(?:#.*)?\Z")
_UNSAFE = re.compile(r"[&*!\t\r]|^(?:---|\.\.\.|%)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class HostEntries:
    """A group file's text as a header and the text of each host entry, in order."""

    header: str  # the file without its entries: ``hosts:`` followed by what came after
    entries: tuple[str, ...]  # each entry from its ``- `` line up to the next entry's
    lines: tuple[int, ...]  # the 0-based line each entry starts on
    indent: int  # spaces before each entry's ``-``


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_filler(line: str) -> bool:
    """A blank or comment-only line: YAML ignores it wherever it stands."""
    stripped = line.lstrip(" ")
    return not stripped or stripped.startswith("#")


def split_hosts(text: str) -> HostEntries | None:
    """The header and host entries of a group file's text; None when a cut is not safe."""
    if _UNSAFE.search(text):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the text ended with a newline: no empty last line
    starts = [n for n, line in enumerate(lines) if line.startswith("hosts:")]
    if len(starts) != 1 or not _HOSTS_LINE.match(lines[starts[0]]):
        return None
    position = starts[0] + 1
    while position < len(lines) and _is_filler(lines[position]):
        position += 1
    if position == len(lines):
        return None  # no entries
    indent = _indent(lines[position])
    entry_start = " " * indent + "- "
    if not lines[position].startswith(entry_start):
        return None
    entries: list[str] = []
    entry_lines: list[int] = []
    end = position
    while end < len(lines):
        line = lines[end]
        if line.startswith(entry_start):
            entry_lines.append(end)
        elif not _is_filler(line) and _indent(line) <= indent:
            break  # the list ended: the next top-level key, or something odd
        end += 1
    if end < len(lines) and _indent(lines[end]) != 0:
        return None  # what follows the list must be a top-level key
    for first, after in itertools.pairwise([*entry_lines, end]):
        entries.append("\n".join(lines[first:after]) + "\n")
    header = "\n".join(lines[: starts[0] + 1] + lines[end:]) + "\n"
    return HostEntries(header, tuple(entries), tuple(entry_lines), indent)


def entries_align(entries: HostEntries, marks: list[tuple[int, int]] | None) -> bool:
    """Whether a full parse's ``hosts`` items (line, column of each) start where the cut does.

    Each item's content must begin right after its entry's ``- ``: then that dash
    was a block entry to the parser, not text inside a neighbour.
    """
    if marks is None or len(marks) != len(entries.lines):
        return False
    column = entries.indent + 2
    return all(mark == (line, column) for mark, line in zip(marks, entries.lines, strict=True))


def parse_entry(text: str) -> Any:
    """One entry's value, parsed on its own; YamlProblem unless it is exactly one entry."""
    value = parse_yaml(text)
    if not isinstance(value, list) or len(value) != 1:
        raise YamlProblem("not one host entry")
    return value[0]


def header_mapping(header: str) -> dict[str, Any]:
    """The header's keys, parsed on its own; YamlProblem unless ``hosts`` reads as empty."""
    value = parse_yaml(header)
    if not isinstance(value, dict) or HOSTS_KEY not in value or value[HOSTS_KEY] is not None:
        raise YamlProblem("the header does not parse on its own")
    return value
