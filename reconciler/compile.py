"""Inventory -> desired resources. Pure: no I/O, so it is fast and easy to test.

One valid ``Inventory`` becomes every object the targets should hold: dhcpd
host entries and subnets, DNS zones and RRsets (A, PTR in each subnet's reverse
zone, CNAME per alias), per-MAC boot files, and the image each node must run.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter

from reconciler.boot_templates import BootTemplates
from reconciler.compile_cache import (
    CompileCache,
    CompiledGroup,
    CompiledHost,
    GroupOutput,
)
from reconciler.compile_host import GroupRenderer
from reconciler.compile_host import dhcp_host as dhcp_host
from reconciler.model.inventory import Group, Host, ImageVersion, Inventory
from reconciler.names import ipxe_path as ipxe_path
from reconciler.names import pxelinux_path as pxelinux_path
from reconciler.names import reverse_name as reverse_name
from reconciler.names import reverse_zone_of as reverse_zone_of
from reconciler.names import reverse_zones as reverse_zones
from reconciler.resources import (
    BootFile,
    DesiredState,
    DhcpHost,
    DhcpSubnet,
    DnsRecord,
    DnsZone,
    NodeImage,
)


@dataclass(frozen=True, slots=True)
class CompileOptions:
    """The runtime settings compile needs: where boot scripts are served from."""

    http_url: str = "http://127.0.0.1:8080"


ENTRY_SCRIPT = "boot.ipxe"
REGISTRATION_PROFILE = "registration"
REGISTRATION_IPXE = "ipxe/registration.ipxe"
DISCOVERY_IPXE = "ipxe/discovery.ipxe"  # where hosts without an image chain to
PXELINUX_DEFAULT = "pxelinux.cfg/default"


class _Compiler:
    def __init__(
        self,
        inventory: Inventory,
        templates: BootTemplates,
        options: CompileOptions,
        cache: CompileCache,
        assignments: Mapping[str, str],
    ) -> None:
        self.cache = cache
        self.assignments = assignments
        self.image_keys: dict[str, str] = {}
        self.known_refs: dict[str, bool] = {}  # image reference -> whether this revision has it
        self.resolved: dict[str, tuple[str, str, ImageVersion]] = {}
        self.inventory = inventory
        self.templates = templates
        self.options = options
        self.domain = inventory.site.domain + "."
        self.ttl = inventory.site.ttl
        self.dhcp_hosts: list[DhcpHost] = []
        self.records: list[DnsRecord] = []
        self.boot_files: list[BootFile] = []
        self.node_images: list[NodeImage] = []
        self.hosts_by_mac: dict[str, str] = {}
        self.reverse: list[str] = []

    def run(self) -> DesiredState:
        subnets = self._subnets()
        for network in sorted({g.subnet for g in self.inventory.groups}):
            self.reverse.extend(z for z in reverse_zones(network) if z not in self.reverse)
        site_key = (self.domain, self.ttl, self.options.http_url)
        self.cache.begin(templates=self.templates, assignments=self.assignments)
        for group in self.inventory.groups:
            # Strings cache their hash; addresses and models would be hashed per host.
            group_key = (
                site_key,
                group.name,
                str(group.subnet),
                str(group.gateway),
                group.hostname,
                str(group.first_address),
                group.boot,
                group.dhcp_filename,
                group.filename,
                str(group.next_server),
                group.rollout.method,
                group.image,  # hosts without their own image follow it
            )
            compiled = self.cache.reusable(group, group_key, self._known_image_key)
            if compiled is None:
                compiled = self._group(group, group_key)
            self.cache.keep(group.name, compiled)
            output = compiled.output
            self.hosts_by_mac.update(output.hosts_by_mac)
            self.dhcp_hosts.extend(output.dhcp_hosts)
            self.records.extend(output.records)
            self.node_images.extend(output.node_images)
            self.boot_files.extend(output.boot_files)
        self._site_boot_files()
        zones = [DnsZone(self.domain, "forward")] + [DnsZone(z, "reverse") for z in self.reverse]
        return DesiredState(
            dhcp_hosts=tuple(self.dhcp_hosts),
            dhcp_subnets=subnets,
            dns_zones=tuple(zones),
            dns_records=tuple(self.records),
            boot_files=tuple(self.boot_files),
            node_images=tuple(self.node_images),
            hosts_by_mac=self.hosts_by_mac,
        )

    def _site_boot_files(self) -> None:
        """Files every client may fetch: the iPXE entry script, the script hosts without
        an image chain to, and, for unknown MACs, the registration profile
        (``pxelinux.cfg/default`` is where pxelinux falls back)."""
        context = {"http_url": self.options.http_url, "domain": self.inventory.site.domain}
        render = self.templates.render
        self.boot_files.append(
            BootFile(ENTRY_SCRIPT, self.templates.render_file("boot.ipxe.j2", context))
        )
        self.boot_files.append(
            BootFile(DISCOVERY_IPXE, self.templates.render_file("discovery.ipxe.j2", context))
        )
        self.boot_files.append(
            BootFile(REGISTRATION_IPXE, render(REGISTRATION_PROFILE, "ipxe", context))
        )
        self.boot_files.append(
            BootFile(PXELINUX_DEFAULT, render(REGISTRATION_PROFILE, "pxelinux", context))
        )

    def _subnets(self) -> tuple[DhcpSubnet, ...]:
        by_network: dict[ipaddress.IPv4Network, list[Group]] = {}
        for group in self.inventory.groups:
            by_network.setdefault(group.subnet, []).append(group)
        subnets = []
        for network, groups in sorted(by_network.items()):
            ranges = [g.unregistered_range for g in groups if g.unregistered_range is not None]
            subnets.append(
                DhcpSubnet(
                    network=str(network),
                    gateway=str(groups[0].gateway),
                    lease_time=self.inventory.site.lease_time,
                    domain=self.inventory.site.domain,
                    unregistered_range=(str(ranges[0][0]), str(ranges[0][1])) if ranges else None,
                    groups=tuple(sorted(g.name for g in groups)),
                )
            )
        return tuple(subnets)

    def _group(self, group: Group, group_key: tuple[object, ...]) -> CompiledGroup:
        """A group compiled host by host; hosts whose inputs did not change reuse their output."""
        previous = self.cache.previous(group.name, group_key)
        images: dict[str, str | None] = {}
        by_id: dict[int, CompiledHost] = {}
        by_key: dict[tuple[object, ...], CompiledHost] = {}
        dhcp_hosts: list[DhcpHost] = []
        records: list[DnsRecord] = []
        node_images: list[NodeImage] = []
        boot_files: list[BootFile] = []
        by_mac: dict[str, str] = {}
        keeps = self.cache.keeps
        renderer = GroupRenderer(
            group,
            domain=self.inventory.site.domain,
            ttl=self.ttl,
            http_url=self.options.http_url,
            templates=self.templates,
        )
        for host in group.hosts:
            ref = host.image or group.image
            if host.image is None and self.assignments:
                # A rollout in progress: the node keeps the version it is assigned for now
                # (if this revision still has it).
                assigned = self.assignments.get(group.name_of(host))
                if assigned is not None:
                    images[assigned] = self._known_image_key(assigned)
                    if self._has_image(assigned):
                        ref = assigned
            image_key = self._image_key(ref)
            if ref is not None:
                images[ref] = image_key
            if keeps:
                entry = self._host(renderer, group_key, host, ref, image_key, previous)
                by_id[id(host)] = by_key[entry.key] = entry
                output = entry.output
            else:  # nothing to reuse, nothing kept: no per-host keys
                output = renderer.render(host, self._resolved(ref))
            dhcp_hosts.append(output.dhcp_host)
            records.extend(output.records)
            if output.node_image is not None:
                node_images.append(output.node_image)
            boot_files.extend(output.boot_files)
            by_mac[output.dhcp_host.mac] = output.dhcp_host.hostname
        return CompiledGroup(
            group_key=group_key,
            hosts=tuple(group.hosts),
            images=tuple(images.items()),
            names=frozenset(map(attrgetter("hostname"), dhcp_hosts)),
            by_id=by_id,
            by_key=by_key,
            output=GroupOutput(
                tuple(dhcp_hosts), tuple(records), tuple(node_images), tuple(boot_files), by_mac
            ),
        )

    def _host(
        self,
        renderer: GroupRenderer,
        group_key: tuple[object, ...],
        host: Host,
        ref: str | None,
        image_key: str,
        previous: CompiledGroup | None,
    ) -> CompiledHost:
        if previous is not None:
            entry = previous.by_id.get(id(host))
            if entry is not None and entry.host is host and entry.image_key == image_key:
                return entry
        key = (
            group_key,
            host.index,
            host.mac,
            host.name,
            str(host.address),
            tuple(host.aliases),
            host.filename,
            str(host.next_server),
            image_key,
        )
        found = previous.by_key.get(key) if previous is not None else None
        if found is not None:
            return CompiledHost(host, image_key, key, found.output)
        return CompiledHost(host, image_key, key, renderer.render(host, self._resolved(ref)))

    def _resolved(self, ref: str | None) -> tuple[str, str, ImageVersion] | None:
        if ref is None:
            return None
        resolved = self.resolved.get(ref)
        if resolved is None:
            resolved = self.resolved[ref] = self.inventory.resolve_image(ref)
        return resolved

    def _has_image(self, ref: str) -> bool:
        known = self.known_refs.get(ref)
        if known is None:
            known = self.known_refs[ref] = self.inventory.has_image(ref)
        return known

    def _known_image_key(self, ref: str) -> str | None:
        """What an image reference says in this revision; None for a version it lacks."""
        return self._image_key(ref) if self._has_image(ref) else None

    def _image_key(self, ref: str | None) -> str:
        """The image reference and everything its version says, as one string."""
        if ref is None:
            return ""
        key = self.image_keys.get(ref)
        if key is None:
            key = self.image_keys[ref] = (
                ref + self.inventory.resolve_image(ref)[2].model_dump_json()
            )
        return key


def compile_inventory(
    inventory: Inventory,
    *,
    templates: BootTemplates | None = None,
    options: CompileOptions | None = None,
    cache: CompileCache | None = None,
    assignments: Mapping[str, str] | None = None,
) -> DesiredState:
    """Every resource the inventory asks for, in a deterministic order.

    ``cache`` (kept by a long-running process) lets groups and hosts whose inputs did
    not change since the previous compile reuse their output instead of rendering again.
    ``assignments`` (hostname -> image reference, from the rollout controller) name
    the version a node runs while its group moves to a new one; hosts with their
    own ``image:`` ignore them.
    """
    compiler = _Compiler(
        inventory,
        templates or BootTemplates(),
        options or CompileOptions(),
        cache or CompileCache(),
        assignments or {},
    )
    state = compiler.run()
    compiler.cache.finish()
    return state
