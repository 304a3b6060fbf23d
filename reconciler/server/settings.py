"""The ``[serve]`` table of the runtime config: how ``reconciler serve`` listens and registers.

It lives in the same TOML file as the rest of the runtime config. Until
``RuntimeConfig`` knows the table, ``load_serve_config`` reads the file itself:
it takes ``[serve]`` out, validates it here, and validates the rest as a
``RuntimeConfig`` exactly as ``load_config`` would.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.config import ConfigError, RuntimeConfig


class ServeSettings(BaseModel):
    """Listening address, audit log, the registration branch and commit author, abuse limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port to listen on")
    audit_log: Path = Field(
        default=Path("registration-audit.jsonl"),
        description="JSON lines file of every registration decision (relative: to state_dir)",
    )
    branch: str | None = Field(
        default=None,
        description="branch registrations are committed to (default: [source] rev)",
    )
    author_name: str = Field(default="reconciler registration", min_length=1)
    author_email: str = Field(default="reconciler@localhost", min_length=3)
    rate_limit_per_minute: float = Field(
        default=30.0, gt=0, description="registration requests per source address per minute"
    )
    rate_limit_burst: int = Field(
        default=10, ge=1, description="requests a source address may make at once"
    )
    max_body_bytes: int = Field(
        default=4096, ge=64, le=1_048_576, description="largest request body accepted"
    )
    register_with_get: bool = Field(
        default=True,
        description="also accept GET /register?mac=... (iPXE built without PARAM_CMD cannot POST)",
    )
    refresh_seconds: float = Field(
        default=2.0,
        ge=0,
        description="how often, at most, the inventory revision is checked for changes",
    )


def _problems(prefix: str, error: ValidationError) -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
        for e in error.errors()
    )


def parse_serve_settings(raw: dict[str, Any], *, where: str = "config") -> ServeSettings:
    """Validate a ``[serve]`` table; ConfigError names the key to fix."""
    try:
        return ServeSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {_problems('serve.', error)}") from None


def load_serve_config(path: Path) -> tuple[RuntimeConfig, ServeSettings]:
    """The runtime config and its ``[serve]`` table from one TOML file."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: runtime config not found; copy deploy/reconciler.toml and edit it"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    serve_raw = raw.pop("serve", {})
    if not isinstance(serve_raw, dict):
        raise ConfigError(f"{path}: serve must be a table ([serve])")
    raw["base_dir"] = path.resolve().parent
    try:
        config = RuntimeConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_problems('', error)}") from None
    return config, parse_serve_settings(serve_raw, where=str(path))
