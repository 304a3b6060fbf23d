"""Cutting a group file into host entries gives what parsing the whole file gives, or nothing.

Each case is a text a user could write; the cut is either refused or, with the
entries reused and the new ones parsed alone, equal to the full parse.
"""

from __future__ import annotations

import pytest

from reconciler.inventory.host_entries import entries_align, split_hosts
from reconciler.inventory.load_cache import GroupFile, group_file_changed
from reconciler.inventory.yamlfile import YamlProblem, parse_yaml_marked
from reconciler.model.inventory import Group

HEADER = """\
# rack A
name: compute
subnet: 10.23.0.0/16
gateway: 10.23.0.1
hostname: "node%04d"
"""


def entry(index: int, *extra: str) -> str:
    lines = [f"  - index: {index}", f'    mac: "52:54:00:00:00:{index:02x}"', *extra]
    return "\n".join(lines) + "\n"


BASE = HEADER + "hosts:\n" + "".join(entry(i) for i in range(1, 6))


def full(text: str) -> GroupFile:
    data, marks = parse_yaml_marked(text, "hosts")
    return GroupFile.parsed(Group.model_validate(data), text, marks)


def test_a_plain_group_file_cuts_into_its_entries() -> None:
    entries = split_hosts(BASE)
    assert entries is not None
    assert entries.header == HEADER + "hosts:\n"
    assert entries.entries == tuple(entry(i) for i in range(1, 6))
    assert full(BASE).entries == entries  # the full parse agrees: the cut is kept


@pytest.mark.parametrize(
    "text",
    [
        BASE.replace("hosts:", "hosts: &all"),  # anchors and aliases tie entries together
        BASE + "other: *all\n",
        BASE.replace('"52:54:00:00:00:01"', '!!str "52:54:00:00:00:01"'),  # tags
        BASE.replace("    mac", "\tmac", 1),
        BASE.replace("\n", "\r\n"),
        "---\n" + BASE,
        BASE + "hosts:\n",  # twice: the full parse says so
        HEADER + "hosts: [{index: 1, mac: '52:54:00:00:00:01'}]\n",  # flow style
        HEADER + "hosts:\n",  # no entries
        BASE + "   oops: 1\n",  # an indented line after the list
        BASE.replace("hosts:\n", "hosts:\n  -\n    index: 9\n", 1),  # an entry on the next line
    ],
)
def test_texts_that_could_tie_entries_together_are_not_cut(text: str) -> None:
    """Refused by the cut, or by the full parse the cut is checked against once."""
    entries = split_hosts(text)
    try:
        marks = parse_yaml_marked(text, "hosts")[1]
    except YamlProblem:
        return  # a file the full load refuses is never the base of a shortcut
    assert entries is None or not entries_align(entries, marks)


def test_a_quoted_string_running_over_an_entry_start_is_seen_by_the_full_parse() -> None:
    text = HEADER + 'hosts:\n  - index: 1\n    mac: "52:54:00:00:00:01"\n    note: "a\n  - b"\n'
    entries = split_hosts(text)
    assert entries is not None and len(entries.entries) == 2  # the cut alone is fooled
    assert not entries_align(entries, parse_yaml_marked(text, "hosts")[1])  # the parse is not


VARIANTS = [
    BASE.replace(entry(3), ""),  # a host removed
    BASE + entry(9),  # added at the end
    BASE.replace(entry(2), entry(2) + "  # rack B starts here\n\n" + entry(7)),  # in the middle
    BASE.replace(entry(4), entry(4, "    aliases: [login, gw]")),  # changed
    BASE.replace(entry(4), entry(4, "    aliases:", "      - login", "      - gw")),
    BASE.replace(entry(5), "  - {index: 5, mac: '52:54:00:00:00:05'}\n"),  # flow entry
    BASE.replace(entry(1), entry(1, "    image: compute@1.1")),
    BASE + "rollout:\n  max_unavailable: 2\n",  # a key after the list
    BASE.replace('hostname: "node%04d"', 'hostname: "n%04d"'),  # the header changed
    BASE.replace(entry(2), entry(2, "    image: |", "      compute@1.1", "")),  # block scalar
    BASE.replace(entry(3), entry(3, '    mac: "52:54:00:00:00:33"')),  # a duplicate key
    BASE.replace(entry(3), "  - index: 3\n    mac: [\n"),  # broken YAML
    BASE.replace(entry(3), entry(3, "    colour: red")),  # an unknown key
    BASE.replace("  - index", "- index").replace("\n    ", "\n  "),  # zero-indented list
]


@pytest.mark.parametrize("text", VARIANTS)
def test_reused_entries_give_what_a_full_parse_gives(text: str) -> None:
    previous = full(BASE)
    changed = group_file_changed(previous, text.encode())
    try:
        data, _ = parse_yaml_marked(text, "hosts")
        expected: Group | None = Group.model_validate(data)
    except Exception:  # the full load refuses it: so must the shortcut
        expected = None
    if changed is None:
        return  # the shortcut declined: the full load decides
    assert expected is not None, "the shortcut accepted what a full load refuses"
    assert changed.group == expected
    assert changed.group.model_fields_set == expected.model_fields_set
    # the host of every unchanged entry is the one validated before, not parsed again
    assert previous.entries is not None and changed.entries is not None
    unchanged = set(previous.entries.entries) & set(changed.entries.entries)
    reused = {id(h) for h in changed.group.hosts} & {id(h) for h in previous.group.hosts}
    assert len(reused) == len(unchanged)


def test_a_zero_indented_list_is_cut_too() -> None:
    text = VARIANTS[-1]
    assert full(text).entries is not None
