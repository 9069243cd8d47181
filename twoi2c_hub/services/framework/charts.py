"""Chart data for service pages: series per step, the largest names apart, the rest together."""

from __future__ import annotations

from pathlib import Path

from tornado import web

from ...accounting import opencost


class StaticHandler(web.StaticFileHandler):
    """Chart library files, served from the installed plotly package (never a CDN)."""


def chart_library_dir() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


# a service's route to the chart library, at static/plotly.min.js under its prefix
CHART_LIBRARY_ROUTE = (r"static/(plotly\.min\.js)", StaticHandler, {"path": str(chart_library_dir())})


# what each figure is called on a page, and what its unit means
FIGURE_LABELS = {
    "sessions": "Sessions",
    "server_hours": "Server hours",
    "cpu_core_hours": "CPU core-hours",
    "memory_gib_hours": "Memory GiB-hours",
    "gpu_hours": "GPU hours",
    "total_cost": "Cost",
}
UNITS_EXPLAINED = (
    "A server hour is one server running for an hour; a CPU core-hour is one CPU core reserved "
    "for an hour; a memory GiB-hour is one GiB of memory (1,073,741,824 bytes) reserved for an "
    "hour; a GPU hour is one GPU for an hour. Times are shown in your time zone."
)


def chart_series(rows: list[dict], figure: str, window, step: str, top: int = 8) -> dict:
    """Per-step series of `figure`, one bucket for every step of `window` (zeros included),
    for the `top` names with most of it and the rest as 'others'. `x` holds each bucket's
    first day (a date axis); `empty` says there is nothing to draw."""
    starts = [opencost.iso(a) for a, _ in opencost.buckets(window.start_ms, window.end_ms, step)]
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["name"]] = totals.get(row["name"], 0) + row[figure]
    leaders = sorted((n for n in totals if totals[n] > 0), key=lambda n: -totals[n])[:top]
    series = {name: dict.fromkeys(starts, 0.0) for name in leaders}
    others = dict.fromkeys(starts, 0.0)
    for row in rows:
        target = series.get(row["name"], others)
        if row["window"]["start"] in target:
            target[row["window"]["start"]] += row[figure]
    if any(others.values()):
        series["others"] = others
    return {
        "x": [start[:10] for start in starts],
        "step": step,
        "label": FIGURE_LABELS[figure],
        "series": [{"name": n, "y": [round(v, 4) for v in values.values()]} for n, values in series.items()],
        "empty": not any(v for values in series.values() for v in values.values()),
    }
