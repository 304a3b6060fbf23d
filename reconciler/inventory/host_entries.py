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

import functools
import itertools
import re
from dataclasses import dataclass
from typing import Any

from reconciler.inventory.yamlfile import YamlProblem, parse_yaml

HOSTS_KEY = "hosts"
_HOSTS_KEY = re.compile(r"\nhosts:")  # after a newline: the text is given one in front
_HOSTS_LINE = re.compile(r"hosts:[ ]*(?:#.*)?\Z")
_UNSAFE_CHARACTERS = "&*!\t\r"  # anchors, aliases, tags; tabs; carriage returns
_MARKERS = re.compile(r"\n(?:---|\.\.\.|%)")  # document markers and directives
_CONTENT = re.compile(r"^ *[^ #\n]", re.MULTILINE)  # a line that is not blank or a comment


@dataclass(frozen=True, slots=True)
class HostEntries:
    """A group file's text as a header and the text of each host entry, in order."""

    header: str  # the file without its entries: ``hosts:`` followed by what came after
    entries: tuple[str, ...]  # each entry from its ``- `` line up to the next entry's
    lines: tuple[int, ...]  # the 0-based line each entry starts on
    indent: int  # spaces before each entry's ``-``


@functools.cache
def _entry_start(indent: int) -> re.Pattern[str]:
    """A line that starts an entry: exactly ``indent`` spaces, then ``- ``."""
    return re.compile(rf"\n {{{indent}}}- ")  # "\n" first: scanned far faster than "^"


@functools.cache
def _list_end(indent: int) -> re.Pattern[str]:
    """A line that ends the list: content no deeper than the entries, not an entry."""
    return re.compile(rf"\n(?! {{{indent}}}- ) {{0,{indent}}}[^ #\n]")


def split_hosts(text: str) -> HostEntries | None:
    """The header and host entries of a group file's text; None when a cut is not safe.

    Works on offsets in the text with a few regular expressions: a 10,000-host
    file is cut in a few milliseconds.
    """
    if any(character in text for character in _UNSAFE_CHARACTERS):
        return None
    if not text.endswith("\n"):
        text += "\n"
    if text.startswith(("---", "...", "%")) or _MARKERS.search(text):
        return None
    keys = [match.start() for match in _HOSTS_KEY.finditer("\n" + text)]  # offsets in text
    if len(keys) != 1:
        return None
    key_end = text.index("\n", keys[0])
    if not _HOSTS_LINE.match(text, keys[0], key_end):
        return None
    first = _CONTENT.search(text, key_end + 1)
    if first is None:
        return None  # no entries
    indent = first.end() - 1 - first.start()
    if not text.startswith(" " * indent + "- ", first.start()):
        return None
    # Both patterns match the newline before the line: the line starts one further.
    end_match = _list_end(indent).search(text, first.start())
    end = end_match.start() + 1 if end_match is not None else len(text)
    if text.startswith(" ", end):
        return None  # what follows the list must be a top-level key
    entry_starts = _entry_start(indent).finditer(text, first.start(), end)
    starts = [first.start()] + [match.start() + 1 for match in entry_starts]
    entries = tuple(text[start:after] for start, after in itertools.pairwise([*starts, end]))
    lines = [text.count("\n", 0, starts[0])]
    for previous, start in itertools.pairwise(starts):
        lines.append(lines[-1] + text.count("\n", previous, start))
    header = text[: key_end + 1] + text[end:]
    return HostEntries(header, entries, tuple(lines), indent)


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
