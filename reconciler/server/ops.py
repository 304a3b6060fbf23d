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
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

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
        yield from rollout_metrics(status.rollouts)


def rollout_metrics(rollouts: list[dict[str, Any]]) -> Iterator[Metric]:
    """Rollout progress per group, from what the watch loop decided last (status.json)."""
    assigned = GaugeMetricFamily(
        "reconciler_rollout_nodes_assigned",
        "nodes of a group assigned this image@version by its rollout",
        labels=["group", "version"],
    )
    states = GaugeMetricFamily(
        "reconciler_rollout_nodes",
        "nodes of a rolling group per rollout state (waiting, updating, healthy, failed, ...)",
        labels=["group", "state"],
    )
    wave = GaugeMetricFamily(
        "reconciler_rollout_wave", "the wave a group's rollout has opened", labels=["group"]
    )
    waves = GaugeMetricFamily("reconciler_rollout_waves", "waves in the policy", labels=["group"])
    phase = GaugeMetricFamily(
        "reconciler_rollout_phase", "1 for the rollout's phase", labels=["group", "phase"]
    )
    for row in rollouts:
        group = str(row.get("group"))
        for version, count in dict(row.get("versions") or {}).items():
            assigned.add_metric([group, str(version)], float(count))
        for state, count in dict(row.get("states") or {}).items():
            states.add_metric([group, str(state)], float(count))
        wave.add_metric([group], float(row.get("wave") or 0))
        waves.add_metric([group], float(row.get("waves") or 0))
        phase.add_metric([group, str(row.get("phase"))], 1.0)
    yield from (assigned, states, wave, waves, phase)


SWAP_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def swap_histogram(reports: dict[str, dict[str, Any]]) -> Metric:
    """The downtime of each node's last swap, by method, as a Prometheus histogram."""
    by_method: dict[str, list[float]] = {}
    for report in reports.values():
        swap = report.get("last_swap") or {}
        downtime = swap.get("downtime_s")
        if isinstance(downtime, int | float) and not isinstance(downtime, bool):
            by_method.setdefault(str(swap.get("method")), []).append(float(downtime))
    histogram = HistogramMetricFamily(
        "reconciler_node_swap_downtime_seconds",
        "downtime of the nodes' last image swap (last answer of the old image to the first "
        "of the new), by method",
        labels=["method"],
    )
    for method, values in sorted(by_method.items()):
        buckets = [(str(bound), float(sum(v <= bound for v in values))) for bound in SWAP_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        histogram.add_metric([method], buckets, sum_value=sum(values))
    return histogram


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
        yield swap_histogram(self.reports.all())


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
        secret = read_secret(webhook_secret_file)
        routes += webhook_routes(lambda reason: request_pass(state_dir, reason), secret)
    return routes
