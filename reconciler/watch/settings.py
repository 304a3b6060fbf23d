"""Settings of the watch loop: the ``[watch]`` table of the runtime config.

``reconciler.config.RuntimeConfig`` holds it as ``watch``; how often and from
where the loop runs is defined here, beside the loop that uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from reconciler.config import RuntimeConfig

DriftMode = Literal["correct", "report"]


class WatchSettings(BaseModel):
    """How the loop notices new revisions, re-reads live state, and retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remote: str | None = Field(
        default=None,
        description="git URL to fetch from into a mirror under state_dir; "
        "unset: watch the local [source] repository's refs",
    )
    poll_interval: float = Field(default=60.0, gt=0, description="seconds between fetches")
    poll_jitter: float = Field(
        default=0.1, ge=0, le=1, description="fraction of poll_interval added at random"
    )
    fetch_timeout: float = Field(default=60.0, gt=0, description="seconds a fetch may take")
    credentials_file: Path | None = Field(
        default=None,
        description="file holding 'user:token' for an http(s) remote (in Kubernetes a mounted "
        "Secret), given to git through GIT_ASKPASS, so the token is in neither the URL nor "
        "the config. Relative: to the config file",
    )
    ssh_identity: Path | None = Field(
        default=None,
        description="SSH private key for an ssh:// or scp-like remote: git runs "
        "ssh -i <file> -o IdentitiesOnly=yes. Relative: to the config file",
    )
    ssh_known_hosts: Path | None = Field(
        default=None,
        description="known_hosts file holding the remote's host key, used with ssh_identity "
        "(StrictHostKeyChecking=yes); unset: ssh's own known_hosts files. "
        "Relative: to the config file",
    )
    local_poll_interval: float = Field(
        default=5.0,
        gt=0,
        description="seconds between ref checks of a local repository "
        "(a safety net behind file notifications)",
    )
    debounce: float = Field(default=0.05, ge=0, description="seconds of quiet closing a burst")
    debounce_max: float = Field(default=1.0, gt=0, description="a burst waits at most this long")
    drift_interval: float = Field(
        default=300.0, gt=0, description="seconds between re-reads of live state"
    )
    drift: dict[str, DriftMode] = Field(
        default_factory=dict, description='per target: "correct" (default) or "report"'
    )
    drift_default: DriftMode = Field(
        default="correct", description="drift mode of targets not named in drift"
    )
    rollout_interval: float = Field(
        default=5.0,
        gt=0,
        description="seconds between looks at the node agents' reports while an image "
        "rollout waits for nodes",
    )
    reports_url: str | None = Field(
        default=None,
        description="base URL of the reconciler serve that keeps the node agents' reports, "
        "when it runs elsewhere (the operator: serve's own pod): each rollout pass pulls "
        "GET <url>/reports; unset: the reports in state_dir/reports, as serve writes them "
        "beside watch",
    )
    reports_token_file: Path | None = Field(
        default=None,
        description="file holding the token serve's GET /reports asks for ([serve] "
        "reports_token_file). Relative: to the config file",
    )
    reports_timeout: float = Field(
        default=5.0, gt=0, description="seconds a pull of the node reports may take"
    )
    backoff_initial: float = Field(default=1.0, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(default=300.0, gt=0, description="retry delay cap, seconds")
    backoff_factor: float = Field(
        default=2.0, ge=1, description="each retry waits this much longer"
    )
    backoff_jitter: float = Field(default=0.2, ge=0, le=1, description="random +/- fraction")
    force: bool = Field(default=False, description="apply plans the safety check refuses")
    verify_signatures: Literal["none", "ssh", "gpg"] = Field(
        default="none",
        description="apply only commits signed by a trusted key (ssh: allowed_signers, "
        "gpg: the keys in gnupghome); a refused commit changes nothing",
    )
    allowed_signers: Path | None = Field(
        default=None, description="SSH allowed-signers file (verify_signatures = 'ssh')"
    )
    gnupghome: Path | None = Field(
        default=None, description="GnuPG home with the trusted keys (verify_signatures = 'gpg')"
    )
    webhook_secret_file: Path | None = Field(
        default=None, description="file holding the webhook secret (GitHub, GitLab, HMAC)"
    )

    def drift_mode(self, target: str) -> DriftMode:
        return self.drift.get(target, self.drift_default)


def load_watch_config(path: Path) -> tuple[RuntimeConfig, WatchSettings]:
    """The runtime config and its ``[watch]`` table from one TOML file."""
    from reconciler.config import load_config  # the config module imports this one

    config = load_config(path)
    return config, config.watch
