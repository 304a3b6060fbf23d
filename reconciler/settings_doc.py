"""docs/settings.md, the reference of every runtime-config key, generated from the models.

The runtime config is pydantic models: ``RuntimeConfig`` and its tables
(``[source]``, ``[boot]``, ``[serve]``, ``[watch]``, ...) and one settings model
per target type. This module walks them and writes one Markdown page: for each
table its keys with type, default and description, and an example. A key
without a description is an error that names the file and the field, so a new
setting cannot ship undocumented; ``reconciler schema --check`` (and a unit
test) fails when the committed page is stale.
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from reconciler.config import RuntimeConfig, TargetConfig

HEADER = """\
# Runtime config reference

<!-- Generated from the pydantic models by `reconciler schema`; do not edit.
     A test fails when this page is stale: run `reconciler schema` and commit. -->

Every key of the runtime config (`reconciler.toml`, see `deploy/reconciler.toml`
for a whole live site with comments). Relative paths are relative to the
config file's folder unless a key says otherwise. Unknown keys are refused, with
the list of valid ones. Secrets are never in this file: keys ending in `_file`
name the files that hold them (readable by the reconciler only, mode 0600).
"""


HTML_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # would be read as raw HTML


class SettingsDocError(Exception):
    """A settings model cannot be documented (a field lacks a description or an example)."""


def target_settings_models() -> dict[str, type[BaseModel]]:
    """Target type -> the pydantic model of its settings."""
    from reconciler.targets import TARGET_TYPES, settings_model

    return {type_name: settings_model(type_name) for type_name in sorted(TARGET_TYPES)}


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def type_name(annotation: Any) -> str:
    """A TOML-minded name for a Python annotation: "integer", "list of string", ..."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin is list or origin is tuple:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {type_name(args[1])}" if len(args) == 2 else "table"
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    if annotation in simple:
        return simple[annotation]
    if _is_model(annotation):
        return "table"
    return str(getattr(annotation, "__name__", annotation))


def _constraints(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                words.append(f"{symbol} {getattr(item, attr)}")
        if getattr(item, "min_length", None):
            words.append(f"at least {item.min_length} long")
        if getattr(item, "pattern", None):
            words.append(f"matches `{item.pattern}`")
    return ", ".join(words)


def toml_value(value: Any) -> str:
    """``value`` as TOML would spell it (inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, BaseModel):
        return "(table)"
    return json.dumps(str(value))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, dict) and not value:
        return "empty"
    return f"`{toml_value(value)}`"


def _example(field: FieldInfo) -> Any:
    if field.examples:
        return field.examples[0]
    if field.is_required():
        return PydanticUndefined
    return field.get_default(call_default_factory=True)


def _fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
    for name, field in model.model_fields.items():
        if not field.exclude:
            yield name, field


def missing_docs(models: dict[str, type[BaseModel]]) -> list[str]:
    """Every field without a description (or, if required, without an example)."""
    problems = []
    root = Path(__file__).resolve().parent.parent
    for model in models.values():
        source = Path(inspect.getsourcefile(model) or "?").resolve()
        shown = source.relative_to(root) if source.is_relative_to(root) else source
        where = f"{shown}: {model.__name__}"
        for name, field in _fields(model):
            if _is_model(field.annotation):
                continue  # a table: its own model's docstring and fields document it
            if not (field.description or "").strip():
                problems.append(f"{where}.{name} has no description: add Field(description=...)")
            if field.is_required() and not field.examples:
                problems.append(f"{where}.{name} is required: add Field(examples=[...])")
    return problems


def _prose(text: str) -> str:
    """Docstring or description text as Markdown: ``code`` spans, no raw HTML."""
    return " ".join(HTML_TAG_START.sub("&lt;", text.replace("``", "`")).split())


def _cell(text: str) -> str:
    return _prose(text).replace("|", "\\|")


def _table(model: type[BaseModel], *, skip: frozenset[str] = frozenset()) -> list[str]:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in _fields(model):
        if name in skip:
            continue
        kind = type_name(field.annotation)
        limits = _constraints(field)
        kind = f"{kind} ({limits})" if limits else kind
        lines.append(
            f"| `{name}` | {_cell(kind)} | {_cell(_default(field))} "
            f"| {_cell(field.description or '')} |"
        )
    return lines


def _example_block(
    header: str | None, model: type[BaseModel], *, first: dict[str, Any] | None = None
) -> list[str]:
    lines = ["```toml"] + ([header] if header else [])
    lines += [f"{key} = {toml_value(value)}" for key, value in (first or {}).items()]
    for name, field in _fields(model):
        value = _example(field)
        if _is_model(field.annotation) or name in (first or {}):
            continue
        if value is None or value is PydanticUndefined or value == {}:
            continue
        lines.append(f"{name} = {toml_value(value)}")
    return [*lines, "```"]


def _sections() -> dict[str, type[BaseModel]]:
    """The tables of RuntimeConfig that are models of their own, by TOML name."""
    return {
        name: field.annotation
        for name, field in _fields(RuntimeConfig)
        if field.annotation is not None and _is_model(field.annotation)
    }


def all_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {"(top level)": RuntimeConfig, "targets": TargetConfig}
    models.update({f"[{name}]": model for name, model in _sections().items()})
    models.update({f"type {t}": m for t, m in target_settings_models().items()})
    return models


def render_settings_doc() -> str:
    """The whole page; raises SettingsDocError naming every undocumented field."""
    models = all_models()
    problems = missing_docs(models)
    if problems:
        raise SettingsDocError("undocumented settings:\n  " + "\n  ".join(problems))
    sections = _sections()
    lines = [HEADER, "## Top level", ""]
    lines += _table(RuntimeConfig, skip=frozenset(sections) | {"targets"})
    lines += ["", *_example_block(None, RuntimeConfig), ""]
    for name, model in sections.items():
        lines += [f"## [{name}]", "", _prose(model.__doc__ or ""), ""]
        lines += [*_table(model), "", *_example_block(f"[{name}]", model), ""]
    lines += [
        "## [targets.NAME]",
        "",
        "Each target is a table under `targets`, named as you like; targets run in the order "
        "they appear. `type` picks the backend; the other keys are that backend's settings "
        "(below). Keys every target has:",
        "",
        *_table(TargetConfig),
        "",
    ]
    for type_name_, model in target_settings_models().items():
        lines += [f'### type = "{type_name_}"', ""]
        doc = _prose(model.__doc__ or "")
        lines += [doc, ""] if doc else []
        lines += [*_table(model), ""]
        header = f"[targets.{type_name_}]"
        lines += [*_example_block(header, model, first={"type": type_name_}), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def settings_doc_is_stale(path: Path) -> bool:
    return not path.is_file() or path.read_text() != render_settings_doc()


def write_settings_doc(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_settings_doc())
    return path
