"""Watch loop parts: debounce, backoff, webhook signatures, status store and settings."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from pathlib import Path

import pytest

from reconciler.config import ConfigError
from reconciler.watch.backoff import Backoff, RetryState
from reconciler.watch.debounce import Trigger
from reconciler.watch.settings import WatchSettings, load_watch_config
from reconciler.watch.status import Status, StatusStore, TargetStatus, render_status_text
from reconciler.watch.webhooks import verify_github, verify_gitlab, verify_hmac

SECRET = b"s3cret-webhook"
BODY = b'{"ref": "refs/heads/main"}'


# -- debounce ---------------------------------------------------------------


def test_burst_is_one_pass_with_all_reasons() -> None:
    trigger = Trigger(window=0.05, max_delay=60.0)
    for reason in ("ref-change", "ref-change", "webhook"):
        trigger.fire(reason)
    started = time.monotonic()
    assert trigger.wait(120) == {"ref-change", "webhook"}
    assert time.monotonic() - started < 30  # ended by the quiet window, not by max_delay
    assert trigger.wait(0.01) is None  # nothing left


def test_wait_times_out_without_fire() -> None:
    started = time.monotonic()
    assert Trigger().wait(0.05) is None
    assert time.monotonic() - started >= 0.04  # it did wait


def test_steady_stream_is_cut_at_max_delay() -> None:
    trigger = Trigger(window=0.05, max_delay=0.2)
    stop = threading.Event()

    def spam() -> None:
        while not stop.is_set():
            trigger.fire("ref-change")
            time.sleep(0.01)

    thread = threading.Thread(target=spam)
    thread.start()
    try:
        # The stream never pauses for the window: only max_delay can end the wait.
        assert trigger.wait(60) == {"ref-change"}
    finally:
        stop.set()
        thread.join()


def test_fire_from_another_thread_wakes_waiter() -> None:
    trigger = Trigger(window=0.01)
    threading.Timer(0.05, trigger.fire, args=("webhook",)).start()
    assert trigger.wait(2) == {"webhook"}


# -- backoff ----------------------------------------------------------------


def test_backoff_doubles_and_caps_without_jitter() -> None:
    backoff = Backoff(initial=1, cap=10, factor=2, jitter=0)
    assert [backoff.delay(n) for n in range(0, 7)] == [0, 1, 2, 4, 8, 10, 10]
    assert backoff.delay(10_000) == 10  # no overflow


@pytest.mark.parametrize("roll", [0.0, 0.5, 1.0])
def test_backoff_jitter_bounds(roll: float) -> None:
    backoff = Backoff(initial=4, cap=100, jitter=0.25, rng=lambda: roll)
    assert 3.0 <= backoff.delay(1) <= 5.0
    assert backoff.delay(20) <= 100


def test_retry_state() -> None:
    retry = RetryState()
    assert retry.due(0)
    at = retry.failed(now=100, backoff=Backoff(initial=2, jitter=0), error="down")
    assert at == 102 and not retry.due(101) and retry.due(102)
    retry.failed(now=102, backoff=Backoff(initial=2, jitter=0), error="down")
    assert retry.next_attempt == 106 and retry.failures == 2
    retry.succeeded()
    assert retry.due(0) and retry.last_error is None


# -- webhooks ---------------------------------------------------------------


def _sig(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_github_signature() -> None:
    assert verify_github(SECRET, BODY, "sha256=" + _sig(BODY))
    assert not verify_github(SECRET, BODY, _sig(BODY))  # prefix required
    assert not verify_github(SECRET, BODY + b" ", "sha256=" + _sig(BODY))
    assert not verify_github(SECRET, BODY, "sha256=" + _sig(BODY, b"other"))
    assert not verify_github(SECRET, BODY, None)
    assert not verify_github(b"", BODY, "sha256=" + _sig(BODY, b""))  # no secret, no trust


def test_gitlab_token() -> None:
    assert verify_gitlab(SECRET, SECRET.decode())
    assert not verify_gitlab(SECRET, "wrong")
    assert not verify_gitlab(SECRET, None)
    assert not verify_gitlab(b"", "")


def test_generic_hmac_with_or_without_prefix() -> None:
    assert verify_hmac(SECRET, BODY, _sig(BODY))
    assert verify_hmac(SECRET, BODY, "sha256=" + _sig(BODY).upper())
    assert not verify_hmac(SECRET, BODY, "deadbeef")
    assert not verify_hmac(SECRET, BODY, "")


# -- status -----------------------------------------------------------------


def test_status_round_trip_and_atomic_file(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    assert store.load() == Status()
    status = Status(source="repo@main", applied_revision="a" * 40, errors=["bad mac"])
    status.targets["dns"] = TargetStatus(ok=False, error="down", failures=2, pending=3)
    status.set_condition("Ready", False, reason="TargetFailed", message="dns")
    store.save(status)
    loaded = store.load()
    assert loaded.applied_revision == "a" * 40 and loaded.targets["dns"].pending == 3
    ready = loaded.condition("Ready")
    assert ready is not None and not ready.status and ready.reason == "TargetFailed"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left
    assert "FAILED (2x): down" in render_status_text(loaded)


def test_condition_transition_time_moves_only_on_flip() -> None:
    status = Status()
    status.set_condition("Stalled", True, reason="InvalidRevision", message="commit x")
    status.set_condition("Ready", False, reason="InvalidRevision")
    first = status.condition("Stalled")
    assert first is not None
    stamp = first.last_transition
    time.sleep(0.01)
    status.set_condition("Stalled", True, reason="UntrustedSignature", message="commit y")
    assert first.last_transition == stamp and first.reason == "UntrustedSignature"
    status.set_condition("Stalled", False, reason="Progressing")
    assert first.last_transition > stamp and not first.status
    assert [c.type for c in status.conditions] == ["Ready", "Stalled"]  # fixed order


def test_unreadable_status_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text("{not json")
    assert StatusStore(tmp_path).load() == Status()


# -- settings ---------------------------------------------------------------


def test_watch_table_is_parsed_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "r.toml"
    config.write_text(
        '[source]\nrepo = "repo"\n[targets.dhcp]\ntype = "dhcp-file"\npath = "x"\n'
        '[watch]\ndrift_interval = 10\ndrift = { dhcp = "report" }\n'
    )
    runtime, settings = load_watch_config(config)
    assert runtime.source.repo == Path("repo")
    assert settings.drift_interval == 10 and settings.drift_mode("dhcp") == "report"
    assert settings.drift_mode("other") == "correct"
    config.write_text(config.read_text().replace("dhcp = ", "dns = "))
    with pytest.raises(ConfigError, match=r"watch\.drift\.dns: no such target"):
        load_watch_config(config)
    config.write_text('[source]\nrepo = "repo"\n[watch]\npoll_interval = -1\n')
    with pytest.raises(ConfigError, match=r"watch\.poll_interval"):
        load_watch_config(config)


def test_defaults() -> None:
    settings = WatchSettings()
    assert settings.poll_interval == 60 and settings.debounce == 0.05
    assert settings.verify_signatures == "none"
