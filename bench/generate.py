"""Generate large, valid inventories for benchmarks: N hosts in groups of 2,500.

Each group gets its own /20 subnet, an unregistered range at its top, and the
shared image; every tenth host has an alias and every hundredth a canary image.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

HOSTS_PER_GROUP = 2500


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def generate(folder: Path, hosts: int, *, domain: str = "bench.example") -> Path:
    """Write an inventory of ``hosts`` hosts into ``folder`` and return it."""
    (folder / "groups").mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "site.yaml").write_text(f"domain: {domain}\nttl: 300\n")
    versions = []
    for version in ("1.0", "1.1"):
        base = f"http://boot.{domain}/compute/{version}"
        versions.append(
            f'  "{version}":\n'
            f'    kernel: {{url: "{base}/vmlinuz", sha256: "{_sha("k" + version)}"}}\n'
            f'    initrd: {{url: "{base}/initrd.img", sha256: "{_sha("i" + version)}"}}\n'
            f'    rootfs: {{url: "{base}/root.squashfs", sha256: "{_sha("r" + version)}"}}\n'
            f'    cmdline: "console=ttyS0 quiet"\n'
        )
    image_text = "name: compute\nversions:\n" + "".join(versions)
    (folder / "images" / "compute.yaml").write_text(image_text)
    remaining, group = hosts, 0
    while remaining > 0:
        count = min(remaining, HOSTS_PER_GROUP)
        second, third = 100 + group // 16, (group % 16) * 16
        lines = [
            f"name: rack{group:02d}",
            f"subnet: 10.{second}.{third}.0/20",
            f"gateway: 10.{second}.{third}.1",
            f'hostname: "r{group:02d}n%04d"',
            f"first_address: 10.{second}.{third}.1",
            f"unregistered_range: 10.{second}.{third + 15}.1-10.{second}.{third + 15}.250",
            "image: compute@1.0",
            "hosts:",
        ]
        for index in range(1, count + 1):
            serial = group * HOSTS_PER_GROUP + index
            mac = f"52:54:{group:02x}:{(serial >> 16) & 0xFF:02x}:{(serial >> 8) & 0xFF:02x}:" + (
                f"{serial & 0xFF:02x}"
            )
            lines.append(f"  - index: {index}")
            lines.append(f'    mac: "{mac}"')
            if index % 10 == 0:
                lines.append(f"    aliases: [r{group:02d}a{index:04d}]")
            if index % 100 == 0:
                lines.append("    image: compute@1.1")
        (folder / "groups" / f"rack{group:02d}.yaml").write_text("\n".join(lines) + "\n")
        remaining -= count
        group += 1
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hosts", type=int, default=10_000)
    args = parser.parse_args()
    generate(args.folder, args.hosts)
    print(f"wrote {args.hosts} hosts to {args.folder}")


if __name__ == "__main__":
    main()
