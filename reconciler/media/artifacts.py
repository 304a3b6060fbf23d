"""Fetch an image's kernel, initramfs and rootfs for a live medium, checked by sha256.

A live medium boots without any network, so what it carries must be exactly
what the inventory names: each artifact is downloaded (or taken from a cache
folder keyed by its sha256) and its digest compared before it goes on the
medium. A failure names the image, the artifact and the URL, and leaves no
partial file behind.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from reconciler.media.scripts import MediaInputError

CHUNK = 1 << 20
TIMEOUT = 60
Progress = Callable[[int, int | None], None]  # bytes so far, total if known


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_verified(
    *,
    url: str,
    sha256: str,
    destination: Path,
    what: str,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """``url`` saved as ``destination`` if its sha256 matches; MediaInputError if not."""
    cached = cache / sha256 if cache is not None else None
    if cached is not None and cached.is_file() and sha256_file(cached) == sha256:
        shutil.copyfile(cached, destination)
        return destination
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer, partial.open("wb") as out:
            total = answer.length
            done = 0
            while chunk := answer.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise MediaInputError(
            f"{what}: cannot download {url}: {reason}; check that the URL is reachable "
            "from this machine (live media carry the image itself)"
        ) from None
    actual = digest.hexdigest()
    if actual != sha256:
        partial.unlink(missing_ok=True)
        raise MediaInputError(
            f"{what}: sha256 mismatch for {url}: the inventory says {sha256}, the download is "
            f"{actual}; fix the inventory's sha256 or the file behind the URL"
        )
    partial.replace(destination)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(destination, cached)
    return destination
