"""The usage service's Prometheus figures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class UsageMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.running = Gauge("twoi2c_usage_running_sessions", "Sessions open now", registry=registry)
        self.recorded = Gauge("twoi2c_usage_recorded_sessions", "Sessions in the database", registry=registry)
        self.events = Counter("twoi2c_usage_events", "Events received from the spawners", ["type"], registry=registry)
        self.held = Gauge(
            "twoi2c_usage_held_events", "Events accepted while the database could not take them", registry=registry
        )
        self.corrections = Counter(
            "twoi2c_usage_reconcile_corrections",
            "Sessions the reconciliation loop opened or closed itself",
            ["kind"],
            registry=registry,
        )
        self.lag = Gauge(
            "twoi2c_usage_reconcile_lag_seconds", "Seconds since the last complete reconciliation", registry=registry
        )
        self.errors = Counter("twoi2c_usage_errors", "Errors, by where they happened", ["where"], registry=registry)
