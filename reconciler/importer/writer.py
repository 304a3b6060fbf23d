"""Render the inferred site as inventory files, check them, and write the folder in one step.

The files are plain YAML written as text, so each group opens with comments
saying where it came from and each host names the places that described it.
They are loaded back with the same loader ``reconciler validate`` uses before
anything touches the disk; the folder appears by one rename, so an error
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from reconciler.importer.images import VERSION, ImportedImage
from reconciler.importer.infer import Inference, InferredGroup
from reconciler.importer.records import ImportFailure, Where
from reconciler.inventory.load import load_inventory
from reconciler.model.problems import InventoryError
from reconciler.server.enrol import MemorySource

SCHEMA_HINT = "# yaml-language-server: $schema=../schemas/{}.schema.json\n"


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def render_site(result: Inference, *, inputs: list[str]) -> str:
    lines = ["# Imported by `reconciler import` from:"]
    lines += [f"#   {source}" for source in inputs]
    lines += [f"domain: {result.domain}", f"ttl: {result.ttl}", ""]
    return "\n".join(lines)


def render_group(group: InferredGroup) -> str:
    lines = [f"# {line}" for line in group.origin]
    lines += [
        f"name: {group.name}",
        f"subnet: {group.subnet.network}",
        f"gateway: {group.gateway}",
        f"hostname: {_q(group.hostname)}",
    ]
    if group.first_address is not None:
        lines.append(f"first_address: {group.first_address}")
    if group.unregistered_range is not None:
        first, last = group.unregistered_range
        lines.append(f"unregistered_range: {first}-{last}  # the subnet's dynamic range")
    if group.image is not None:
        lines.append(f"image: {group.image}")
    if group.dhcp_filename != "per-host":
        lines.append(
            f"dhcp_filename: {group.dhcp_filename}  # as the legacy host entries: no per-host "
            "iPXE script, the subnet's filename"
        )
    if group.filename is not None:
        lines.append(f"filename: {_q(group.filename)}  # every host's, kept")
    if group.next_server is not None:
        lines.append(f"next_server: {group.next_server}  # every host's, kept")
    lines.append("hosts:")
    for member in group.members:
        machine = member.machine
        places = ", ".join(str(w) for w in machine.wheres[:3])
        lines.append(f"  - index: {member.index}  # {places}")
        lines.append(f"    mac: {_q(machine.mac)}")
        if member.own_name:
            lines.append(f"    name: {machine.name}")
        if member.own_address:
            lines.append(f"    address: {machine.address}")
        if machine.image is not None and group.image is None:
            lines.append(f"    image: {machine.image}")
        if machine.filename is not None and group.filename is None:
            lines.append(f"    filename: {_q(machine.filename)}  # its own, kept")
        if machine.next_server is not None and group.next_server is None:
            lines.append(f"    next_server: {machine.next_server}")
    return "\n".join(lines) + "\n"


def render_image(image: ImportedImage) -> str:
    def artifact(value: tuple[str, str]) -> str:
        return f"{{url: {_q(value[0])}, sha256: {value[1]}}}"

    return (
        f"# From the pxelinux config {image.source}.\n"
        f"name: {image.name}\n"
        "versions:\n"
        f"  {_q(VERSION)}:\n"
        f"    kernel: {artifact(image.kernel)}\n"
        f"    initrd: {artifact(image.initrd)}\n"
        f"    rootfs: {artifact(image.rootfs)}\n"
        f"    cmdline: {_q(image.cmdline)}\n"
    )


def render_files(
    result: Inference, images: list[ImportedImage], *, inputs: list[str]
) -> dict[str, str]:
    files = {"site.yaml": render_site(result, inputs=inputs)}
    for group in result.groups:
        files[f"groups/{group.name}.yaml"] = render_group(group)
    for image in images:
        files[f"images/{image.name}.yaml"] = render_image(image)
    return files


def check_files(files: dict[str, str]) -> None:
    """Load the rendered files as ``reconciler validate`` would; raise if they are invalid."""
    source = MemorySource({k: v.encode() for k, v in files.items()}, "import")
    try:
        load_inventory(source)
    except InventoryError as error:
        raise ImportFailure(
            Where("(generated inventory)"),
            f"the imported inventory would not be valid, so nothing was written:\n{error}",
        ) from None


def write_folder(out: Path, files: dict[str, str]) -> None:
    """Create ``out`` with ``files`` in one rename; refuse a folder that has content."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportFailure(
            Where(str(out)), "the output folder exists and is not empty; give a new folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        os.chmod(staging, 0o755)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
