"""Operations endpoints of ``reconciler serve``: /status, /metrics and the webhooks.

The loop runs in ``reconciler watch``; this service shares its state folder.
``/status`` answers from ``status.json`` plus the node agents' reports (nodes
per image version and state), ``/metrics`` turns both into Prometheus gauges
at scrape time (the loop's own counters and histograms are on
``reconciler watch --listen``), and a verified webhook writes the wake-up file
that makes the loop fetch and reconcile at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from reconciler.config import ConfigError
from reconciler.server.nodereports import STATES, ReportStore, summarize
from reconciler.watch.status import CONDITION_TYPES, StatusStore
from reconciler.watch.wakeup import request_pass
from reconciler.watch.webhooks import read_secret, webhook_routes

StatusHandler = Callable[[web.Request], Awaitable[web.Response]]


class StatusCollector(Collector):
    """Prometheus gauges read from ``status.json`` at each scrape."""

    def __init__(self, store: StatusStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        status = self.store.load()
        condition = GaugeMetricFamily(
            "reconciler_condition", "1 when the condition holds", labels=["condition"]
        )
        for kind in CONDITION_TYPES:
            found = status.condition(kind)
            condition.add_metric([kind], 1.0 if found is not None and found.status else 0.0)
        yield condition
        yield GaugeMetricFamily(
            "reconciler_last_success_timestamp_seconds",
            "when a pass last applied every target",
            value=status.last_success or 0.0,
        )
        up = GaugeMetricFamily(
            "reconciler_target_up", "1 when the target's last apply worked", labels=["target"]
        )
        unmanaged = GaugeMetricFamily(
            "reconciler_target_unmanaged",
            "objects someone else made, left alone",
            labels=["target"],
        )
        pending = GaugeMetricFamily(
            "reconciler_target_pending",
            "changes waiting (drift reported or not yet applied)",
            labels=["target"],
        )
        for name, target in sorted(status.targets.items()):
            up.add_metric([name], 1.0 if target.ok else 0.0)
            unmanaged.add_metric([name], float(target.unmanaged))
            pending.add_metric([name], float(target.pending))
        yield from (up, unmanaged, pending)


class NodeCollector(Collector):
    """Prometheus gauges of the node agents' reports: nodes per image version and per state."""

    def __init__(self, reports: ReportStore) -> None:
        self.reports = reports

    def collect(self) -> Iterator[Metric]:
        summary = summarize(self.reports.all())
        versions = GaugeMetricFamily(
            "reconciler_nodes_by_version", "nodes reporting this image@version", labels=["version"]
        )
        for version, count in summary["by_version"].items():
            versions.add_metric([version], float(count))
        states = GaugeMetricFamily(
            "reconciler_nodes_by_state",
            "nodes per agent state (running, staging, swapping, failed, refused, silent)",
            labels=["state"],
        )
        for state in (*STATES, "silent"):
            states.add_metric([state], float(summary["by_state"].get(state, 0)))
        yield versions
        yield states


def _status_with_nodes(store: StatusStore, reports: ReportStore) -> StatusHandler:
    async def handle(_request: web.Request) -> web.Response:
        status = store.load()
        ready = status.condition("Ready")
        body = {**status.to_dict(), "nodes": summarize(reports.all())}
        return web.json_response(body, status=200 if ready is not None and ready.status else 503)

    return handle


def ops_routes(
    *, state_dir: Path, webhook_secret_file: Path | None, reports: ReportStore | None = None
) -> list[web.RouteDef]:
    store = StatusStore(state_dir)
    reports = reports or ReportStore(state_dir)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatusCollector(store))
    registry.register(NodeCollector(reports))

    async def metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    routes = [web.get("/status", _status_with_nodes(store, reports)), web.get("/metrics", metrics)]
    if webhook_secret_file is not None:
        try:
            secret = read_secret(webhook_secret_file)
        except OSError as error:
            raise ConfigError(
                f"watch.webhook_secret_file: cannot read {webhook_secret_file} ({error.strerror})"
            ) from None
        routes += webhook_routes(lambda reason: request_pass(state_dir, reason), secret)
    return routes
