"""YAML as the inventory reads it: YAML 1.2 scalars, duplicate keys refused, positions on demand.

PyYAML's C parser is fast enough for 50,000-host sites, but it speaks YAML 1.1,
where an unquoted ``52:54:00:12:34:14`` is a base-60 integer, ``020`` is octal
and ``no`` is false. The loader here resolves plain scalars the YAML 1.2 way
instead. Line and column are looked up only when there is a problem to report,
by composing the document again and walking the path to the offending value.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from reconciler.model.problems import PathPart


class YamlProblem(Exception):
    """The text is not YAML the inventory can use; carries a position when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _already_in(mapping: dict[Any, Any], key: Any, key_node: yaml.Node) -> bool:
    """Whether ``key`` is in ``mapping``; a YamlProblem for a key that is a list or mapping."""
    try:
        return key in mapping
    except TypeError:
        mark = key_node.start_mark
        raise YamlProblem(
            "a key must be a plain word such as 'name', not a list or mapping",
            mark.line + 1,
            mark.column + 1,
        ) from None


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_NULL = "tag:yaml.org,2002:null"


class _Loader(yaml.CSafeLoader):
    """Safe loader with YAML 1.2 core-schema scalars and duplicate-key detection."""

    yaml_implicit_resolvers = {}  # noqa: RUF012 - fresh resolvers, not the YAML 1.1 ones

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        """PyYAML's ``resolve`` with each plain scalar's answer kept: at 100,000 hosts the
        same keys come 300,000 times. A plain scalar's tag depends only on its text
        (there are no path resolvers); a quoted one is a string."""
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR
            tag = self._plain_tags.get(value)
            if tag is None:  # BaseResolver.resolve's loop (this class has no wildcard resolvers)
                tag = _STR
                for candidate, pattern in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if pattern.match(value):
                        tag = candidate
                        break
                self._plain_tags[value] = tag
            return tag
        return _MAP if kind is yaml.MappingNode else _SEQ

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build the dict in one pass; YAML merge keys (``<<``) are not supported."""
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if _already_in(mapping, key, key_node):
                first = next(k for k, _ in node.value if k.value == key_node.value)
                mark = key_node.start_mark
                raise YamlProblem(
                    f"key {key!r} appears twice in the same mapping (first on line "
                    f"{first.start_mark.line + 1}); keep one",
                    mark.line + 1,
                    mark.column + 1,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    return int(text, 16) if text.lower().startswith(("0x", "-0x", "+0x")) else int(text, 10)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Unusual(Exception):
    """A node the fast construction leaves to PyYAML (other tags, a node met twice)."""


class _Construct:
    """``construct_document`` for the tags an inventory uses, without PyYAML's per-node
    bookkeeping (a third of loading 100,000 hosts): the same values and the same
    problems. Any other tag, or an anchor's node used twice (PyYAML shares one object,
    and allows a node inside itself), raises ``_Unusual``: the document is built by
    PyYAML instead.
    """

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.seen: set[int] = set()

    def value(self, node: yaml.Node) -> Any:
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            # A scalar met twice (an alias) gives an equal immutable value: no check.
            if tag == _STR:
                return node.value
            if tag == _NULL:
                return None
            if tag == "tag:yaml.org,2002:int":  # as _construct_int, without PyYAML's calls
                text = node.value
                hexadecimal = text.lower().startswith(("0x", "-0x", "+0x"))
                return int(text, 16) if hexadecimal else int(text, 10)
            if tag == "tag:yaml.org,2002:bool":
                return self.loader.construct_yaml_bool(node)
            if tag == "tag:yaml.org,2002:float":
                return self.loader.construct_yaml_float(node)
            raise _Unusual
        if id(node) in self.seen:
            raise _Unusual
        self.seen.add(id(node))
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
            return [self.value(item) for item in node.value]
        if isinstance(node, yaml.MappingNode) and tag == _MAP:
            return self._mapping(node)
        raise _Unusual

    def _mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        """As ``_Loader.construct_mapping``, with its checks and messages."""
        mapping: dict[Any, Any] = {}
        value, scalar = self.value, yaml.ScalarNode
        for key_node, value_node in node.value:
            # Strings, most keys and values, without a call.
            key = (
                key_node.value
                if key_node.tag == _STR and type(key_node) is scalar
                else value(key_node)
            )
            if _already_in(mapping, key, key_node):
                _Loader.construct_mapping(self.loader, node)  # raises its problem
                raise _Unusual  # not reached
            mapping[key] = (
                value_node.value
                if value_node.tag == _STR and type(value_node) is scalar
                else value(value_node)
            )
        return mapping


def parse_yaml(text: str) -> Any:
    """Parse one YAML document; raise YamlProblem with line and column on failure."""
    return parse_yaml_marked(text, None)[0]


Mark = tuple[int, int]  # 0-based line and column


def parse_yaml_marked(text: str, key: str | None) -> tuple[Any, list[Mark] | None]:
    """``parse_yaml``, and where each item of the top-level list under ``key`` starts.

    The marks are None when the document has no such list. They cost nothing
    extra: the parser composes the nodes anyway before building the values.
    """
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            try:
                value = _Construct(loader).value(node)
            except _Unusual:
                value = loader.construct_document(node)
            return value, _item_marks(node, key)
        finally:
            loader.dispose()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        reason = error.problem or str(error)
        if mark is None:
            raise YamlProblem(f"not valid YAML: {reason}") from None
        raise YamlProblem(f"not valid YAML: {reason}", mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as error:
        raise YamlProblem(f"not valid YAML: {error}") from None


def _item_marks(node: yaml.Node, key: str | None) -> list[Mark] | None:
    if key is None or not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            if not isinstance(value_node, yaml.SequenceNode):
                return None
            return [(item.start_mark.line, item.start_mark.column) for item in value_node.value]
    return None


def _key_matches(key_node: yaml.Node, part: PathPart) -> bool:
    """Whether a key is ``part``, also when YAML made a number of it (``2024.10:``)."""
    if key_node.value == str(part):
        return True
    if isinstance(key_node, yaml.ScalarNode) and key_node.tag in (
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
    ):
        try:
            return str(parse_yaml(key_node.value)) == str(part)
        except YamlProblem:
            return False
    return False


def locate(text: str, path: tuple[PathPart, ...]) -> tuple[int, int]:
    """1-based line and column of the value at ``path``, or of its nearest parent."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return 1, 1
    if node is None:
        return 1, 1
    mark = node.start_mark
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if _key_matches(key_node, part):
                    child = value_node
                    break
            if child is not None and child.start_mark.line > key_node.start_mark.line:
                # a block mapping or list below its key: point at the key, not at
                # the first entry on the next line (unless the path goes deeper)
                mark = key_node.start_mark
                node = child
                continue
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        mark = node.start_mark
    return mark.line + 1, mark.column + 1
