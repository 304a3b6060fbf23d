"""The ``Site`` custom resource's spec, and how it becomes the runtime config ``watch`` uses.

A Site says what a ``reconciler.toml`` says, in Kubernetes terms: the git
source (with a Secret for credentials and one for allowed signers), the
intervals, the boot settings and the targets (with Secrets for OMAPI and TSIG
keys). The models reuse the runtime config's own (``BootConfig``) so the CRD's
schema and the TOML file cannot drift apart; ``to_runtime_config`` turns a
spec plus the files its Secrets were written to into a ``RuntimeConfig``, which
the same engine, targets and safety rules as ``reconciler watch`` then run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.config import BootConfig, RuntimeConfig

GROUP = "reconciler.dev"
VERSION = "v1alpha1"
PLURAL = "sites"
KIND = "Site"


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class SecretKeyRef(_Spec):
    """A key of a Secret in the Site's namespace."""

    name: str = Field(min_length=1, description="Secret name")
    key: str = Field(min_length=1, description="key inside the Secret")


class SecretName(_Spec):
    """A whole Secret in the Site's namespace; the keys it must hold are documented per use."""

    name: str = Field(min_length=1, description="Secret name (labelled reconciler.dev/secret)")


class SecretFiles(_Spec):
    """A Secret whose keys become files that target settings name."""

    name: str = Field(min_length=1, description="Secret name (labelled reconciler.dev/secret)")
    items: dict[str, str] = Field(
        default_factory=dict,
        description="setting name -> Secret key: the key's value is written to a 0600 file "
        "and the setting points at it (e.g. key_file: omapi-key)",
    )


class Verify(_Spec):
    """Which commits are trusted: SSH signatures checked against allowed signers."""

    mode: Literal["none", "ssh"] = Field(default="ssh", description="signature check")
    allowed_signers: SecretKeyRef | None = Field(
        default=None, description="Secret key holding an SSH allowed-signers file"
    )


class Source(_Spec):
    """Where the inventory is."""

    url: str = Field(min_length=1, description="git URL the operator clones and fetches")
    ref: str = Field(default="main", min_length=1, description="branch, tag or commit")
    path: str = Field(default="", description="inventory folder inside the repository")
    secret_ref: SecretName | None = Field(
        default=None,
        description="Secret with git credentials, as Flux's GitRepository: username and "
        "password (a token) for an http(s) URL; identity (SSH private key) and known_hosts "
        "for an ssh URL",
    )
    verify: Verify | None = Field(default=None, description="require signed commits")


class SiteTarget(_Spec):
    """One target, as in ``[targets.<name>]`` of the runtime config."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="target name")
    type: str = Field(min_length=1, description="backend: dhcp-omapi, dns-rfc2136, ...")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="the backend's settings, exactly as in reconciler.toml",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    secret_ref: SecretFiles | None = Field(
        default=None, description="Secret whose keys become the key files the settings name"
    )


class Reports(_Spec):
    """Where the node agents' reports are: the ``reconciler serve`` they report to."""

    url: str = Field(
        pattern=r"^https?://",
        description="base URL of reconciler serve (deploy/kubernetes/serve.yaml); each "
        "rollout pass pulls GET <url>/reports",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the token of serve's [serve] reports_token_file",
    )
    timeout: float = Field(default=5.0, gt=0, description="seconds a pull may take")


class SiteSpec(_Spec):
    """``spec`` of a Site."""

    source: Source
    interval: float = Field(default=60.0, gt=0, description="seconds between fetches")
    drift_interval: float = Field(
        default=300.0, gt=0, description="seconds between re-reads of live state"
    )
    suspend: bool = Field(default=False, description="true: keep status fresh, write nothing")
    max_change_fraction: float = Field(
        default=0.3, gt=0, le=1, description="safety: share of owned objects one pass may change"
    )
    boot: BootConfig = Field(default_factory=BootConfig)
    targets: list[SiteTarget] = Field(default_factory=list)
    reports: Reports | None = Field(
        default=None,
        description="the serve that keeps the node agents' reports: without it no rollout "
        "of an image change gets past its first wave",
    )
    deletion_policy: Literal["orphan", "prune"] = Field(
        default="orphan",
        description="on Site deletion: orphan leaves live objects; prune removes what it owns",
    )


def to_runtime_config(
    spec: SiteSpec,
    *,
    work_dir: Path,
    secret_files: dict[str, dict[str, Path]],
    allowed_signers: Path | None,
    git_files: dict[str, Path] | None = None,
    reports_token: Path | None = None,
) -> RuntimeConfig:
    """The runtime config of one Site: its repository mirror, its state dir, its targets.

    ``secret_files`` maps a target name to setting name -> the file its Secret key
    was written to; ``git_files`` maps a ``[watch]`` setting (credentials_file,
    ssh_identity, ssh_known_hosts) to the file holding the source's credentials;
    ``reports_token`` is the file holding the token of serve's ``GET /reports``.
    Raises pydantic's ValidationError on settings that do not fit.
    """
    targets: dict[str, dict[str, Any]] = {}
    for target in spec.targets:
        settings = dict(target.settings)
        settings.update({k: str(v) for k, v in secret_files.get(target.name, {}).items()})
        targets[target.name] = {"type": target.type, **settings}
    watch: dict[str, Any] = {
        "remote": spec.source.url,
        "poll_interval": spec.interval,
        "drift_interval": spec.drift_interval,
        **(git_files or {}),
    }
    if spec.reports is not None:
        watch["reports_url"] = spec.reports.url
        watch["reports_timeout"] = spec.reports.timeout
        watch["reports_token_file"] = reports_token
    if spec.source.verify is not None and spec.source.verify.mode == "ssh":
        watch["verify_signatures"] = "ssh"
        watch["allowed_signers"] = allowed_signers
    return RuntimeConfig.model_validate(
        {
            # The watch loop fetches [watch] remote into a mirror under state_dir.
            "source": {"repo": work_dir, "rev": spec.source.ref, "subdir": spec.source.path},
            "state_dir": work_dir / "state",
            "boot": spec.boot.model_dump(),
            "targets": targets,
            "watch": watch,
            "max_change_fraction": spec.max_change_fraction,
            "base_dir": work_dir,
        }
    )
