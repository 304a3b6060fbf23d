"""``reconciler image add``: record a built image version in ``images/<name>.yaml``.

Computes the sha256 of the kernel, initrd and rootfs files and adds the
version with their URLs, editing the file the way a person would: ruamel.yaml
round-trip keeps comments, key order and quoting, and the new entry takes the
layout of the existing ones (one flow mapping per artifact, the version key in
double quotes so ``2024.10`` stays a string). The edited file is checked
against the inventory's image model before it replaces the old one.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from reconciler.config import describe_errors
from reconciler.inventory.edit import yaml_like
from reconciler.inventory.yamlfile import YamlProblem, parse_yaml
from reconciler.model.inventory import Image

ARTIFACTS = ("kernel", "initrd", "rootfs")
CHUNK = 1 << 20


class VersionError(Exception):
    """The version cannot be added; the message says what to fix."""


@dataclass(frozen=True)
class ArtifactFile:
    """A built file and the URL nodes will fetch it from."""

    path: Path
    url: str


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def artifact_url(path: Path, *, url: str | None, url_base: str | None) -> str:
    """The explicit ``url``, or ``url_base`` joined with the file's name."""
    if url:
        return url
    if not url_base:
        raise VersionError(f"no URL for {path.name}: give --url-base or its own --*-url")
    return urljoin(url_base if url_base.endswith("/") else url_base + "/", path.name)


def _flow(url: str, sha256: str) -> CommentedMap:
    entry = CommentedMap()
    entry["url"] = DoubleQuotedScalarString(url)
    entry["sha256"] = DoubleQuotedScalarString(sha256)
    entry.fa.set_flow_style()
    return entry


def add_version(
    text: str,
    *,
    name: str,
    version: str,
    artifacts: dict[str, tuple[str, str]],
    cmdline: str | None,
    replace: bool = False,
) -> str:
    """``text`` (an image file, or '' for a new one) with ``version`` added.

    ``artifacts`` maps kernel/initrd/rootfs to (url, sha256); ``cmdline`` None
    copies the newest existing version's command line.
    """
    yaml: YAML = yaml_like(text) if text.strip() else yaml_like("")
    data = yaml.load(text) if text.strip() else None
    if data is None:
        data = CommentedMap()
        data["name"] = name
        data["versions"] = CommentedMap()
    if not isinstance(data, CommentedMap) or not isinstance(data.get("versions"), CommentedMap):
        raise VersionError("the image file must be a mapping with a 'versions' mapping")
    versions: CommentedMap = data["versions"]
    if version in versions and not replace:
        raise VersionError(
            f"version {version!r} is already in the file; versions are immutable "
            "(pick a new version, or pass --replace to overwrite it)"
        )
    if cmdline is None:
        previous = [v for v in versions.values() if isinstance(v, dict)]
        cmdline = str(previous[-1].get("cmdline", "")) if previous else ""
    entry = CommentedMap()
    for kind in ARTIFACTS:
        entry[kind] = _flow(*artifacts[kind])
    entry["cmdline"] = DoubleQuotedScalarString(cmdline)
    versions[DoubleQuotedScalarString(version)] = entry
    stream = io.StringIO()
    yaml.dump(data, stream)
    edited = stream.getvalue()
    _check(edited, name)
    return edited


def _check(text: str, name: str) -> None:
    try:
        image = Image.model_validate(parse_yaml(text))
    except YamlProblem as problem:
        raise VersionError(f"the edited file would not parse: {problem.message}") from None
    except ValidationError as error:
        raise VersionError(f"the edited file would be invalid: {describe_errors(error)}") from None
    if image.name != name:
        raise VersionError(f"the file says name: {image.name!r}, but it is {name}.yaml")


def add_version_file(
    image_file: Path,
    *,
    version: str,
    files: dict[str, ArtifactFile],
    cmdline: str | None,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Hash ``files``, add ``version`` to ``image_file`` (created if missing); the sha256s."""
    for kind, artifact in files.items():
        if not artifact.path.is_file():
            raise VersionError(f"--{kind} {artifact.path}: no such file")
    text = image_file.read_text() if image_file.exists() else ""
    digests = {kind: sha256_file(files[kind].path, progress) for kind in ARTIFACTS}
    edited = add_version(
        text,
        name=image_file.name.removesuffix(".yaml"),
        version=version,
        artifacts={kind: (files[kind].url, digests[kind]) for kind in ARTIFACTS},
        cmdline=cmdline,
        replace=replace,
    )
    image_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = image_file.with_name(f".{image_file.name}.tmp")
    tmp.write_text(edited)
    os.replace(tmp, image_file)
    return digests
