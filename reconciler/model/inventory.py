"""The inventory's file formats as pydantic models: site.yaml, groups/*.yaml, images/*.yaml.

These models check each file on its own (types, unknown keys, value formats).
Rules that need the whole site (duplicate MACs, overlapping subnets, image
references) live in ``reconciler.model.rules``. The JSON Schemas in ``schemas/``
are generated from these classes, so field descriptions here are what editors show.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from reconciler.model.embedded import check_cmdline, check_dhcp_filename, check_url
from reconciler.model.rollout import RolloutPolicy
from reconciler.model.types import (
    AddressRange,
    Domain,
    HostnameFormat,
    ImageRef,
    IndexRange,
    Label,
    MacAddress,
    Sha256,
)

Url = Annotated[str, AfterValidator(check_url)]
Cmdline = Annotated[str, AfterValidator(check_cmdline)]
DhcpFilename = Annotated[str, AfterValidator(check_dhcp_filename)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(_File):
    """site.yaml: what holds for the whole site."""

    domain: Domain = Field(description="forward DNS zone; a host is <hostname>.<domain>")
    ttl: int = Field(
        default=300, ge=1, le=2_147_483_647, strict=True, description="DNS TTL in seconds"
    )
    lease_time: int = Field(
        default=3600, ge=60, le=2_147_483_647, strict=True, description="DHCP lease time in seconds"
    )


class Host(_File):
    """One machine of a group: the index is the sticker on the blade."""

    index: int = Field(
        ge=0, strict=True, description="fills the group's hostname format and address"
    )
    mac: MacAddress
    name: Label | None = Field(
        default=None,
        description="this host's name, instead of the group's hostname format (irregular names)",
    )
    address: ipaddress.IPv4Address | None = Field(
        default=None,
        description="this host's address, instead of first_address + index (irregular addresses)",
    )
    # default_factory=lambda: [], not list: pydantic reads a factory's signature, and the
    # builtin's costs ~4 ms at start-up (its text signature is tokenized)
    aliases: list[Label] = Field(default_factory=lambda: [], description="extra names (CNAMEs)")
    image: ImageRef | None = Field(default=None, description="per-host override: a canary")
    filename: DhcpFilename | None = Field(
        default=None,
        description="this host's own DHCP filename, given to every client with its MAC "
        "(PXE ROM and iPXE alike), instead of the group's filename or what its dhcp_filename "
        "gives (kept from a legacy dhcpd.conf by `reconciler import`)",
    )
    next_server: ipaddress.IPv4Address | None = Field(
        default=None,
        description="this host's own DHCP next-server (TFTP server), instead of its subnet's",
    )


class Registration(_File):
    """Sequential discovery of new machines."""

    open: bool = Field(
        default=False, strict=True, description="true: unknown MACs that boot are enrolled"
    )
    indexes: IndexRange = Field(description="indexes new machines take, lowest free first")
    allow_routed: bool = Field(
        default=False,
        strict=True,
        description="true: also enrol machines whose request reaches the server through a "
        "router (no neighbour entry to check the MAC against); default: same link only",
    )


class Group(_File):
    """groups/<name>.yaml: hosts that share a subnet, a naming format and an image."""

    name: Label = Field(description="must equal the file name without .yaml")
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    hostname: HostnameFormat = Field(description='printf format, e.g. "node%03d"')
    first_address: ipaddress.IPv4Address | None = Field(
        default=None, description="a host's address = first_address + index (default: network)"
    )
    unregistered_range: AddressRange | None = Field(
        default=None, description="addresses for unknown MACs"
    )
    image: ImageRef | None = Field(
        default=None, description="<image>@<version>; hosts without one boot discovery"
    )
    boot: Label = Field(default="default", description="boot profile: which templates render")
    dhcp_filename: Literal["per-host", "subnet"] = Field(
        default="per-host",
        description="per-host: each host's DHCP entry sends iPXE clients to the host's own "
        "script (ipxe/<mac>.ipxe); subnet: the entry names no boot file, so hosts get what "
        "dhcpd.conf or Kea gives their subnet (what `reconciler import` keeps for a legacy site)",
    )
    filename: DhcpFilename | None = Field(
        default=None,
        description="the DHCP filename of every host here that gives none of its own "
        "(see a host's filename)",
    )
    next_server: ipaddress.IPv4Address | None = Field(
        default=None,
        description="the DHCP next-server of every host here that gives none of its own",
    )
    registration: Registration | None = None
    rollout: RolloutPolicy = Field(
        default_factory=RolloutPolicy,
        description="how an image change reaches the nodes: waves, health, pause, rollback",
    )
    hosts: list[Host] = Field(default_factory=lambda: [])  # not list: see Host.aliases

    def hostname_of(self, index: int) -> str:
        """The name the group's format gives ``index`` (a host's own ``name`` may override it)."""
        return self.hostname % index

    def address_of(self, index: int) -> ipaddress.IPv4Address:
        """first_address + ``index`` (a host's own ``address`` may override it)."""
        base = self.first_address if self.first_address is not None else self.subnet.network_address
        return ipaddress.IPv4Address(int(base) + index)

    def name_of(self, host: Host) -> str:
        """A host's name: its own ``name``, else the group's format filled with its index."""
        return host.name if host.name is not None else self.hostname % host.index

    def filename_for(self, host: Host) -> str | None:
        """A host's DHCP filename: its own, else the group's (None: none in its entry)."""
        return host.filename if host.filename is not None else self.filename

    def next_server_for(self, host: Host) -> ipaddress.IPv4Address | None:
        """A host's DHCP next-server: its own, else the group's (None: the subnet's)."""
        return host.next_server if host.next_server is not None else self.next_server

    def address_for(self, host: Host) -> ipaddress.IPv4Address:
        """A host's address: its own ``address``, else first_address + its index."""
        return host.address if host.address is not None else self.address_of(host.index)


class Artifact(_File):
    url: Url
    sha256: Sha256


class ImageVersion(_File):
    kernel: Artifact
    initrd: Artifact
    rootfs: Artifact
    cmdline: Cmdline = ""


class Image(_File):
    """images/<name>.yaml: an image and its versions."""

    name: Label = Field(description="must equal the file name without .yaml")
    versions: dict[str, ImageVersion] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Inventory:
    """A whole, valid site: only ``load_inventory`` builds one, after every rule passed."""

    site: Site
    groups: tuple[Group, ...]
    images: dict[str, Image]
    revision: str = "working-tree"

    def has_image(self, ref: str) -> bool:
        """Whether ``<image>@<version>`` names a version this revision still has."""
        name, _, version = ref.partition("@")
        image = self.images.get(name)
        return image is not None and version in image.versions

    def resolve_image(self, ref: str) -> tuple[str, str, ImageVersion]:
        name, _, version = ref.partition("@")
        return name, version, self.images[name].versions[version]
