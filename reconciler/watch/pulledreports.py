"""The node agents' reports pulled from ``reconciler serve`` when it keeps them elsewhere.

In a cluster the agents report to serve, in serve's pod; the operator's rollout
controller runs in another pod and pulls them (``GET <reports_url>/reports``,
``reconciler.server.reportfeed``) once per rollout pass that has nodes moving.
A pull is bounded by ``reports_timeout``. It sends the ETag of the last answer
(``If-None-Match``): on ``304 Not Modified`` the reports are that answer's.
When serve cannot be reached the pass decides nothing: the assignments in
force stay, no wave opens and no node counts as failed, and the loop's status
says why. Once serve answers again, the wave timeout counts from that moment
(``judged_from``): the agents could not report while serve was away.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.config import RuntimeConfig
    from reconciler.watch.settings import WatchSettings


class ReportsUnavailable(Exception):
    """serve did not give the reports; the message says what happened and that rollouts wait."""


class PulledReports:
    """One pull per pass (``begin_pass`` forgets the last), from serve's ``GET /reports``."""

    def __init__(self, url: str, *, token_file: Path | None, timeout: float) -> None:
        self.url = url.rstrip("/") + "/reports"
        self.token_file = token_file
        self.timeout = timeout
        self.judged_from = 0.0  # when serve answered again after it could not be reached
        self._failing = False
        self._pulled: dict[str, dict[str, Any]] | None = None
        self._last: tuple[str, dict[str, dict[str, Any]]] | None = None  # ETag, reports

    def begin_pass(self) -> None:
        self._pulled = None

    def __call__(self) -> dict[str, dict[str, Any]]:
        """The reports by host (pulled once per pass); ReportsUnavailable when serve fails."""
        if self._pulled is None:
            try:
                self._pulled = self._pull()
            except ReportsUnavailable:
                self._failing = True
                raise
            if self._failing:
                self._failing = False
                self.judged_from = time.time()
        return self._pulled

    def _pull(self) -> dict[str, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as error:
                raise self._unavailable(f"token file unreadable ({error})") from None
            headers["Authorization"] = f"Bearer {token}"
        if self._last is not None:
            headers["If-None-Match"] = self._last[0]
        request = urllib.request.Request(self.url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as error:
            if error.code == 304 and self._last is not None:
                return self._last[1]  # unchanged since the last pull
            detail = error.read(500).decode(errors="replace").strip()
            raise self._unavailable(f"HTTP {error.code} {detail}") from None
        except (OSError, ValueError) as error:  # refused, timed out, not JSON
            raise self._unavailable(str(getattr(error, "reason", error)) or repr(error)) from None
        reports = body.get("reports") if isinstance(body, dict) else None
        if not isinstance(reports, dict):
            raise self._unavailable("the answer holds no 'reports' object")
        pulled = {str(h): r for h, r in reports.items() if isinstance(r, dict)}
        self._last = (etag, pulled) if etag else None
        return pulled

    def _unavailable(self, why: str) -> ReportsUnavailable:
        return ReportsUnavailable(
            f"node reports unavailable: {self.url}: {why}; rollouts wait (no wave opens, "
            "no node counts as failed) until serve answers"
        )


def pulled_reports(config: RuntimeConfig, settings: WatchSettings) -> PulledReports | None:
    """The puller of ``[watch] reports_url``; None when the reports are in the state dir."""
    if settings.reports_url is None:
        return None
    token = settings.reports_token_file
    return PulledReports(
        settings.reports_url,
        token_file=config.resolve(token) if token is not None else None,
        timeout=settings.reports_timeout,
    )
