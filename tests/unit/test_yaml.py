"""YAML as the inventory reads it: 1.2 scalars, duplicate keys, positions of values."""

from __future__ import annotations

import random

import pytest
import yaml

from reconciler.inventory import yamlfile
from reconciler.inventory.yamlfile import YamlProblem, locate, parse_yaml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mac: 52:54:00:12:34:14", "52:54:00:12:34:14"),  # YAML 1.1: base-60 integer
        ("mac: 00:11:22:33:44:55", "00:11:22:33:44:55"),
        ("index: 020", 20),  # YAML 1.1: octal 16
        ("index: 0x14", 20),
        ("index: -3", -3),
        ("open: yes", "yes"),  # YAML 1.1: true
        ("open: no", "no"),
        ("open: on", "on"),
        ("open: true", True),
        ("open: False", False),
        ("value: 1_000", "1_000"),  # YAML 1.1: 1000
        ("value: 2024.10", 2024.1),
        ("value: 1e3", 1000.0),
        ("value: ~", None),
        ("value:", None),
        ("value: null", None),
        ("first_address: 10.23.45.150", "10.23.45.150"),
        ("subnet: 10.23.45.0/24", "10.23.45.0/24"),
    ],
)
def test_plain_scalars_resolve_the_yaml_1_2_way(text: str, expected: object) -> None:
    value = parse_yaml(text)
    key = text.split(":", 1)[0]
    assert value[key] == expected
    assert type(value[key]) is type(expected)


def test_quoted_scalars_stay_strings() -> None:
    assert parse_yaml("a: \"020\"\nb: 'true'") == {"a": "020", "b": "true"}


def test_duplicate_key_is_refused_with_both_lines() -> None:
    text = "name: compute\nsubnet: 10.0.0.0/24\nname: gpu\n"
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert (caught.value.line, caught.value.column) == (3, 1)
    assert "'name' appears twice" in caught.value.message
    assert "first on line 1" in caught.value.message


def test_duplicate_key_in_nested_mapping() -> None:
    text = "hosts:\n  - index: 1\n    mac: a\n    index: 2\n"
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert (caught.value.line, caught.value.column) == (4, 5)


def test_same_key_in_sibling_mappings_is_fine() -> None:
    assert parse_yaml("a: {x: 1}\nb: {x: 2}") == {"a": {"x": 1}, "b": {"x": 2}}


def test_unhashable_key_is_a_yaml_problem_not_a_crash() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("? [a, b]\n: 1\n")
    assert caught.value.line == 1


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("name: compute\nhosts: [1, 2\n", 3, 1),  # unclosed flow sequence
        ("name: compute\n  subnet: x\n", 2, 9),  # bad indentation
        ("a: 'unterminated\n", 2, 1),
        ("a: 1\n---\nb: 2\n", 2, 1),  # two documents
        ("\tname: x\n", 1, 1),  # tab indentation
    ],
)
def test_syntax_errors_carry_a_position(text: str, line: int, column: int) -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert caught.value.message.startswith("not valid YAML: ")
    assert (caught.value.line, caught.value.column) == (line, column)


def test_empty_document_is_none() -> None:
    assert parse_yaml("# only a comment\n") is None


