"""The ``[serve]`` table of the runtime config: how ``reconciler serve`` listens and registers.

``reconciler.config.RuntimeConfig`` holds it as ``serve``; it is defined here,
beside the service that uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from reconciler.config import RuntimeConfig


class ServeSettings(BaseModel):
    """Listening address, audit log, the registration branch and commit author, abuse limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port to listen on")
    audit_log: Path = Field(
        default=Path("registration-audit.jsonl"),
        description="JSON lines file of every registration decision (relative: to state_dir)",
    )
    branch: str | None = Field(
        default=None,
        description="branch registrations are committed to (default: [source] rev)",
    )
    signing_key: Path | None = Field(
        default=None,
        description="SSH private key (mode 0600, no passphrase) that signs registration "
        "commits (git's gpg.format=ssh), so watch with verify_signatures = 'ssh' accepts "
        "them: put its public key in allowed_signers. Relative: to the config file",
    )
    author_name: str = Field(
        default="reconciler registration",
        min_length=1,
        description="author of registration commits",
    )
    author_email: str = Field(
        default="reconciler@localhost", min_length=3, description="its e-mail address"
    )
    rate_limit_per_minute: float = Field(
        default=30.0, gt=0, description="registration requests per source address per minute"
    )
    rate_limit_burst: int = Field(
        default=10, ge=1, description="requests a source address may make at once"
    )
    rate_limit_global_per_minute: float = Field(
        default=120.0,
        gt=0,
        description="registration requests per minute from all addresses together "
        "(caps how fast git can be written to, however many machines ask)",
    )
    rate_limit_global_burst: int = Field(
        default=60, ge=1, description="requests all addresses together may make at once"
    )
    audit_log_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=4096,
        description="size at which the audit log is rotated to <audit_log>.1, .2, ...",
    )
    audit_log_backups: int = Field(
        default=5, ge=0, le=100, description="rotated audit logs kept (0: none)"
    )
    max_body_bytes: int = Field(
        default=4096, ge=64, le=1_048_576, description="largest request body accepted"
    )
    register_with_get: bool = Field(
        default=True,
        description="also accept GET /register?mac=... (iPXE built without PARAM_CMD cannot POST)",
    )
    report_rate_per_minute: float = Field(
        default=12.0, gt=0, description="node agent reports per node address per minute"
    )
    report_rate_burst: int = Field(
        default=6, ge=1, description="node agent reports a node address may send at once"
    )
    max_report_bytes: int = Field(
        default=65536, ge=1024, le=1_048_576, description="largest node agent report accepted"
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        description="open connections at most, all clients together; more are closed at once "
        "(keep it under the service's LimitNOFILE)",
    )
    max_connections_per_address: int = Field(
        default=64, ge=1, description="open connections at most from one client address"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a new connection has to send its request head"
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="seconds a client has to send a request body"
    )
    keepalive_timeout: float = Field(
        default=15.0, gt=0, description="seconds an idle keep-alive connection stays open"
    )
    mirror_url: str | None = Field(
        default=None,
        description="git URL serve fetches the accepted commit from into a mirror of its own "
        "(state_dir/serve/mirror.git), when it cannot read the git folder accepted.json names "
        "(a pod beside the Kubernetes operator); only that exact commit is read, never a head",
    )
    push_url: str | None = Field(
        default=None,
        description="git URL registration commits are pushed to (plain push, never forced; "
        "on a race serve fetches and enrols again on the new head). Default: mirror_url, "
        "else [watch] remote, the repository the site is applied from; with neither, "
        "registrations are committed to the local [source] repo. Credentials as for "
        "[watch] remote: https://user:token@... (given to git through GIT_ASKPASS) or "
        "push_credentials_file",
    )
    push_credentials_file: Path | None = Field(
        default=None,
        description="file holding 'user:token' for an http(s) push_url (in Kubernetes the "
        "mounted git-credentials Secret), so the token is in neither the URL nor the config. "
        "Relative: to the config file",
    )
    mirror_credentials_file: Path | None = Field(
        default=None,
        description="file holding 'user:token' for an http(s) mirror_url of a private "
        "repository (in Kubernetes the mounted git-credentials Secret: push-token can read "
        "too), given to git through GIT_ASKPASS. Relative: to the config file",
    )
    ssh_identity: Path | None = Field(
        default=None,
        description="SSH private key for an ssh:// or scp-like mirror_url and push_url (the "
        "Site's deploy key: in Kubernetes the git-credentials Secret's identity), used as "
        "[watch] ssh_identity is. Relative: to the config file",
    )
    ssh_known_hosts: Path | None = Field(
        default=None,
        description="known_hosts file holding the git host's key, used with ssh_identity "
        "(StrictHostKeyChecking=yes); unset: ssh's own known_hosts files. "
        "Relative: to the config file",
    )
    push_timeout: float = Field(
        default=60.0, gt=0, description="seconds one fetch or push of a registration may take"
    )
    accepted_file: Path | None = Field(
        default=None,
        description="the accepted-revision record to follow (default: state_dir/accepted.json; "
        "relative: to state_dir); in Kubernetes the mounted ConfigMap site-<name>-accepted",
    )
    reports_token_file: Path | None = Field(
        default=None,
        description="file holding the token that GET /reports asks for ('Bearer <token>'): "
        "the node agents' last reports, which the operator pulls for its rollouts (in "
        "Kubernetes the mounted Secret serve-reports); unset: GET /reports is off. "
        "Relative: to the config file",
    )
    assignments_file: Path | None = Field(
        default=None,
        description="the rollout assignments to follow: the image version each node runs "
        "while its group rolls out in waves (default: state_dir/rollouts/assignments.json; "
        "relative: to state_dir; a .gz name is read compressed); in Kubernetes "
        "assignments.json.gz of the mounted ConfigMap site-<name>-accepted",
    )
    refresh_seconds: float = Field(
        default=2.0,
        ge=0,
        description="how often, at most, the inventory revision is checked for changes",
    )


def load_serve_config(path: Path) -> tuple[RuntimeConfig, ServeSettings]:
    """The runtime config and its ``[serve]`` table from one TOML file."""
    from reconciler.config import load_config  # the config module imports this one

    config = load_config(path)
    return config, config.serve
