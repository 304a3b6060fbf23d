"""The watch loop with file targets: reacting to commits, bad revisions, signatures, drift."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.sandbox.site import git
from reconciler.watch.loop import WatchLoop
from reconciler.watch.service import build_loop
from reconciler.watch.settings import WatchSettings
from reconciler.watch.status import Status
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
HOSTS = "dhcpd.hosts.conf"


def test_first_pass_applies_head_and_reports_ready(watch_site: WatchSite, running: Start) -> None:
    head = git(watch_site.repo, "rev-parse", "HEAD")
    loop = running(watch_site.loop())
    status = wait_status(loop, lambda s: ready(s) and s.applied_revision == head)
    assert "node010" in watch_site.out(HOSTS)
    assert {c.type: c.status for c in status.conditions} == {
        "Ready": True, "Reconciling": False, "Stalled": False, "Degraded": False,
    }  # fmt: skip
    assert all(t.ok and t.revision == head for t in status.targets.values())
    assert set(status.targets) == {"dhcp", "dns", "boot", "images"}


def test_a_commit_is_applied_without_a_restart(watch_site: WatchSite, running: Start) -> None:
    loop = running(watch_site.loop())
    wait_status(loop, ready)
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    head = watch_site.commit("new NIC for node011")
    wait_status(loop, lambda s: s.applied_revision == head)  # latency: bench/bench_watch.py
    assert "52:54:00:12:34:bb" in watch_site.out(HOSTS)


def test_invalid_revision_is_never_applied(watch_site: WatchSite, running: Start) -> None:
    loop = running(watch_site.loop())
    good = git(watch_site.repo, "rev-parse", "HEAD")
    wait_status(loop, ready)
    before = {p: p.read_bytes() for p in (watch_site.root / "out").rglob("*") if p.is_file()}
    # One valid change and one invalid one in the same commit: neither may be applied.
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"not-a-mac"')
    bad = watch_site.commit("broken MAC")
    status = wait_status(loop, lambda s: s.attempted_revision == bad and not ready(s))
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.status and stalled.reason == "InvalidRevision"
    assert bad in stalled.message and "not-a-mac" in stalled.message
    assert good[:12] in stalled.message  # the revision still in force
    assert any("groups/compute.yaml" in e for e in status.errors)
    assert status.applied_revision == good and status.good_revision == good
    after = {p: p.read_bytes() for p in (watch_site.root / "out").rglob("*") if p.is_file()}
    assert after == before
    # The fix is applied, and the stall clears.
    watch_site.edit("groups/compute.yaml", '"not-a-mac"', '"52:54:00:12:34:0c"')
    fixed = watch_site.commit("fix MAC")
    status = wait_status(loop, lambda s: ready(s) and s.applied_revision == fixed)
    assert status.errors == [] and "52:54:00:12:34:bb" in watch_site.out(HOSTS)
    stalled = status.condition("Stalled")
    assert stalled is not None and not stalled.status


def test_restart_after_bad_head_keeps_last_good(watch_site: WatchSite, running: Start) -> None:
    good = git(watch_site.repo, "rev-parse", "HEAD")
    loop = running(watch_site.loop())
    wait_status(loop, ready)
    loop.stop()
    watch_site.edit("site.yaml", "domain:", "domain: [")
    bad = watch_site.commit("broken YAML")
    (watch_site.root / "out" / HOSTS).unlink()  # drift while the loop was down
    again = running(watch_site.loop())
    hosts = watch_site.root / "out" / HOSTS
    status = wait_status(again, lambda s: s.attempted_revision == bad and hosts.exists())
    assert status.good_revision == good
    assert "node010" in watch_site.out(HOSTS)  # the last good revision was re-applied


def test_drift_is_corrected_or_only_reported(watch_site: WatchSite, running: Start) -> None:
    loop = running(watch_site.loop(drift_interval=0.2, drift={"dns": "report"}))
    wait_status(loop, ready)
    hosts = watch_site.root / "out" / HOSTS
    zones = sorted((watch_site.root / "out" / "zones").iterdir())
    original_hosts, zone = hosts.read_text(), zones[0]
    hosts.write_text("# emptied by hand\n")
    zone.write_text(zone.read_text() + "; hand edit\n")
    zone.unlink()
    status = wait_status(
        loop, lambda s: s.targets["dns"].pending > 0 and hosts.read_text() == original_hosts
    )
    assert not zone.exists()  # reported, not corrected
    assert status.targets["dhcp"].pending == 0


def test_signed_commits_only(watch_site: WatchSite, running: Start, tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    key = tmp_path / "signer"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", str(key)],
        check=True, timeout=30,
    )  # fmt: skip
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        f'signer@example.invalid namespaces="git" {key.with_suffix(".pub").read_text()}'
    )
    sign = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}")
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:b1"')
    git(watch_site.repo, "add", "-A")
    git(watch_site.repo, *sign, "commit", "-S", "-q", "-m", "signed change")
    signed = git(watch_site.repo, "rev-parse", "HEAD")
    loop = running(watch_site.loop(verify_signatures="ssh", allowed_signers=signers))
    wait_status(loop, lambda s: ready(s) and s.applied_revision == signed)
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:b1"', '"52:54:00:12:34:b2"')
    unsigned = watch_site.commit("unsigned change")
    status = wait_status(loop, lambda s: s.attempted_revision == unsigned)
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.reason == "UntrustedSignature"
    assert unsigned in stalled.message and status.applied_revision == signed
    assert "52:54:00:12:34:b1" in watch_site.out(HOSTS)


def test_signed_commit_helper_accepts_amended_signature(watch_site: WatchSite) -> None:
    """verify_commit with no key configured explains what is missing."""
    from reconciler.watch.sources import verify_commit

    head = git(watch_site.repo, "rev-parse", "HEAD")
    assert verify_commit(watch_site.repo, head, mode="none") is None
    assert "allowed_signers" in (verify_commit(watch_site.repo, head, mode="ssh") or "")
    reason = verify_commit(watch_site.repo, head, mode="gpg", gnupghome=watch_site.root)
    assert reason is not None and head[:12] in reason


def test_remote_is_fetched_into_a_mirror(watch_site: WatchSite, running: Start) -> None:
    remote = watch_site.root / "remote.git"
    git(watch_site.root, "clone", "-q", "--bare", str(watch_site.repo), str(remote))
    first = git(remote, "rev-parse", "main")
    loop = running(watch_site.loop(remote=str(remote), poll_interval=0.3, poll_jitter=0.1))
    wait_status(loop, lambda s: ready(s) and s.applied_revision == first)
    assert (watch_site.root / "state" / "watch" / "mirror.git" / "HEAD").exists()
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:cc"')
    pushed = watch_site.commit("pushed change")
    git(watch_site.repo, "push", "-q", str(remote), "main")
    wait_status(loop, lambda s: s.applied_revision == pushed)
    assert "52:54:00:12:34:cc" in watch_site.out(HOSTS)


def test_webhook_triggers_fetch_at_once(watch_site: WatchSite, running: Start) -> None:
    remote = watch_site.root / "remote.git"
    git(watch_site.root, "clone", "-q", "--bare", str(watch_site.repo), str(remote))
    loop = running(watch_site.loop(remote=str(remote), poll_interval=3600))
    wait_status(loop, ready)
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:dd"')
    pushed = watch_site.commit("pushed change")
    git(watch_site.repo, "push", "-q", str(remote), "main")
    loop.trigger.fire("webhook")
    wait_status(loop, lambda s: s.applied_revision == pushed)  # the next poll is in an hour


def test_unreachable_remote_keeps_last_good(watch_site: WatchSite, running: Start) -> None:
    remote = watch_site.root / "remote.git"
    git(watch_site.root, "clone", "-q", "--bare", str(watch_site.repo), str(remote))
    first = git(remote, "rev-parse", "main")
    loop = running(watch_site.loop(remote=str(remote), poll_interval=0.2, backoff_initial=0.05))
    wait_status(loop, lambda s: ready(s) and s.applied_revision == first)
    moved = remote.with_name("gone.git")
    remote.rename(moved)
    status = wait_status(loop, lambda s: not ready(s))
    condition = status.condition("Ready")
    assert condition is not None and condition.reason == "SourceUnavailable"
    assert first[:12] in condition.message and status.applied_revision == first
    reconciling = status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "RetryPending"
    moved.rename(remote)
    wait_status(loop, ready)


def test_down_target_backs_off_while_others_go_on(watch_site: WatchSite, running: Start) -> None:
    blocker = watch_site.root / "out" / "zones"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the zone folder should be\n")
    loop = running(watch_site.loop(backoff_initial=0.05, backoff_max=0.2))
    status = wait_status(loop, lambda s: "dns" in s.targets and s.targets["dns"].failures >= 3)
    assert status.targets["dhcp"].ok and "node010" in watch_site.out(HOSTS)
    assert not ready(status)
    blocker.unlink()
    status = wait_status(loop, ready)
    assert status.targets["dns"].ok and status.targets["dns"].failures == 0


def test_metrics_count_passes_and_changes(watch_site: WatchSite, running: Start) -> None:
    loop = running(watch_site.loop())
    wait_status(loop, ready)
    body, _ = loop.metrics.render()
    text = body.decode()
    assert 'reconciler_passes_total{result="success"}' in text
    assert 'reconciler_changes_applied_total{action="create",target="dhcp"}' in text
    assert "reconciler_last_success_timestamp_seconds" in text
    assert "reconciler_revision_info{applied=" in text


def test_build_loop_needs_a_git_source(tmp_path: Path) -> None:
    from reconciler.config import ConfigError, RuntimeConfig

    config = RuntimeConfig.model_validate({"source": {"path": str(tmp_path)}})
    with pytest.raises(ConfigError, match="watch needs a git source"):
        build_loop(config, WatchSettings())


def test_a_revision_too_large_for_one_target_reaches_no_target(
    watch_site: WatchSite, running: Start
) -> None:
    """The change threshold refuses the revision whole: a small target (dhcp-file owns
    only 8 hosts, under the 10 the check needs) must not apply its part while DNS and
    the boot files refuse theirs, or the site would be half on each revision."""
    loop = running(watch_site.loop())
    wait_status(loop, ready)
    group = watch_site.repo / "groups" / "compute.yaml"
    text = group.read_text()
    group.write_text(text[: text.index("hosts:")] + "hosts: []\n")
    big = watch_site.commit("remove every compute host")

    def stalled_on_big(s: Status) -> bool:
        stalled = s.condition("Stalled")
        return s.attempted_revision == big and stalled is not None and bool(stalled.status)

    status = wait_status(loop, stalled_on_big)
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.reason == "PlanRefused"
    assert "node010" in watch_site.out(HOSTS)  # the small target kept the old revision too
    assert status.targets["dhcp"].revision != big
