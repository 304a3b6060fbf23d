"""Run a few independent tasks in forked worker processes, as many at once as there are cores.

A 100,000-host plan spends seconds reading and diffing each target, one after the
other, on one core. The compiled desired state they read from is already in
memory: a forked child sees it as it is (copy-on-write), so each task runs in a
child and sends back only its answer, pickled through a pipe (a no-op plan's
answer is a few hundred bytes).

What a caller sees does not depend on where a task ran:
- a task's return value, or the exception it raised (same type and message;
  one that cannot be pickled comes back as ``TaskFailed`` with its type, message
  and traceback), in task order;
- the log records the task emitted, replayed in the parent, in task order, just
  before its answer is handed back (a child writes nothing to stderr itself);
- a child that dies without an answer (killed, out of memory, a crash in C)
  becomes ``TaskFailed`` naming how it ended; one that does not answer within
  ``timeout`` seconds is killed and reported the same way. No wait is unbounded.

Only where the process has a single thread: a fork copies the lock a thread held,
and the child would wait on it forever. Elsewhere (the watch loop, the operator,
serve, tests' in-process runs with threads) ``can_fork`` says no and callers run
the tasks in-process, one after the other.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class TaskFailed(Exception):
    """A task's child process ended without a usable answer."""


def worker_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether tasks may run in forked children: POSIX, and this thread is the only one."""
    return hasattr(os, "fork") and threading.active_count() == 1


class _Collect(logging.Handler):
    """The child's only log handler: keeps each record, made picklable, for the parent."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self.records.append(record)


def _answer(task: Callable[[], Any]) -> bytes:
    """Run ``task`` in this (child) process and pickle what the parent needs to know."""
    handler = _Collect()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.handlers[:] = []  # none of them may write to the shared stderr
    try:
        outcome: tuple[str, Any] = ("value", task())
    except BaseException as error:  # everything goes back to the parent, as it was
        outcome = ("raised", error)
    try:
        if outcome[0] == "raised":  # some exceptions pickle but cannot be rebuilt
            pickle.loads(pickle.dumps(outcome[1]))
        return pickle.dumps((outcome, handler.records), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        # An unpicklable value, exception or log record: say what it was, as text.
        kind, value = outcome
        what = "".join(traceback.format_exception(value)) if kind == "raised" else repr(type(value))
        failed = TaskFailed(f"its answer could not be sent back ({kind}: {what.strip()})")
        return pickle.dumps((("raised", failed), []))


def _child(task: Callable[[], Any], write_end: int) -> None:
    """The forked side: answer, write it whole, and leave without running the parent's
    exit handlers (they belong to the parent: open files, temporary folders)."""
    status = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the child too
        data = _answer(task)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
    except BaseException:
        status = 70
    finally:
        os._exit(status)


@dataclass
class _Running:
    index: int
    pid: int
    read_end: int
    started: float
    chunks: list[bytes] = field(default_factory=list)


@dataclass
class Answer(Generic[T]):
    """A task's outcome: its value, or the exception to raise where it is used."""

    value: T | None
    error: BaseException | None
    records: list[logging.LogRecord]

    def get(self) -> T:
        """Replay the task's log records here, then return its value or raise its error."""
        for record in self.records:
            logging.getLogger(record.name).handle(record)
        self.records = []
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def run_forked(
    tasks: Sequence[Callable[[], T]],
    *,
    workers: int,
    timeout: float,
    order: Sequence[int] | None = None,
) -> Iterator[Answer[T]]:
    """Each task's ``Answer``, in task order, as soon as it and those before it are done.

    At most ``workers`` children run at once, started in ``order`` (indexes into
    ``tasks``; say the longest first). A child running longer than ``timeout``
    seconds is killed and its task fails.
    """
    pending = list(order if order is not None else range(len(tasks)))
    running: dict[int, _Running] = {}  # by the read end of its pipe
    done: dict[int, Answer[T]] = {}
    handed = 0
    try:
        while handed < len(tasks):
            while pending and len(running) < max(1, workers):
                index = pending.pop(0)
                try:
                    child = _start(index, tasks[index])
                except OSError as error:  # no fork (out of memory, process limit): here
                    log.debug("task run in-process", extra={"reason": str(error)})
                    done[index] = _here(tasks[index])
                    continue
                running[child.read_end] = child
            if handed in done:
                yield done.pop(handed)
                handed += 1
                continue
            _wait(running, done, timeout=timeout)
    finally:
        for child in running.values():  # the caller stopped early, or an error: no orphans
            _kill(child)
            os.close(child.read_end)


def _here(task: Callable[[], Any]) -> Answer[Any]:
    try:
        return Answer(task(), None, [])
    except Exception as error:
        return Answer(None, error, [])


def _start(index: int, task: Callable[[], Any]) -> _Running:
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # pragma: no cover - the child; its outcome is checked in the parent
        os.close(read_end)
        _child(task, write_end)
    os.close(write_end)
    return _Running(index, pid, read_end, time.monotonic())


def _wait(running: dict[int, _Running], done: dict[int, Answer[Any]], *, timeout: float) -> None:
    """Read what the children wrote until one of them finishes (or is past its time)."""
    now = time.monotonic()
    first_deadline = min(child.started + timeout for child in running.values())
    ready, _, _ = select.select(list(running), [], [], max(0.0, first_deadline - now))
    for read_end in ready:
        child = running[read_end]
        chunk = os.read(read_end, 1 << 20)
        if chunk:
            child.chunks.append(chunk)
            continue
        del running[read_end]  # end of file: the child wrote all it will
        os.close(read_end)
        _, status = os.waitpid(child.pid, 0)
        done[child.index] = _decode(child, os.waitstatus_to_exitcode(status))
    now = time.monotonic()
    for read_end, child in list(running.items()):
        if now - child.started >= timeout:
            del running[read_end]
            _kill(child)
            os.close(read_end)
            failed = TaskFailed(f"its worker process gave no answer within {timeout:g} s")
            done[child.index] = Answer(None, failed, [])


def _decode(child: _Running, exit_code: int) -> Answer[Any]:
    data = b"".join(child.chunks)
    if exit_code != 0 or not data:
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited {exit_code}"
        return Answer(None, TaskFailed(f"its worker process {how} without an answer"), [])
    try:
        (kind, value), records = pickle.loads(data)
    except Exception as error:  # e.g. a class the parent cannot import
        return Answer(None, TaskFailed(f"its answer could not be read back: {error!r}"), [])
    if kind == "raised":
        return Answer(None, value, records)
    return Answer(value, None, records)


def _kill(child: _Running) -> None:
    try:
        os.kill(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class Background(Generic[T]):
    """One task started now in a forked child, its ``Answer`` collected later (``answer``)
    or the child killed (``stop``: a caller that no longer wants it must call it)."""

    def __init__(self, task: Callable[[], T]) -> None:
        """Raises OSError when no child can be forked."""
        self._child: _Running | None = _start(0, task)

    def answer(self, *, timeout: float) -> Answer[T]:
        """The task's answer (a TaskFailed one past ``timeout`` seconds from its start)."""
        child, self._child = self._child, None
        if child is None:
            return Answer(None, TaskFailed("its answer was already taken"), [])
        running = {child.read_end: child}
        done: dict[int, Answer[Any]] = {}
        try:
            while not done:
                _wait(running, done, timeout=timeout)
        finally:
            for other in running.values():
                _kill(other)
                os.close(other.read_end)
        answer: Answer[T] = done[0]
        return answer

    def stop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            _kill(child)
            os.close(child.read_end)
