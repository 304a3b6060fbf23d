"""The ``[media]`` table of the runtime config: what boot media are built with.

``reconciler.config.RuntimeConfig`` holds it as ``media``; it is defined here,
beside the builder that uses it. Every key is optional: by default media chain
to ``[boot] http_url`` and take iPXE from where ``scripts/setup.sh`` put it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class MediaSettings(BaseModel):
    """Overrides for ``reconciler media build``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_url: str | None = Field(
        default=None,
        description="boot service URL baked into net media (default: [boot] http_url); "
        "set it when machines booting from media reach serve under another address",
    )
    dns: list[ipaddress.IPv4Address] = Field(
        default_factory=list,
        description="name servers baked into per-host media (--host) for networks without "
        "DHCP; needed when the boot service URL names a host rather than an address",
    )
    ipxe_dir: Path | None = Field(
        default=None,
        description="folder with ipxe.lkrn and ipxe.efi (iPXE >= 1.21); default: "
        "/usr/local/share/reconciler/ipxe, then /usr/lib/ipxe",
    )
