"""The cost service's Prometheus metrics (beside the framework's own)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter


def now_ms() -> int:
    return int(time.time() * 1000)


class CostMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.denials = Counter(
            "twoi2c_budget_denials", "Servers refused at spawn by a budget", ["budget"], registry=registry
        )
        self.errors = Counter(
            "twoi2c_cost_errors", "Failures of the cost service's background work", ["stage"], registry=registry
        )
