"""JSON Schemas for the inventory files, generated from the pydantic models.

``schemas/`` in the repository holds their output; editors use it (the example
files point at it with ``# yaml-language-server: $schema=...``) and a test fails
when it is stale, so the schema never drifts from what the loader accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from reconciler.model.inventory import Group, Image, Site

SCHEMAS: dict[str, type[BaseModel]] = {
    "site.schema.json": Site,
    "group.schema.json": Group,
    "image.schema.json": Image,
}


def render_schema(model: type[BaseModel], filename: str) -> str:
    schema = model.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": filename,
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def stale_schemas(folder: Path) -> list[str]:
    """Names of the schema files in ``folder`` that differ from the models."""
    stale = []
    for filename, model in SCHEMAS.items():
        path = folder / filename
        if not path.is_file() or path.read_text() != render_schema(model, filename):
            stale.append(filename)
    return stale


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, model in SCHEMAS.items():
        path = folder / filename
        path.write_text(render_schema(model, filename))
        written.append(path)
    return written


def schema_command(
    out: Annotated[Path, typer.Option(help="folder for the schema files")] = Path("schemas"),
    docs: Annotated[
        Path, typer.Option(help="the runtime-config reference to write (Markdown)")
    ] = Path("docs/settings.md"),
    check: Annotated[bool, typer.Option(help="exit 1 if the files are stale")] = False,
) -> None:
    """Write the JSON Schemas of the inventory files and the runtime-config reference
    (or check they are current)."""
    from reconciler.cli_errors import EXIT_CHANGES, stderr_console, user_errors
    from reconciler.settings_doc import settings_doc_is_stale, write_settings_doc

    with user_errors():
        if check:
            stale = stale_schemas(out) + ([str(docs)] if settings_doc_is_stale(docs) else [])
            if stale:
                stderr_console().print(
                    f"stale: {', '.join(stale)}; run `reconciler schema --out {out} --docs {docs}`"
                )
                raise typer.Exit(EXIT_CHANGES)
            typer.echo("schemas and settings reference are current")
            return
        for path in [*write_schemas(out), write_settings_doc(docs)]:
            typer.echo(f"wrote {path}")
