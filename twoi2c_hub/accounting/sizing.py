"""Right-sizing a hub's profile list from what its servers used: for each profile and
memory reservation, the spread of its sessions' memory peaks and CPU averages, and where
most of them would have fitted a smaller reservation, a suggestion in plain words with
what it would have saved. Advice only: nothing is changed."""

from __future__ import annotations

import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ..catalog import GiB
from .models import HOUR_MS, ServerSession, SessionUse

# a smaller reservation is suggested when at least this share of a choice's sessions
# peaked under it, with HEADROOM to spare
FIT_SHARE = 0.9
HEADROOM = 0.9
MIN_SESSIONS = 5  # fewer measured sessions say too little to advise on


def nearest_rank(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank: a value that occurred, never one between."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def gib(value: float) -> str:
    return f"{value / GiB:.1f}".rstrip("0").rstrip(".") + " GiB"


def right_sizing(
    db: DB, start_ms: int, end_ms: int, gib_hour_price: float | None = None, currency: str = ""
) -> list[dict]:
    """One row per (profile, memory reservation) with measured sessions started in
    [start_ms, end_ms), largest reservation first within a profile."""
    rows = db.execute(
        select(
            ServerSession.profile,
            func.coalesce(ServerSession.mem_guarantee_bytes, ServerSession.mem_limit_bytes),
            func.coalesce(ServerSession.stopped_ms, SessionUse.last_sample_ms) - ServerSession.started_ms,
            SessionUse.mem_peak_bytes,
            SessionUse.cpu_core_ms * 1.0 / SessionUse.measured_ms,
        )
        .join(SessionUse, SessionUse.session_id == ServerSession.id)
        .where(ServerSession.started_ms >= start_ms, ServerSession.started_ms < end_ms, SessionUse.measured_ms > 0)
    )
    choices: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for profile, reserved, duration_ms, peak, cpu in rows:  # tuples, not objects: a month can be many
        if reserved:
            choices.setdefault((profile or "", reserved), []).append((peak, float(cpu), max(0, duration_ms) / HOUR_MS))
    sizes: dict[str, list[int]] = {}
    for profile, reserved in choices:
        sizes.setdefault(profile, []).append(reserved)
    result = []
    for (profile, reserved), sessions in sorted(choices.items(), key=lambda item: (item[0][0], -item[0][1])):
        peaks = [peak for peak, _, _ in sessions]
        cpus = [cpu for _, cpu, _ in sessions]
        row = {
            "profile": profile,
            "reservedBytes": reserved,
            "sessions": len(sessions),
            "ramByteUsageMax": {f"p{q}": nearest_rank(peaks, q) for q in (50, 90, 99)} | {"max": max(peaks)},
            "cpuCoreUsageAverage": {f"p{q}": nearest_rank(cpus, q) for q in (50, 90)},
            "suggestion": None,
        }
        smaller = sorted(size for size in sizes[profile] if size < reserved)
        for size in smaller if len(sessions) >= MIN_SESSIONS else []:
            fitting = [(peak, hours) for peak, _, hours in sessions if peak <= HEADROOM * size]
            if len(fitting) / len(sessions) < FIT_SHARE:
                continue
            gib_hours = sum(hours for _, hours in fitting) * (reserved - size) / GiB
            saved = gib_hours * gib_hour_price if gib_hour_price else None
            share = round(100 * len(fitting) / len(sessions))
            effect = (
                f"would have cost about {saved:,.0f} {currency} less".strip()
                if saved is not None
                else f"would have reserved {gib_hours:,.0f} GiB-hours less"
            )
            row["suggestion"] = {
                "reservedBytes": size,
                "share": len(fitting) / len(sessions),
                "gibHoursSaved": gib_hours,
                "costSaved": saved,
                "text": f"{share} % of sessions on '{profile}, {gib(reserved)}' peaked under {gib(HEADROOM * size)}; "
                f"offering the {gib(size)} choice first {effect}.",
            }
            break  # the smallest that fits
        result.append(row)
    return result
