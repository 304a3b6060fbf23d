"""Tasks in forked workers: answers, errors, logs and dead children come back as they were."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from reconciler.forked import Answer, TaskFailed, run_forked
from reconciler.targets.base import ServiceDown, TargetError


def answers(tasks: list, **options: object) -> list[Answer[object]]:  # type: ignore[type-arg]
    settings = {"workers": 2, "timeout": 30.0, **options}
    return list(run_forked(tasks, **settings))  # type: ignore[arg-type]


def test_values_come_back_in_task_order_whatever_order_they_ran_in() -> None:
    def slow() -> int:
        time.sleep(0.3)
        return os.getpid()

    got = answers([slow, lambda: "second", lambda: ["third", 3]], order=[2, 1, 0])
    assert got[0].get() != os.getpid()  # it ran in another process
    assert [a.get() for a in got[1:]] == ["second", ["third", 3]]


def test_a_target_error_comes_back_with_its_type_target_and_message() -> None:
    def fails() -> None:
        raise ServiceDown("dhcp", "dhcpd does not answer on 127.0.0.1:7911")

    (answer,) = answers([fails])
    with pytest.raises(ServiceDown) as raised:
        answer.get()
    assert raised.value.target == "dhcp"
    assert raised.value.reason == "dhcpd does not answer on 127.0.0.1:7911"
    assert str(raised.value) == str(ServiceDown("dhcp", "dhcpd does not answer on 127.0.0.1:7911"))


def test_any_other_error_keeps_its_type_and_message() -> None:
    def bug() -> None:
        known: dict[str, int] = {}
        known["missing"] += 1

    (answer,) = answers([bug])
    with pytest.raises(KeyError, match="missing"):
        answer.get()


def test_an_error_that_cannot_be_rebuilt_is_named_with_its_traceback() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(a + b)

    def odd() -> None:
        raise Odd(1, 2)

    (answer,) = answers([odd])
    with pytest.raises(TaskFailed, match=r"(?s)could not be sent back .*Odd: 3"):
        answer.get()


def test_a_killed_worker_is_an_error_not_a_hang() -> None:
    def killed() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    first, second = answers([killed, lambda: "fine"])
    with pytest.raises(TaskFailed, match="killed by signal 9 without an answer"):
        first.get()
    assert second.get() == "fine"


def test_a_worker_past_its_time_is_killed_and_reported() -> None:
    started = time.monotonic()
    (answer,) = answers([lambda: time.sleep(60)], timeout=0.5)
    with pytest.raises(TaskFailed, match=r"no answer within 0\.5 s"):
        answer.get()
    assert time.monotonic() - started < 30


def test_log_records_are_replayed_in_the_parent_when_the_answer_is_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def logs() -> str:
        logging.getLogger("reconciler.targets.x").warning(
            "drift in %s", "zone", extra={"target": "dns"}
        )
        return "done"

    caplog.set_level(logging.INFO)
    (answer,) = answers([logs])
    assert not caplog.records  # nothing written by the child itself
    assert answer.get() == "done"
    (record,) = caplog.records
    assert (record.name, record.getMessage(), record.target) == (  # type: ignore[attr-defined]
        "reconciler.targets.x",
        "drift in zone",
        "dns",
    )


def test_a_large_answer_comes_back_whole() -> None:
    big = [str(i) * 3 for i in range(200_000)]
    (answer,) = answers([lambda: big])
    assert answer.get() == big


def test_target_error_pickles_as_itself() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(TargetError("boot", "cannot read /srv/tftp")))
    assert (type(error), error.target, error.reason) == (
        TargetError,
        "boot",
        "cannot read /srv/tftp",
    )


def test_without_fork_the_tasks_run_here_with_the_same_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    def fails() -> None:
        raise TargetError("dns", "cannot read zone file")

    monkeypatch.setattr(os, "fork", no_fork)
    first, second = answers([lambda: os.getpid(), fails])
    assert first.get() == os.getpid()
    with pytest.raises(TargetError, match="cannot read zone file"):
        second.get()
