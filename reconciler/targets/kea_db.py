"""Where Kea's PostgreSQL database is, and its password, as both Kea targets read them.

``kea-conf`` writes the database into Kea's config (``hosts-database``,
``lease-database``); ``kea-hosts`` writes reservations into it. Both take the
same settings, and the password comes from a file, never from the config or
the inventory. Kea hands the password to libpq inside single quotes, so a
password with a quote, a backslash or a control character is refused here with
a clear message instead of breaking Kea's connection string.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from reconciler.targets.base import TargetError

_SAFE_PASSWORD = re.compile(r"^[^'\\\x00-\x1f\x7f]+$")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class KeaDatabaseSettings(BaseModel):
    """The PostgreSQL database Kea reads host reservations (and leases) from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db_host: str = Field(default="127.0.0.1", description="PostgreSQL host, as Kea reaches it")
    db_port: int = Field(default=5432, ge=1, le=65535, description="PostgreSQL port")
    db_name: str = Field(default="kea", pattern=_NAME, description="database made by kea-admin")
    db_user: str = Field(default="kea", pattern=_NAME, description="PostgreSQL user")
    db_password_file: Path | None = Field(
        default=None, description="file holding the database user's password"
    )
    db_connect_timeout: int = Field(default=5, ge=1, le=300, description="seconds")


def read_password(target: str, path: Path | None) -> str:
    """The database password from its file ('' without one), checked for Kea's quoting."""
    if path is None:
        return ""
    try:
        password = path.read_text().strip()
    except OSError as error:
        raise TargetError(
            target, f"cannot read the database password file {path}: {error.strerror}"
        ) from None
    if not password:
        raise TargetError(target, f"the database password file {path} is empty")
    if not _SAFE_PASSWORD.match(password):
        raise TargetError(
            target,
            f"the password in {path} has a quote, a backslash or a control character, which "
            "Kea cannot pass to PostgreSQL; choose another password (ALTER ROLE ... PASSWORD)",
        )
    return password


def describe(settings: KeaDatabaseSettings) -> str:
    """How messages name the database: ``kea@127.0.0.1:5432``."""
    return f"PostgreSQL database {settings.db_name} at {settings.db_host}:{settings.db_port}"
