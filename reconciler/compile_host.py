"""One host's output (DHCP entry, DNS records, node image, boot files), group facts made once.

``reconciler.compile`` walks the groups; ``GroupRenderer`` holds what every host
of one group shares (its address base, reverse zone width, gateway and netmask
as text, and per image the boot files' ``str.format`` patterns, see
``reconciler.boot_format``), so the per-host work is string building only. At
100,000 hosts that per-host work is most of a compile.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from reconciler.boot_format import host_format
from reconciler.boot_templates import BootTemplates
from reconciler.compile_cache import HostOutput
from reconciler.model.inventory import Group, Host, ImageVersion
from reconciler.names import ipxe_path, pxelinux_path
from reconciler.resources import BootFile, DhcpHost, DnsRecord, NodeImage

Resolved = tuple[str, str, ImageVersion]  # image name, version, what the version says


def dhcp_host(group: Group, host: Host, *, hostname: str, ip: str) -> DhcpHost:
    """A host's DHCP entry. Its boot file: its ``filename`` (its own, else its group's)
    for every client if it has one, else (group ``dhcp_filename: per-host``) its iPXE
    script for iPXE clients, else nothing, so the subnet's file holds."""
    filename = group.filename_for(host)
    next_server = group.next_server_for(host)
    per_host = group.dhcp_filename == "per-host" and filename is None
    return DhcpHost(  # positional: 100,000 of them at 100k hosts
        hostname,
        host.mac,
        ip,
        group.name,
        ipxe_path(host.mac) if per_host else "",  # boot_filename
        filename or "",
        str(next_server) if next_server is not None else "",
    )


def image_context(name: str, version: str, image: ImageVersion) -> dict[str, str]:
    """What boot templates see as ``image``."""
    return {
        "name": name,
        "version": version,
        "kernel_url": image.kernel.url,
        "kernel_sha256": image.kernel.sha256,
        "initrd_url": image.initrd.url,
        "initrd_sha256": image.initrd.sha256,
        "rootfs_url": image.rootfs.url,
        "rootfs_sha256": image.rootfs.sha256,
        "cmdline": image.cmdline,
    }


def _node_image(hostname: str, mac: str, resolved: Resolved, swap: str) -> NodeImage:
    name, version, image = resolved
    kernel, initrd, rootfs = image.kernel, image.initrd, image.rootfs
    return NodeImage(  # positional, in NodeImage's field order: 100,000 at 100k hosts
        hostname,
        mac,
        name,
        version,
        kernel.url,
        kernel.sha256,
        initrd.url,
        initrd.sha256,
        rootfs.url,
        rootfs.sha256,
        image.cmdline,
        swap,
    )


class GroupRenderer:
    """What one group's hosts share, worked out once; ``render`` gives one host's output."""

    def __init__(
        self, group: Group, *, domain: str, ttl: int, http_url: str, templates: BootTemplates
    ) -> None:
        self.group = group
        self.domain = domain  # the site's, without the trailing dot
        self.zone = domain + "."
        self.ttl = ttl
        self.http_url = http_url
        self.templates = templates
        base = (
            group.first_address if group.first_address is not None else group.subnet.network_address
        )
        self.base = int(base)
        # The PTR's zone: the address's first octets, as names.reverse_zone_of cuts them.
        self.zone_octets = max(1, -(-group.subnet.prefixlen // 8))
        self.gateway = str(group.gateway)
        self.netmask = str(group.subnet.netmask)
        self.formats: dict[tuple[str, str, str] | str, tuple[str, str] | None] = {}

    def _ip(self, host: Host) -> str:
        if host.address is not None:
            return str(host.address)
        number = self.base + host.index
        if number > 0xFFFFFFFF:
            return str(ipaddress.IPv4Address(number))  # raises as Group.address_for does
        return ".".join(map(str, number.to_bytes(4, "big")))

    def _formats(self, profile: str, resolved: Resolved | None) -> tuple[str, str] | None:
        """The pxelinux and iPXE patterns for hosts of this profile and image, if both have one."""
        key = profile if resolved is None else (profile, resolved[0], resolved[1])
        if key in self.formats:
            return self.formats[key]
        shared: dict[tuple[str, str | None], object] = {
            ("host", "group"): self.group.name,
            ("host", "gateway"): self.gateway,
            ("host", "netmask"): self.netmask,
            ("http_url", None): self.http_url,
            ("domain", None): self.domain,
        }
        if resolved is not None:
            shared |= {("image", k): v for k, v in image_context(*resolved).items()}
        patterns = []
        for kind in ("pxelinux", "ipxe"):
            parts = self.templates.plain_parts(profile, kind)
            pattern = host_format(parts, shared) if parts is not None else None
            if pattern is None:
                self.formats[key] = None
                return None
            patterns.append(pattern)
        found = self.formats[key] = (patterns[0], patterns[1])
        return found

    def _rendered(
        self, profile: str, resolved: Resolved | None, fields: tuple[str, str, str, str, int]
    ) -> tuple[str, str]:
        """The host's pxelinux and iPXE files: by the group's patterns, else by jinja2."""
        formats = self._formats(profile, resolved)
        if formats is not None:
            return formats[0].format(*fields), formats[1].format(*fields)
        hostname, fqdn, mac, ip, index = fields
        context = {
            # Namespaces rather than dicts: jinja2 finds attributes on the first try.
            "host": SimpleNamespace(
                hostname=hostname,
                fqdn=fqdn,
                mac=mac,
                ip=ip,
                group=self.group.name,
                index=index,
                gateway=self.gateway,
                netmask=self.netmask,
            ),
            "image": SimpleNamespace(**image_context(*resolved)) if resolved else None,
            "http_url": self.http_url,
            "domain": self.domain,
        }
        render = self.templates.render
        return render(profile, "pxelinux", context), render(profile, "ipxe", context)

    def render(self, host: Host, resolved: Resolved | None) -> HostOutput:
        group, zone, ttl = self.group, self.zone, self.ttl
        hostname = group.name_of(host)
        ip = self._ip(host)
        fqdn = f"{hostname}.{zone}"
        octets = ip.split(".")[::-1]
        records = [
            DnsRecord(zone, fqdn, "A", ttl, (ip,)),
            DnsRecord(
                ".".join(octets[4 - self.zone_octets :]) + ".in-addr.arpa.",
                ".".join(octets) + ".in-addr.arpa.",
                "PTR",
                ttl,
                (fqdn,),
            ),
        ]
        for alias in host.aliases:
            records.append(DnsRecord(zone, f"{alias}.{zone}", "CNAME", ttl, (fqdn,)))
        profile = group.boot
        node_image = None
        if resolved is None:
            profile = "discovery" if profile == "default" else profile
        else:
            node_image = _node_image(hostname, host.mac, resolved, group.rollout.method)
        pxelinux, ipxe = self._rendered(
            profile, resolved, (hostname, f"{hostname}.{self.domain}", host.mac, ip, host.index)
        )
        return HostOutput(
            dhcp_host(group, host, hostname=hostname, ip=ip),
            tuple(records),
            node_image,
            (BootFile(pxelinux_path(host.mac), pxelinux), BootFile(ipxe_path(host.mac), ipxe)),
        )
