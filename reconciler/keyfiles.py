"""Secret files (OMAPI key, TSIG key, webhook secret): read them, and refuse exposed ones.

A key readable by every local user is a key every local user can use to
rewrite DHCP and DNS. Each key file is checked when the command starts: one
that others may write is refused (anyone could swap the key); one that its
group or others may read is used, with a WARNING naming the file and the
``chmod 600`` that fixes it. Reading is not refused because some setups share
keys on purpose: a service's group (``bind``, ``dhcpd``) and Kubernetes Secret
volumes, which are mounted 0644 unless ``defaultMode`` says otherwise. A
missing or unreadable webhook secret is a config error that names the
setting, never a traceback.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from reconciler.config import ConfigError

log = logging.getLogger(__name__)


def check_key_file(path: Path, *, setting: str) -> bool:
    """Refuse a key file others may write, warn about one others may read; False if missing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path} ({error.strerror})") from None
    shown = f"{stat.S_IMODE(mode):04o}"
    if mode & stat.S_IWOTH:
        raise ConfigError(
            f"{setting}: every user may write the key file {path} (mode {shown}); "
            f"refused. Run: chmod 600 {path}"
        )
    if mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP):
        who = "every user" if mode & stat.S_IROTH else "its group"
        log.warning(
            f"SECRET EXPOSED: {who} may read the key file {path} (mode {shown}); "
            f"run: chmod 600 {path}",
            extra={"setting": setting, "path": str(path), "mode": shown},
        )
    return True


def read_key_file(path: Path, *, setting: str) -> bytes:
    """The content of a checked key file, stripped of surrounding whitespace."""
    if not check_key_file(path, setting=setting):
        raise ConfigError(
            f"{setting}: the key file {path} does not exist; create it with mode 0600 "
            "(see deploy/README.md) or fix the path (relative paths start at the config file)"
        )
    if not path.is_file():
        raise ConfigError(f"{setting}: {path} is not a regular file")
    try:
        return path.read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path} ({error.strerror})") from None
