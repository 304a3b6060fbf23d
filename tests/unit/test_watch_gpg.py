"""verify_signatures = "gpg" with the real gpg: a commit signed by a trusted key is
applied; an unsigned one, or one signed by a key that is not in gnupghome, is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.sandbox.site import git
from reconciler.watch.loop import WatchLoop
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]


def gnupg_home(name: str) -> Iterator[tuple[Path, str]]:
    """A throwaway GNUPGHOME (short path: gpg-agent's socket lives in it) with one key."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg (gnupg) is not installed")
    home = Path(tempfile.mkdtemp(prefix="gpg", dir="/tmp"))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
             f"{name} <{name}@example.invalid>", "ed25519", "sign", "never"],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        listing = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            env=env, check=True, capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        yield home, fingerprint
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def trusted() -> Iterator[tuple[Path, str]]:
    yield from gnupg_home("trusted")


@pytest.fixture
def stranger() -> Iterator[tuple[Path, str]]:
    yield from gnupg_home("stranger")


def signed_commit(site: WatchSite, key: tuple[Path, str], message: str) -> str:
    home, fingerprint = key
    git(site.repo, "add", "-A")
    subprocess.run(
        ["git", "-C", str(site.repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
         "-c", f"user.signingkey={fingerprint}",
         "-c", "gpg.format=openpgp", "commit", "-S", "-q", "-m", message],
        env={**os.environ, "GNUPGHOME": str(home)}, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return git(site.repo, "rev-parse", "HEAD")


def test_gpg_signed_commits_only(
    watch_site: WatchSite,
    running: Start,
    trusted: tuple[Path, str],
    stranger: tuple[Path, str],
) -> None:
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:b1"')
    signed = signed_commit(watch_site, trusted, "signed by the site's key")
    loop = running(watch_site.loop(verify_signatures="gpg", gnupghome=trusted[0]))
    wait_status(loop, lambda s: ready(s) and s.applied_revision == signed)
    assert "52:54:00:12:34:b1" in watch_site.out("dhcpd.hosts.conf")

    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:b1"', '"52:54:00:12:34:b2"')
    foreign = signed_commit(watch_site, stranger, "signed by a key the site does not trust")
    status = wait_status(loop, lambda s: s.attempted_revision == foreign)
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.reason == "UntrustedSignature"
    assert foreign[:12] in stalled.message and status.applied_revision == signed

    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:b2"', '"52:54:00:12:34:b3"')
    unsigned = watch_site.commit("not signed at all")
    status = wait_status(loop, lambda s: s.attempted_revision == unsigned)
    assert status.condition("Stalled").reason == "UntrustedSignature"  # type: ignore[union-attr]
    assert "52:54:00:12:34:b1" in watch_site.out("dhcpd.hosts.conf")

    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:b3"', '"52:54:00:12:34:b4"')
    fixed = signed_commit(watch_site, trusted, "signed again")
    wait_status(loop, lambda s: ready(s) and s.applied_revision == fixed)
    assert "52:54:00:12:34:b4" in watch_site.out("dhcpd.hosts.conf")
