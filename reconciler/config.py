"""The runtime config: *where and how* to reconcile, kept apart from the inventory.

The inventory says what the site is; this TOML file says where the inventory
lives (a folder, or a git repository, revision and subfolder), where state is
kept, and which targets run with which endpoints and key files. Secrets are
never in it: it names the files that hold them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from reconciler.media.settings import MediaSettings
from reconciler.model.embedded import check_base_url, check_server_address
from reconciler.server.settings import ServeSettings
from reconciler.watch.settings import WatchSettings

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class ConfigError(Exception):
    """The runtime config is missing or wrong; the message says where and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the inventory is: a folder, or a git repository at a revision."""

    path: Path | None = Field(
        default=None, description="inventory folder (a working tree)", examples=["/srv/inventory"]
    )
    repo: Path | None = Field(default=None, description="git repository (may be bare)")
    rev: str = Field(default="HEAD", description="branch, tag or commit in repo")
    subdir: str = Field(default="", description="folder of the inventory inside repo")

    @model_validator(mode="after")
    def _one_source(self) -> SourceConfig:
        if (self.path is None) == (self.repo is None):
            raise ValueError("give exactly one of 'path' (a folder) or 'repo' (a git repository)")
        return self


class BootConfig(_Strict):
    """How machines reach their boot files."""

    http_url: Annotated[str, AfterValidator(check_base_url)] = Field(
        default="http://127.0.0.1:8080",
        description="base URL of `reconciler serve` (http or https, no query, no user name); "
        "written into iPXE scripts and dhcpd.conf, so quotes, spaces and '${' are refused",
    )
    tftp_server: Annotated[str, AfterValidator(check_server_address)] = Field(
        default="127.0.0.1",
        description="next-server for PXE clients: an IPv4 address or a host name",
    )
    templates: Path | None = Field(
        default=None, description="folder of boot profile templates overriding the built-in ones"
    )


class TargetConfig(BaseModel):
    """One target: ``type`` picks the backend; the other keys are that backend's settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(
        description="the backend: one of the types below",
        examples=["bootfiles"],
    )
    adopt: bool | None = Field(
        default=None,
        description="take over objects someone else made under a key the inventory wants "
        "(default: the target's own default, off for all but dhcp-conf)",
    )

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RuntimeConfig(_Strict):
    source: SourceConfig
    state_dir: Path = Field(
        default=Path("/var/lib/reconciler"),
        description="ownership ledgers, status, the accepted revision, the audit log",
    )
    boot: BootConfig = Field(default_factory=BootConfig)
    targets: dict[str, TargetConfig] = Field(
        default_factory=dict, description="the targets, by name, run in this order"
    )
    serve: ServeSettings = Field(default_factory=ServeSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    max_change_fraction: float = Field(
        default=0.3, gt=0, le=1, description="safety: share of owned objects one plan may change"
    )
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _target_names_are_file_names(self) -> RuntimeConfig:
        # A target's name names its ledger and manifest files in state_dir.
        for name in self.targets:
            if not _TARGET_NAME.match(name):
                raise ValueError(
                    f"targets.{name}: a target name is letters, digits, '-', '_' and '.', "
                    "starting with a letter or digit (it names files in state_dir)"
                )
        return self

    @model_validator(mode="after")
    def _drift_targets_exist(self) -> RuntimeConfig:
        for name in self.watch.drift:
            if name not in self.targets:
                known = ", ".join(sorted(self.targets)) or "(none configured)"
                raise ValueError(f"watch.drift.{name}: no such target; use one of {known}")
        return self

    def resolve(self, path: Path) -> Path:
        """Relative paths in the config are relative to the config file's folder."""
        return path if path.is_absolute() else self.base_dir / path


def load_config(path: Path) -> RuntimeConfig:
    """Read and check a runtime config file; raise ConfigError with a fix on any problem."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: runtime config not found; copy deploy/reconciler.toml and edit it"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    raw["base_dir"] = path.resolve().parent
    from reconciler.targets import target_problems  # the targets import this module

    problems = []
    config = None
    try:
        config = RuntimeConfig.model_validate(raw)
    except ValidationError as error:
        problems += error_messages(error, model=RuntimeConfig)
    targets = raw.get("targets", {})
    problems += target_problems(targets) if isinstance(targets, dict) else []
    if problems or config is None:
        if len(problems) == 1:
            raise ConfigError(f"{path}: {problems[0]}")
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"{path}: {len(problems)} problems:\n{listed}")
    return config


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds the key at ``loc`` (tables and tables of tables)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    if get_origin(current) is dict:  # a table of tables: its keys are names
        return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def describe_errors(
    error: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """pydantic's errors as ``key.path: message; ...``, for config error messages."""
    return "; ".join(error_messages(error, prefix=prefix, model=model))


def error_messages(
    error: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None
) -> list[str]:
    """pydantic's errors as ``key.path: message`` each. With the ``model`` that was
    validated, an unknown key's message lists the valid keys."""
    messages = []
    for e in error.errors():
        where = f"{prefix}{'.'.join(str(p) for p in e['loc']) or '(top level)'}"
        message = e["msg"]
        holder = (
            _model_at(model, e["loc"][:-1]) if model and e["type"] == "extra_forbidden" else None
        )
        if holder is not None:
            valid = ", ".join(k for k, f in holder.model_fields.items() if not f.exclude)
            message = f"unknown key; valid keys: {valid}"
        messages.append(f"{where}: {message}")
    return messages
