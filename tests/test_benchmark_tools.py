"""The benchmark tools run end to end on a small history (a test of the tools, not timed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.hub
def test_report_burst_runs_and_reports_every_figure():
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "report_burst.py"),
            "--sessions",
            "2000",
            "--users",
            "50",
            "--requests",
            "12",
            "--concurrency",
            "3",
            "--baseline-seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("baseline_hub_api", "burst_hub_api", "baseline_health", "burst_health", "burst_report"):
        assert figures[key]["n"] > 0 and figures[key]["p99_ms"] >= figures[key]["p50_ms"] > 0
    assert sum(figures["burst_statuses"].values()) == 12
    assert figures["server_errors"] == 0
    assert figures["service_peak_rss_mb"] >= figures["service_rss_mb"] > 0
    assert set(figures["targets_met"]) == {"hub_api_p99_within_1.5x", "health_p99_under_200ms", "no_5xx"}
