"""Prometheus metrics of the watch loop, on a registry of its own.

Counted where things happen (the loop calls ``observe_*``), exposed by
``reconciler watch --listen`` on ``/metrics`` or by any HTTP service through
``metrics_handler``. A registry per loop keeps tests and several loops in one
process from clashing over the global default registry.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

APPLY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WatchMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "reconciler_passes", "Reconcile passes by result", ["result"], registry=r
        )
        self.apply_seconds = Histogram(
            "reconciler_apply_duration_seconds",
            "Time to apply one target's changes",
            ["target"],
            buckets=APPLY_BUCKETS,
            registry=r,
        )
        self.changes = Counter(
            "reconciler_changes_applied",
            "Changes applied by target and action",
            ["target", "action"],
            registry=r,
        )
        self.drift = Gauge(
            "reconciler_drift_objects",
            "Objects differing from the inventory: unmanaged (someone else's) or pending",
            ["target", "kind"],
            registry=r,
        )
        self.last_success = Gauge(
            "reconciler_last_success_timestamp_seconds",
            "Unix time of the last pass that left every target at the good revision",
            registry=r,
        )
        self.target_up = Gauge(
            "reconciler_target_up",
            "1 if the target's last read/apply worked",
            ["target"],
            registry=r,
        )
        self.revision = Info(
            "reconciler_revision", "Revision in force and newest revision seen", registry=r
        )

    def observe_pass(self, result: str) -> None:
        self.passes.labels(result=result).inc()

    def observe_apply(self, *, target: str, seconds: float, counts: dict[str, int]) -> None:
        self.apply_seconds.labels(target=target).observe(seconds)
        for action, count in counts.items():
            if count:
                self.changes.labels(target=target, action=action).inc(count)

    def observe_drift(self, *, target: str, unmanaged: int, pending: int) -> None:
        self.drift.labels(target=target, kind="unmanaged").set(unmanaged)
        self.drift.labels(target=target, kind="pending").set(pending)

    def observe_revision(self, *, applied: str | None, attempted: str | None) -> None:
        self.revision.info({"applied": applied or "", "attempted": attempted or ""})

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
