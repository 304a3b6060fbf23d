"""Per-MAC boot files under a TFTP root: ``pxelinux.cfg/01-<mac>`` and ``ipxe/<mac>.ipxe``.

tftpd-hpa serves the folder to PXE ROMs and ``reconciler serve`` serves the same
files over HTTP to iPXE. Files someone put there by hand (a ``default`` menu,
say) are reported as unmanaged and left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from reconciler.config import RuntimeConfig
from reconciler.resources import AnyResource, BootFile, DesiredState
from reconciler.targets import parse_settings
from reconciler.targets.filetree import FileTreeTarget

_CONTENT = attrgetter("content")


class BootFilesSettings(BaseModel):
    """Per-MAC pxelinux and iPXE files (``pxelinux.cfg/``, ``ipxe/``) under the TFTP root."""

    model_config = ConfigDict(extra="forbid")

    directory: Path = Field(
        description="the TFTP root (tftpd-hpa's folder); only pxelinux.cfg/ and ipxe/ are managed",
        examples=["/srv/tftp"],
    )


class BootFilesTarget(FileTreeTarget):
    kind: ClassVar[str] = "bootfiles"
    managed_folders: ClassVar[tuple[str, ...]] = ("pxelinux.cfg", "ipxe")

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        return state.boot_files

    def path_of(self, key: str) -> str:
        return key

    def encode(self, resource: AnyResource) -> str:
        assert isinstance(resource, BootFile)
        return resource.content

    def contents(self, resources: Sequence[AnyResource]) -> list[str]:
        # Desired resources of this target are boot files (another has no ``content``).
        return list(map(_CONTENT, resources))

    def decode(self, relative: str, content: str) -> AnyResource:
        return BootFile(relative, content)


def build(name: str, settings: dict[str, Any], config: RuntimeConfig) -> BootFilesTarget:
    parsed = parse_settings(name, BootFilesSettings, settings)
    return BootFilesTarget(
        name=name,
        root=config.resolve(parsed.directory),
        state_dir=config.resolve(config.state_dir),
    )
