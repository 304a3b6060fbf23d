"""Command line and main loop of the agent (``python3 agent.pyz``, ``reconciler agent``).

The loop long-polls serve for the node's assignment, acts on it, and reports
on every change and at least every ``--report-interval`` seconds. serve being
unreachable is normal during a rollout of serve itself: the agent backs off
(up to a minute, with jitter) and keeps the node as it is.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.agent import AGENT_VERSION
from reconciler.agent.agent import MIB, Agent, Settings
from reconciler.agent.assignment import Assignment, AssignmentError, parse_assignment
from reconciler.agent.client import HttpServer, Server, ServerError
from reconciler.agent.cmdline import parameters
from reconciler.agent.ladder import METHODS
from reconciler.agent.state import RunDir

log = logging.getLogger("reconciler.agent")

MAX_WAIT = 60.0
RESPAWN_PAUSE = 30.0  # seconds before retrying after an error init would respawn us for


class JsonLines(logging.Formatter):
    """One JSON object per log line, with the ``extra`` fields the agent passes."""

    RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))

    def format(self, record: logging.LogRecord) -> str:
        body = {"time": round(record.created, 3), "level": record.levelname.lower(),
                "message": record.getMessage()}  # fmt: skip
        body.update({k: v for k, v in vars(record).items() if k not in self.RESERVED})
        return json.dumps(body, default=str, sort_keys=True)


def parse_args(argv: Sequence[str] | None, cmdline: str) -> argparse.Namespace:
    params = parameters(cmdline)
    parser = argparse.ArgumentParser(
        prog="reconciler-agent",
        description="Keep this stateless node on the image serve assigns it.",
    )
    parser.add_argument("--server", default=params.get("reconciler.server"),
                        help="serve's base URL (default: reconciler.server= on the kernel "
                             "command line)")  # fmt: skip
    parser.add_argument("--host", default=params.get("hostname") or socket.gethostname(),
                        help="this node's inventory hostname (default: hostname= on the "
                             "kernel command line, else the hostname)")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=Path("/run/reconciler"))
    parser.add_argument("--lib-dir", type=Path, default=Path("/usr/lib/reconciler"),
                        help="where mount-root.sh is")  # fmt: skip
    parser.add_argument("--health-dir", type=Path, default=Path("/etc/reconciler/health.d"))
    parser.add_argument("--health-timeout", type=float, default=60.0)
    parser.add_argument("--wait", type=float, default=55.0,
                        help="long-poll seconds per request (at most 60)")  # fmt: skip
    parser.add_argument("--report-interval", type=float, default=300.0)
    parser.add_argument("--reserve-mib", type=int, default=64,
                        help="RAM kept free when staging a new image")  # fmt: skip
    parser.add_argument("--swap-timeout", type=float, default=180.0,
                        help="seconds to wait for a swap to take the agent down")  # fmt: skip
    parser.add_argument("--once", action="store_true",
                        help="fetch, act and report once, then exit")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"reconciler-agent {AGENT_VERSION}")
    args = parser.parse_args(argv)
    if not args.server:
        if not args.once and not sys.stdin.isatty():
            time.sleep(RESPAWN_PAUSE)  # under init's respawn: do not spin
        parser.error("no serve URL: pass --server or boot with reconciler.server=URL")
    args.wait = max(0.0, min(args.wait, MAX_WAIT))
    return args


UNSENT_RETRY = 10.0  # seconds before an undelivered report is sent again


class Loop:
    """Fetch, apply, report, forever (or once)."""

    def __init__(
        self,
        agent: Agent,
        server: Server,
        *,
        wait: float,
        report_interval: float,
        swap_timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.server = server
        self.wait = wait
        self.report_interval = report_interval
        self.swap_timeout = swap_timeout
        self.sleep = sleep
        self.clock = clock
        self.etag: str | None = None
        self.assignment: Assignment | None = None
        self.backoff = 1.0
        self.last_report = float("-inf")
        self.unsent = False  # the last report was refused (rate limit) or lost: send it again

    def once(self) -> str:
        """One round: fetch (long-polling when an assignment is known), apply, report if due."""
        before = json.dumps(self.agent.report_body(), sort_keys=True, default=str)
        try:
            wait = self.wait if self.etag else 0
            if self.unsent:  # come back soon to deliver it, not after a whole long poll
                wait = min(wait, UNSENT_RETRY)
            fetched = self.server.fetch(etag=self.etag, wait=wait)
        except ServerError as error:
            log.warning("serve unreachable", extra={"error": str(error)})
            self.sleep(self.backoff * random.uniform(0.5, 1.0))
            self.backoff = min(self.backoff * 2, 60.0)
            return "unreachable"
        self.backoff = 1.0
        if fetched.status == 404:
            self.etag, self.assignment = fetched.etag, None  # long-polls until one is assigned
            if fetched.etag is None:
                self.sleep(self.wait or 1.0)
        elif fetched.status == 200:
            self.etag = fetched.etag
            try:
                self.assignment = parse_assignment(fetched.body)
            except AssignmentError as error:
                log.error("unusable assignment", extra={"error": str(error)})
                self.assignment = None
        outcome = self.agent.apply(self.assignment) if self.assignment else "none"
        if outcome in METHODS:
            self.await_swap()
            self.etag = None
        due = self.clock() - self.last_report >= self.report_interval
        if due:
            self.agent.check_health()  # each heartbeat says how the node is now
        after = json.dumps(self.agent.report_body(), sort_keys=True, default=str)
        if after != before or due or self.unsent:
            self.unsent = not self.agent.report()
            if not self.unsent:
                self.last_report = self.clock()
        return outcome

    def await_swap(self) -> None:
        """A swap takes this process down; if it is still alive afterwards, it failed."""
        deadline = self.clock() + self.swap_timeout
        while self.clock() < deadline:
            self.sleep(min(1.0, max(0.0, deadline - self.clock())))
        self.agent.swap_did_not_happen(self.swap_timeout)

    def forever(self) -> None:
        self.agent.report()
        self.last_report = self.clock()
        while True:
            try:
                self.once()
            except Exception:  # a bug or a broken node: log it, keep the node as it is, go on
                log.exception("agent round failed")
                self.sleep(RESPAWN_PAUSE)


def main(argv: Sequence[str] | None = None) -> int:
    from reconciler.agent.realsystem import RealSystem

    try:
        cmdline = Path("/proc/cmdline").read_text()
    except OSError:
        cmdline = ""
    args = parse_args(argv, cmdline)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    server = HttpServer(args.server, args.host)
    agent = Agent(
        system=RealSystem(lib_dir=args.lib_dir),
        server=server,
        run=RunDir(args.run_dir),
        settings=Settings(
            host=args.host,
            health_dir=args.health_dir,
            health_timeout=args.health_timeout,
            reserve_bytes=args.reserve_mib * MIB,
        ),
    )
    agent.resume()
    loop = Loop(agent, server, wait=args.wait, report_interval=args.report_interval,
                swap_timeout=args.swap_timeout)  # fmt: skip
    if agent.phase == "swapping":  # resume() started a rollback: init takes us down
        loop.await_swap()
    if args.once:
        loop.wait = 0.0
        outcome = loop.once()
        if loop.last_report == float("-inf"):
            agent.report()
        log.info("done", extra={"outcome": outcome})
        return 0
    loop.forever()
    return 0