TEXT = """\
# a comment
name: compute
hosts:
  - index: 10
    mac: "52:54:00:00:00:0a"
  - index: 11
    mac:   "52:54:00:00:00:0b"
    aliases: [login, www]
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), (2, 1)),
        (("name",), (2, 7)),
        (("hosts",), (3, 1)),  # a block list: its key
        (("hosts", 1), (6, 5)),
        (("hosts", 1, "mac"), (7, 12)),
        (("hosts", 1, "aliases", 1), (8, 22)),
        (("hosts", 7, "mac"), (3, 1)),  # no such item: nearest parent
        (("nothing",), (2, 1)),
    ],
)
def test_locate_finds_the_value(path: tuple[str | int, ...], expected: tuple[int, int]) -> None:
    assert locate(TEXT, path) == expected


def test_locate_in_unparsable_text_is_the_start() -> None:
    assert locate("a: [", ("a",)) == (1, 1)


def test_locate_block_mapping_value_points_at_its_key() -> None:
    text = "name: compute\nregistraton:\n  open: false\n"
    assert locate(text, ("registraton",)) == (2, 1)
    assert locate(text, ("registraton", "open")) == (3, 9)


def _pyyaml_way(text: str) -> object:
    """What PyYAML's own construction makes of the document (the fast path's reference)."""
    loader = yamlfile._Loader(text)
    try:
        return loader.construct_document(loader.get_single_node())
    finally:
        loader.dispose()


@pytest.mark.parametrize(
    "text",
    [
        "hosts:\n  - index: 1\n    mac: '52:54:00:00:00:01'\n    aliases: [a, b]\n"
        "  - {index: 0x2}\n",
        "a: &shared [1, 2]\nb: *shared\n",  # one node used twice: PyYAML builds it
        "a: &loop\n  b: *loop\n",  # a node inside itself
        "bytes: !!binary aGVsbG8=\nset: !!set {x, y}\nwhen: !!timestamp 2001-12-14\n",
        "flag: !!bool yes\nnumber: !!int '7'\ntext: !!str 12\nnothing: !!null ''\n",
        "inf: .inf\nnan_free: -.5\nnested: {k: [1, {v: null}]}\n",
    ],
)
def test_values_are_the_ones_pyyaml_builds(text: str) -> None:
    fast = parse_yaml(text)
    assert repr(fast) == repr(_pyyaml_way(text))


class _ReferenceLoader(yamlfile._Loader):
    """The loader with PyYAML's own ``resolve`` (no answers kept) and construction."""

    resolve = yaml.resolver.Resolver.resolve


def _reference(text: str) -> object:
    loader = _ReferenceLoader(text)
    try:
        return loader.construct_document(loader.get_single_node())
    finally:
        loader.dispose()


_SCALARS = [
    "5", "-3", "+4", "020", "0x1F", "1.5", "-.5", "1e3", ".inf", ".NaN", "true", "True",
    "FALSE", "yes", "no", "null", "~", "Null", "52:54:00:00:00:01", "a b", "x", "1_000",
    "2024.10", '"5"', "'true'", '"null"', "!!str 5", "!!int '7'", "!!float 3", "!!bool true",
    "!!null ''", "", "[a, 5, true]", "{k: 1, 5: v}",
]  # fmt: skip


def _document(rng: random.Random) -> str:
    """A random mapping of the scalars above, nested, with the same texts at many places
    (a kept answer must be the one for that text) and anchors and aliases now and then."""
    lines, anchors = [], 0
    for number in range(rng.randint(1, 12)):
        key = rng.choice(["index", "mac", "5", "true", "null", "0x1F", f"key{number}", "1.5"])
        key = f"{key}{number}" if rng.random() < 0.5 else key  # no duplicate keys
        lines.append(f"{key}_{number}: {rng.choice(_SCALARS)}")
        if rng.random() < 0.3:
            lines.append(f"list{number}:")
            lines += [f"  - {rng.choice(_SCALARS)}" for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.2:
            anchors += 1
            lines.append(f"anchored{number}: &a{anchors} {rng.choice(_SCALARS[:20])}")
            lines.append(f"alias{number}: *a{anchors}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(5))
def test_random_documents_read_as_pyyaml_reads_them(seed: int) -> None:
    """The kept scalar answers and the call-free strings of the fast construction give
    PyYAML's values, also for quoted, tagged and aliased scalars."""
    assert None not in yamlfile._Loader.yaml_implicit_resolvers  # resolve's loop skips those
    rng = random.Random(seed)
    for _ in range(200):
        text = _document(rng)
        assert repr(parse_yaml(text)) == repr(_reference(text)), text
