"""``reconciler media build``: one bootable image from an inventory revision.

Two kinds, both a single hybrid ISO (CD or raw USB stick, BIOS or UEFI):

- **net**: iPXE with a script that chains to the boot service with the
  machine's MAC, so the machine boots what PXE would give it. With a host,
  its address, netmask, gateway and DNS are baked in for a network without DHCP.
- **live**: the image itself (kernel, initramfs, rootfs, each fetched and
  checked by sha256 now) booting with no network; the initramfs finds the
  medium by its volume label (``reconciler.media=``) and mounts the rootfs on it.

The medium carries ``/reconciler-media.json`` saying what it is and which
revision it came from; the same revision and options give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciler.config import RuntimeConfig
from reconciler.media.artifacts import Progress, fetch_verified, sha256_file
from reconciler.media.image import (
    ISOLINUX_BIN,
    MediumFile,
    build_esp,
    build_grub_efi,
    write_hybrid_iso,
)
from reconciler.media.scripts import (
    SCRIPT_NAME,
    MediaInputError,
    StaticAddress,
    check_cmdline,
    check_server_url,
    grub_embedded_cfg,
    grub_live_cfg,
    isolinux_live_cfg,
    isolinux_net_cfg,
    net_script,
)
from reconciler.media.tools import BootLoaders, find_boot_loaders
from reconciler.model.inventory import Group, Host, ImageVersion, Inventory

MANIFEST = "/reconciler-media.json"
MANIFEST_FORMAT = 1
LIVE_ARTIFACTS = (("kernel", "vmlinuz"), ("initrd", "initrd.img"), ("rootfs", "root.squashfs"))


class MediaKind(StrEnum):
    net = "net"
    live = "live"


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """What to build: the kind, and for whom (one host, one group, or any machine)."""

    kind: MediaKind
    host: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class BuiltMedium:
    """The image written, as the build reports it."""

    path: Path
    sha256: str
    size: int
    revision: str
    manifest: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Target:
    group: Group | None
    host: Host | None
    hostname: str | None


def _select(inventory: Inventory, request: MediaRequest, revision: str) -> _Target:
    where = f"revision {revision}"
    if request.host is not None and request.group is not None:
        raise MediaInputError("give --host or --group, not both")
    if request.host is not None:
        for group in inventory.groups:
            for host in group.hosts:
                if group.name_of(host) == request.host:
                    return _Target(group, host, request.host)
        raise MediaInputError(
            f"no host named {request.host!r} in {where}; a host's name is its group's "
            "hostname format filled with its index (for example node010), or its own name:"
        )
    if request.group is not None:
        for group in inventory.groups:
            if group.name == request.group:
                if request.kind is MediaKind.net:
                    raise MediaInputError(
                        "--group applies to live media; a net medium without --host boots "
                        "any machine as serve decides by its MAC"
                    )
                return _Target(group, None, None)
        known = ", ".join(g.name for g in inventory.groups)
        raise MediaInputError(f"no group named {request.group!r} in {where}; groups: {known}")
    if request.kind is MediaKind.live:
        raise MediaInputError("live media carry one image: give --host NAME or --group NAME")
    return _Target(None, None, None)


def _static(config: RuntimeConfig, inventory: Inventory, target: _Target) -> StaticAddress:
    assert target.group is not None and target.host is not None and target.hostname
    return StaticAddress(
        hostname=target.hostname,
        address=target.group.address_for(target.host),
        network=target.group.subnet,
        gateway=target.group.gateway,
        dns=tuple(config.media.dns),
        domain=inventory.site.domain,
    )


def _image_of(inventory: Inventory, target: _Target) -> tuple[str, ImageVersion]:
    assert target.group is not None
    ref = (target.host.image if target.host else None) or target.group.image
    if ref is None:
        who = f"host {target.hostname}" if target.hostname else f"group {target.group.name}"
        raise MediaInputError(
            f"{who} has no image (it boots the discovery profile), so there is nothing to put "
            f"on a live medium; set image: in groups/{target.group.name}.yaml or use --kind net"
        )
    _, _, version = inventory.resolve_image(ref)
    return ref, version


def server_url_of(config: RuntimeConfig) -> str:
    url = config.media.server_url or config.boot.http_url
    where = "[media] server_url" if config.media.server_url else "[boot] http_url"
    return check_server_url(url, where=where)


def build_medium(
    *,
    config: RuntimeConfig,
    inventory: Inventory,
    revision: str,
    request: MediaRequest,
    out: Path,
    cache: Path | None = None,
    progress: Callable[[str], Progress] | None = None,
) -> BuiltMedium:
    """Write the medium to ``out`` (atomically: no file at all on any error)."""
    target = _select(inventory, request, revision)
    server = server_url_of(config)
    loaders = find_boot_loaders(
        need_ipxe=request.kind is MediaKind.net,
        ipxe_dir=config.resolve(config.media.ipxe_dir) if config.media.ipxe_dir else None,
    )
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "kind": request.kind.value,
        "revision": revision,
        "server": server,
        "host": target.hostname,
        "group": target.group.name if target.group else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".media-", dir=out.parent) as temp:
        workdir = Path(temp)
        if request.kind is MediaKind.net:
            static = _static(config, inventory, target) if target.host else None
            files, esp_files = _net_files(loaders, manifest, server, static, revision)
        else:
            ref, version = _image_of(inventory, target)
            files, esp_files = _live_files(
                loaders, manifest, workdir=workdir, ref=ref, version=version,
                target=target, server=server, cache=cache, progress=progress,
            )  # fmt: skip
        files.append(MediumFile(ISOLINUX_BIN, loaders.isolinux))
        files.append(MediumFile("/boot/isolinux/ldlinux.c32", loaders.ldlinux))
        manifest["boot_loaders"] = {
            "isolinux": sha256_file(loaders.isolinux),
            **({"ipxe": loaders.ipxe.version} if loaders.ipxe else {}),
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        seed = hashlib.sha256(body + _digest_of(files)).digest()
        volume_id = manifest.get("volume_id") or f"RCN_{seed.hex()[:12].upper()}"
        files.append(MediumFile(MANIFEST, body))
        if request.kind is MediaKind.live:
            esp_files["/EFI/BOOT/BOOTX64.EFI"] = build_grub_efi(
                embedded_cfg=grub_embedded_cfg(volume_id),
                modules_dir=loaders.grub_efi_modules,
                out=workdir / "grubx64.efi",
                workdir=workdir,
            )
        esp = build_esp(esp_files, out=workdir / "efiboot.img", workdir=workdir)
        partial = workdir / "medium.iso"
        write_hybrid_iso(files=files, esp=esp, volume_id=volume_id, out=partial, seed=seed)
        digest = sha256_file(partial)
        size = partial.stat().st_size
        partial.replace(out)
    return BuiltMedium(out, digest, size, revision, manifest)


def _digest_of(files: list[MediumFile]) -> bytes:
    digest = hashlib.sha256()
    for medium_file in sorted(files, key=lambda f: f.path):
        content = medium_file.content
        data = content if isinstance(content, bytes) else sha256_file(content).encode()
        digest.update(medium_file.path.encode() + b"\0" + data)
    return digest.digest()


def _net_files(
    loaders: BootLoaders,
    manifest: dict[str, Any],
    server: str,
    static: StaticAddress | None,
    revision: str,
) -> tuple[list[MediumFile], dict[str, Path | bytes]]:
    assert loaders.ipxe is not None
    script = net_script(server_url=server, revision=revision, static=static).encode()
    if static is not None:
        manifest["static"] = {
            "address": str(static.address),
            "netmask": str(static.network.netmask),
            "gateway": str(static.gateway),
            "dns": [str(d) for d in static.dns],
        }
    files = [
        MediumFile("/boot/ipxe.lkrn", loaders.ipxe.lkrn),
        MediumFile(f"/boot/{SCRIPT_NAME}", script),
        MediumFile("/boot/isolinux/isolinux.cfg", isolinux_net_cfg().encode()),
    ]
    esp: dict[str, Path | bytes] = {
        "/EFI/BOOT/BOOTX64.EFI": loaders.ipxe.efi,
        "/EFI/BOOT/autoexec.ipxe": script,
        "/autoexec.ipxe": script,
    }
    return files, esp


def _live_files(
    loaders: BootLoaders,
    manifest: dict[str, Any],
    *,
    workdir: Path,
    ref: str,
    version: ImageVersion,
    target: _Target,
    server: str,
    cache: Path | None,
    progress: Callable[[str], Progress] | None,
) -> tuple[list[MediumFile], dict[str, Path | bytes]]:
    fetched: dict[str, Path] = {}
    for field, name in LIVE_ARTIFACTS:
        artifact = getattr(version, field)
        fetched[field] = fetch_verified(
            url=artifact.url,
            sha256=artifact.sha256,
            destination=workdir / name,
            what=f"image {ref} {field}",
            cache=cache,
            progress=progress(f"{field} of {ref}") if progress else None,
        )
    manifest["image"] = ref
    manifest["artifacts"] = {
        field: {"url": getattr(version, field).url, "sha256": getattr(version, field).sha256}
        for field, _ in LIVE_ARTIFACTS
    }
    # The label the initramfs looks for: derived from everything else on the medium.
    seed = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    volume_id = manifest["volume_id"] = f"RCN_{seed[:12].upper()}"
    words = [version.cmdline]
    if target.hostname:
        words.append(f"hostname={target.hostname}")
    words += [
        f"reconciler.image={ref}",
        f"reconciler.rootfs={version.rootfs.url}",
        f"reconciler.rootfs_sha256={version.rootfs.sha256}",
        f"reconciler.kernel_sha256={version.kernel.sha256}",
        f"reconciler.server={server}",
        f"reconciler.media={volume_id}",
    ]
    cmdline = check_cmdline(" ".join(words), where=f"image {ref} cmdline")
    manifest["cmdline"] = cmdline
    files = [
        MediumFile("/live/vmlinuz", fetched["kernel"]),
        MediumFile("/live/initrd.img", fetched["initrd"]),
        MediumFile("/live/root.squashfs", fetched["rootfs"]),
        MediumFile("/boot/isolinux/isolinux.cfg", isolinux_live_cfg(cmdline).encode()),
        MediumFile("/boot/grub/grub.cfg", grub_live_cfg(cmdline, title=ref).encode()),
    ]
    return files, {}
