"""Chart data for service pages: series per step, the largest names apart, the rest together."""

from __future__ import annotations

from pathlib import Path

from tornado import web


class StaticHandler(web.StaticFileHandler):
    """Chart library files, served from the installed plotly package (never a CDN)."""


def chart_library_dir() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


# a service's route to the chart library, at static/plotly.min.js under its prefix
CHART_LIBRARY_ROUTE = (r"static/(plotly\.min\.js)", StaticHandler, {"path": str(chart_library_dir())})


def chart_series(rows: list[dict], figure: str, top: int = 8) -> dict:
    """Per-step series of `figure` for the `top` names with most usage, the rest as 'others'."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["name"]] = totals.get(row["name"], 0) + row[figure]
    leaders = sorted(totals, key=lambda n: -totals[n])[:top]
    steps = sorted({row["window"]["start"] for row in rows})
    series = {name: dict.fromkeys(steps, 0.0) for name in leaders}
    others = dict.fromkeys(steps, 0.0)
    for row in rows:
        target = series[row["name"]] if row["name"] in series else others
        target[row["window"]["start"]] += row[figure]
    if any(others.values()):
        series["others"] = others
    return {
        "x": steps,
        "series": [{"name": n, "y": [round(v, 4) for v in values.values()]} for n, values in series.items()],
    }
