"""docs/settings.md: generated from the models, current, complete, with examples that load."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from reconciler import settings_doc
from reconciler.cli import app
from reconciler.config import RuntimeConfig
from reconciler.settings_doc import (
    SettingsDocError,
    render_settings_doc,
    settings_doc_is_stale,
    target_settings_models,
)
from reconciler.targets import TARGET_TYPES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/settings.md"
runner = CliRunner()


def test_the_committed_reference_is_current() -> None:
    assert not settings_doc_is_stale(DOC), "run `reconciler schema` and commit docs/settings.md"
    result = runner.invoke(
        app, ["schema", "--check", "--out", str(ROOT / "schemas"), "--docs", str(DOC)]
    )
    assert result.exit_code == 0, result.stderr


def test_schema_check_exits_1_when_a_schema_or_the_reference_is_stale(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copy(DOC, tmp_path / "settings.md")
    args = ["schema", "--check", "--out", str(tmp_path / "schemas")]
    args += ["--docs", str(tmp_path / "settings.md")]
    assert runner.invoke(app, args).exit_code == 0
    doc = tmp_path / "settings.md"
    doc.write_text(doc.read_text().replace("| `state_dir` |", "| `state_directory` |"))
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "stale:" in result.stderr and "settings.md" in result.stderr
    shutil.copy(DOC, doc)
    (tmp_path / "schemas/group.schema.json").write_text("{}\n")
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "group.schema.json" in result.stderr
    # Without --check the same command brings both back.
    assert runner.invoke(app, args[:1] + args[2:]).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0


def test_every_target_type_and_table_is_documented() -> None:
    text = DOC.read_text()
    for type_name in TARGET_TYPES:
        assert f'### type = "{type_name}"' in text
    for table in ("source", "boot", "serve", "watch"):
        assert f"## [{table}]" in text
    for type_name, model in target_settings_models().items():
        for key in model.model_fields:
            assert f"| `{key}` |" in text, f"{type_name}.{key}"


def test_an_undocumented_field_fails_the_generator_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class ShinySettings(BaseModel):
        directory: Path = Field(description="where", examples=["/srv"])
        colour: str = "red"
        size: int

    real = target_settings_models()
    monkeypatch.setattr(
        settings_doc, "target_settings_models", lambda: {**real, "shiny": ShinySettings}
    )
    with pytest.raises(SettingsDocError) as caught:
        render_settings_doc()
    message = str(caught.value)
    assert "tests/unit/test_settings_doc.py: ShinySettings.colour has no description" in message
    assert "ShinySettings.size is required: add Field(examples=[...])" in message
    assert "ShinySettings.directory" not in message
    result = runner.invoke(app, ["schema", "--check"])
    assert result.exit_code == 2 and "add Field(description=...)" in result.stderr


def examples(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, flags=re.S)


def test_every_example_is_valid_toml_that_the_models_accept(tmp_path: Path) -> None:
    blocks = examples(DOC.read_text())
    assert len(blocks) >= 5 + len(TARGET_TYPES)
    tables: dict[str, object] = {}
    models = target_settings_models()
    for block in blocks:
        data = tomllib.loads(block)
        if "targets" in data:
            ((_, settings),) = data["targets"].items()
            kind = settings.pop("type")
            models[kind].model_validate(settings)
        else:
            tables.update(data)
    RuntimeConfig.model_validate(tables)
