"""A copy of inventory-example with a runtime config that uses only the file targets."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.engine import Engine

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"

FILE_TARGETS = """\
state_dir = "state"
[source]
path = "inventory"
[boot]
http_url = "http://10.23.45.2:8080"
[targets.dhcp]
type = "dhcp-file"
path = "out/dhcpd.hosts.conf"
[targets.dns]
type = "dns-zonefile"
directory = "out/zones"
mname = "ns1.cluster.example."
rname = "hostmaster.cluster.example."
nameservers = ["ns1.cluster.example."]
[targets.boot]
type = "bootfiles"
directory = "out/tftp"
[targets.images]
type = "node-images"
directory = "out/http"
"""


@dataclass
class Site:
    root: Path

    @property
    def inventory(self) -> Path:
        return self.root / "inventory"

    @property
    def config(self) -> Path:
        return self.root / "reconciler.toml"

    def engine(self) -> Engine:
        return Engine(load_config(self.config))

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.inventory / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new))

    def files(self) -> dict[str, str]:
        out = self.root / "out"
        return {
            str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()
        }


@pytest.fixture
def site(tmp_path: Path) -> Site:
    shutil.copytree(EXAMPLE, tmp_path / "inventory")
    (tmp_path / "reconciler.toml").write_text(FILE_TARGETS)
    return Site(tmp_path)
