"""scripts/setup.sh prepares a fresh Debian 12 or 13 machine: the packages it names exist
here and are installed, venv creation is covered, and apt waits for other installers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / "scripts/setup.sh"


def debian_packages() -> list[str]:
    block = re.search(r"debian_packages=\(\n(.*?)\n\)", SETUP.read_text(), re.S)
    assert block is not None, "setup.sh lists its Debian packages in debian_packages=( ... )"
    return block.group(1).split()


def test_setup_installs_what_a_venv_and_the_tests_need() -> None:
    packages = debian_packages()
    assert "python3-venv" in packages  # Debian's python3 cannot `-m venv` without it
    assert "gnupg" in packages  # the verify_signatures tests sign commits with gpg
    assert "python3 -m venv .venv" in SETUP.read_text()


def test_every_listed_package_is_installed_on_this_machine() -> None:
    """setup.sh ran before the tests (scripts/test.sh): a name unknown to this release
    would have failed it, and a package it forgot would be missing here."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *debian_packages()],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        line.split()[0] for line in result.stdout.splitlines() if "install ok installed" in line
    }
    assert set(debian_packages()) - installed == set()


def test_every_apt_call_waits_for_the_dpkg_lock() -> None:
    lines = [line.split("#")[0] for line in SETUP.read_text().splitlines()]
    assert "apt_get=(apt-get -o DPkg::Lock::Timeout=900)" in [line.strip() for line in lines]
    bare = [line for line in lines if "apt-get" in line and "apt_get=" not in line]
    assert bare == [], "call apt through ${apt_get[@]}, which waits for the dpkg lock"
    assert sum('"${apt_get[@]}" ' in line for line in lines) >= 2  # update and install
