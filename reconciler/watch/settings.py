"""Settings of the watch loop: the ``[watch]`` table of the runtime config.

``reconciler.config.RuntimeConfig`` describes one pass; how often and from
where the loop runs is kept here, so the watch loop can grow without touching
the config every entry point loads. ``load_watch_config`` reads a runtime
config file that may carry a ``[watch]`` table and returns both halves.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.config import ConfigError, RuntimeConfig

DriftMode = Literal["correct", "report"]


class WatchSettings(BaseModel):
    """How the loop notices new revisions, re-reads live state, and retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remote: str | None = Field(
        default=None,
        description="git URL to fetch from into a mirror under state_dir; "
        "unset: watch the local [source] repository's refs",
    )
    poll_interval: float = Field(default=60.0, gt=0, description="seconds between fetches")
    poll_jitter: float = Field(
        default=0.1, ge=0, le=1, description="fraction of poll_interval added at random"
    )
    fetch_timeout: float = Field(default=60.0, gt=0, description="seconds a fetch may take")
    local_poll_interval: float = Field(
        default=5.0,
        gt=0,
        description="seconds between ref checks of a local repository "
        "(a safety net behind file notifications)",
    )
    debounce: float = Field(default=0.05, ge=0, description="seconds of quiet closing a burst")
    debounce_max: float = Field(default=1.0, gt=0, description="a burst waits at most this long")
    drift_interval: float = Field(
        default=300.0, gt=0, description="seconds between re-reads of live state"
    )
    drift: dict[str, DriftMode] = Field(
        default_factory=dict, description='per target: "correct" (default) or "report"'
    )
    drift_default: DriftMode = "correct"
    backoff_initial: float = Field(default=1.0, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(default=300.0, gt=0, description="retry delay cap, seconds")
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1, description="random +/- fraction")
    force: bool = Field(default=False, description="apply plans the safety check refuses")
    verify_signatures: Literal["none", "ssh", "gpg"] = "none"
    allowed_signers: Path | None = Field(
        default=None, description="SSH allowed-signers file (verify_signatures = 'ssh')"
    )
    gnupghome: Path | None = Field(
        default=None, description="GnuPG home with the trusted keys (verify_signatures = 'gpg')"
    )
    webhook_secret_file: Path | None = Field(
        default=None, description="file holding the webhook secret (GitHub, GitLab, HMAC)"
    )

    def drift_mode(self, target: str) -> DriftMode:
        return self.drift.get(target, self.drift_default)


def _problems(error: ValidationError, prefix: str) -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
        for e in error.errors()
    )


def parse_watch_settings(raw: dict[str, Any], *, where: str = "[watch]") -> WatchSettings:
    try:
        return WatchSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {_problems(error, 'watch.')}") from None


def load_watch_config(path: Path) -> tuple[RuntimeConfig, WatchSettings]:
    """Read a runtime config that may have a ``[watch]`` table; raise ConfigError on problems."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: runtime config not found; copy deploy/reconciler.toml and edit it"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    watch = raw.pop("watch", {})
    if not isinstance(watch, dict):
        raise ConfigError(f"{path}: watch must be a table ([watch])")
    raw["base_dir"] = path.resolve().parent
    try:
        config = RuntimeConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_problems(error, '')}") from None
    settings = parse_watch_settings(watch, where=str(path))
    for name in settings.drift:
        if name not in config.targets:
            raise ConfigError(
                f"{path}: watch.drift.{name}: no such target; use one of "
                f"{', '.join(sorted(config.targets)) or '(none configured)'}"
            )
    return config, settings
