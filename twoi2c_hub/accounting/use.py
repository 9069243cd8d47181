"""What servers used, not what they reserved: samples of a running server's CPU and memory
added to its session (`SessionUse`), and the figures read back (averages, peaks, the share
of the session measured), and the efficiency report over any window."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, false, func, literal, select
from sqlalchemy.orm import Session as DB

from ..catalog import GiB
from ..catalog.pricing import Rates
from .db import in_one_snapshot
from .figures import RESERVED_CPU_CORES, RESERVED_MEMORY_BYTES, UseRow
from .models import HOUR_MS, DailyUserGroupUse, DailyUserProfileUse, ServerSession, SessionGroup, SessionUse
from .rollups import NO_GROUP, USE_FIGURES
from .whole_days import Piece, Reading, add_up, greatest, least


@dataclass(frozen=True)
class Sample:
    """One look at a running server. `cpu_seconds`: the CPU time its processes have used
    since they started (cumulative, so a missed sample loses nothing); `mem_bytes`: its
    resident memory now; `mem_peak_bytes`: the most it can have held since the last look,
    where the source knows it (the kernel's high-water marks), else None; `gpu_util`: its
    GPUs' average utilisation (0-1) since the last look, where there are GPUs to measure."""

    at_ms: int
    cpu_seconds: float
    mem_bytes: int
    mem_peak_bytes: int | None = None
    gpu_util: float | None = None


def add_sample(db: DB, session_id: int, sample: Sample) -> None:
    """Add `sample` to the session's use: the time since its previous sample is measured,
    with the CPU used in it and the memory held at its end."""
    use = db.get(SessionUse, session_id)
    peak = max(sample.mem_bytes, sample.mem_peak_bytes or 0)
    if use is None:
        db.add(
            SessionUse(
                session_id=session_id,
                samples=1,
                first_sample_ms=sample.at_ms,
                last_sample_ms=sample.at_ms,
                measured_ms=0,
                cpu_core_ms=0.0,
                cpu_seconds_at_last=sample.cpu_seconds,
                cpu_peak_cores=0.0,
                mem_byte_ms=0.0,
                mem_peak_bytes=peak,
            )
        )
        return
    elapsed = sample.at_ms - use.last_sample_ms
    if elapsed <= 0:
        return  # told twice, or out of order
    # a process of the server that ended unseen takes its CPU time with it: never negative
    cpu_ms = max(0.0, sample.cpu_seconds - use.cpu_seconds_at_last) * 1000
    use.samples += 1
    use.last_sample_ms = sample.at_ms
    use.measured_ms += elapsed
    use.cpu_core_ms += cpu_ms
    use.cpu_seconds_at_last = sample.cpu_seconds
    use.cpu_peak_cores = max(use.cpu_peak_cores, cpu_ms / elapsed)
    use.mem_byte_ms += sample.mem_bytes * elapsed
    use.mem_peak_bytes = max(use.mem_peak_bytes, peak)
    if sample.gpu_util is not None:
        use.gpu_util_ms = (use.gpu_util_ms or 0.0) + sample.gpu_util * elapsed
        use.gpu_measured_ms = (use.gpu_measured_ms or 0) + elapsed


def open_session_ids(db: DB, servers: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], int]:
    """(username, server_name, started_ms) -> the id of its open session, for those recorded."""
    wanted = set(servers)
    found = {}
    for start in range(0, len(servers), 500):
        names = {username for username, _, _ in servers[start : start + 500]}
        rows = db.execute(
            select(ServerSession.id, ServerSession.username, ServerSession.server_name, ServerSession.started_ms).where(
                ServerSession.username.in_(names), ServerSession.stopped_ms.is_(None)
            )
        )
        for session_id, *key in rows:
            if tuple(key) in wanted:
                found[tuple(key)] = session_id
    return found


def figures(use: SessionUse | None, started_ms: int, stopped_ms: int | None) -> dict | None:
    """A session's use as the API gives it (OpenCost's names where it has them), the share
    measured of its time (so far, for a running one); None: not measured."""
    if use is None:
        return None
    duration = (stopped_ms if stopped_ms is not None else use.last_sample_ms) - started_ms
    measured = use.measured_ms
    return {
        "cpuCoreUsageAverage": use.cpu_core_ms / measured if measured else None,
        "cpuCoreUsageMax": use.cpu_peak_cores if measured else None,
        "ramByteUsageAverage": use.mem_byte_ms / measured if measured else None,
        "ramByteUsageMax": use.mem_peak_bytes,
        "gpuUtilizationAverage": use.gpu_util_ms / use.gpu_measured_ms if use.gpu_measured_ms else None,
        "measuredSeconds": measured / 1000,
        "measuredShare": min(1.0, measured / duration) if duration > 0 else None,
        "samples": use.samples,
    }


RECENT_USE_DAYS = 90  # how far back the spawn page looks for a person's recent sessions


def recent_use(db: DB, username: str, since_ms: int, last: int = 5) -> dict[str, dict]:
    """profile -> what `username`'s last `last` measured sessions on it since `since_ms`
    used at most: `sessions`, `ramByteUsageMax` (the largest peak), `cpuCoreUsageAverage`
    (the largest average). For the spawn page, beside each choice."""
    rows = db.execute(
        select(ServerSession.profile, SessionUse.mem_peak_bytes, SessionUse.cpu_core_ms, SessionUse.measured_ms)
        .join(SessionUse, SessionUse.session_id == ServerSession.id)
        .where(ServerSession.username == username, ServerSession.started_ms >= since_ms, SessionUse.measured_ms > 0)
        .order_by(ServerSession.started_ms.desc())
        .limit(50 * last)
    )
    found: dict[str, dict] = {}
    for profile, peak, cpu_ms, measured in rows:
        seen = found.setdefault(profile or "", {"sessions": 0, "ramByteUsageMax": 0, "cpuCoreUsageAverage": 0.0})
        if seen["sessions"] < last:
            seen["sessions"] += 1
            seen["ramByteUsageMax"] = max(seen["ramByteUsageMax"], peak)
            seen["cpuCoreUsageAverage"] = max(seen["cpuCoreUsageAverage"], cpu_ms / measured)
    return found


EFFICIENCY_COLUMNS = (
    "name",
    "sessions",
    "measuredHours",
    "cpuCoreUsageAverage",
    "cpuCoreRequestAverage",
    "cpuEfficiency",
    "ramByteUsageAverage",
    "ramByteRequestAverage",
    "ramEfficiency",
    "cpuCoreHoursUnused",
    "ramGiBHoursUnused",
)


@dataclass
class _MeasuredUse(Reading):
    """Measured use as `whole_days.add_up` reads it: whole days from the daily rollups of
    measured use, the rest from the sessions and their use, each clipped to its piece; both
    summed in SQL. A session counts once, in the piece it starts in (`carried_in`: those
    that started before the window)."""

    row = UseRow
    rolled_up = "rolled_up"

    def _key(self) -> ColumnElement:
        if self.aggregate == "group":
            return func.coalesce(SessionGroup.group_name, NO_GROUP)
        # an expression, not the column: SQLite would group along the (username, start) index
        return func.coalesce(ServerSession.username if self.aggregate == "user" else ServerSession.profile, "")

    def rolled(self, days: range) -> None:
        if self.aggregate == "group":
            table, key = DailyUserGroupUse, DailyUserGroupUse.group_name
        else:
            table = DailyUserProfileUse
            # by user, an expression: SQLite would group along the (username, day) index,
            # reading every day's rows instead of the window's
            key = func.coalesce(table.username, "") if self.aggregate == "user" else table.profile
        sums = (func.sum(getattr(table, figure)) for figure in USE_FIGURES)
        query = select(key, table.instance_type, *sums).where(table.day >= days.start, table.day < days.stop)
        if self.username is not None:
            query = query.where(table.username == self.username)
        self._add(self.db.execute(query.group_by(key, table.instance_type)))

    def _add(self, rows) -> None:
        """Add (name, instance type, *figures) rows to the totals, by name and instance type."""
        for name, instance_type, *values in rows:
            row = self.totals[name, instance_type]
            for i, value in enumerate(values):
                row[i] += float(value or 0)

    def _sessions(self, sums, a: int, b: int, unrolled_only: bool, *conditions) -> None:
        """Add `sums` by name over the measured sessions overlapping [a, b) for a positive
        time, where `conditions` hold."""
        # one expression each for SELECT and GROUP BY (PostgreSQL binds each)
        key, instance_type = self._key(), func.coalesce(ServerSession.instance_type, "")
        ends = func.coalesce(ServerSession.stopped_ms, SessionUse.last_sample_ms)
        overlap = least(ends, b) - greatest(ServerSession.started_ms, literal(a))
        closed = and_(
            ServerSession.stopped_ms.is_not(None),
            ServerSession.started_ms >= a - self.bounds.max_duration_ms,
            ServerSession.started_ms < b,
            ServerSession.stopped_ms > a,
        )
        running = and_(ServerSession.stopped_ms.is_(None), ServerSession.started_ms < b)
        for condition in (closed, running):
            query = (
                select(key, instance_type, *sums)
                .select_from(ServerSession)
                .join(SessionUse, SessionUse.session_id == ServerSession.id)
                .where(condition, SessionUse.measured_ms > 0, overlap > 0, *conditions)
            )
            if self.aggregate == "group":
                query = query.outerjoin(SessionGroup, SessionGroup.session_id == ServerSession.id)
            if unrolled_only:
                query = query.where(ServerSession.rolled_up == false())
            if self.username is not None:
                query = query.where(ServerSession.username == self.username)
            self._add(self.db.execute(query.group_by(key, instance_type)))

    def raw(self, piece: Piece) -> None:
        a, b = piece.start_ms, piece.end_ms
        ends = func.coalesce(ServerSession.stopped_ms, SessionUse.last_sample_ms)
        span = greatest(ends - ServerSession.started_ms, literal(1))
        share = (least(ends, b) - greatest(ServerSession.started_ms, literal(a))) * 1.0 / span
        measured = SessionUse.measured_ms * share
        sums = (
            func.sum(case((ServerSession.started_ms >= a, 1), else_=0)),
            func.sum(measured),
            func.sum(SessionUse.cpu_core_ms * share),
            func.sum(RESERVED_CPU_CORES * measured),
            func.sum(SessionUse.mem_byte_ms * share),
            func.sum(RESERVED_MEMORY_BYTES * measured),
        )
        self._sessions(sums, a, b, piece.unrolled_only)

    def carried_in(self, start_ms: int) -> None:
        """Count the measured sessions that started before `start_ms` and ran past it."""
        sums = (func.count(), *(literal(0.0) for _ in USE_FIGURES[1:]))
        self._sessions(sums, start_ms, start_ms + 1, False, ServerSession.started_ms < start_ms)


@in_one_snapshot
def efficiency(
    db: DB,
    start_ms: int,
    end_ms: int,
    aggregate: str,
    username: str | None = None,
    rates: Callable[[str], Rates | None] | None = None,
) -> list[dict]:
    """Per name (user, group or profile): what the measured sessions overlapping [start_ms,
    end_ms) used against what they reserved (the guarantee, else the limit), over the time
    measured. A session's measured figures are spread evenly over its time (to its stop,
    or its last sample while it runs), so a window takes the share of them that its overlap
    is. Sessions never measured are left out (and not counted); a name with none measured
    has no row. The whole UTC days are read from the daily rollups, the rest from the
    sessions (`whole_days`), in one snapshot.

    With `rates` (instance type, "" for none -> what a CPU core-hour and a memory GiB-hour
    of a server on it cost: `catalog.pricing.cpu_and_memory_rates`, an instance type's
    price split OpenCost's way, else the resource prices), also OpenCost's cost-weighted
    `totalEfficiency` and what the reserved but unused CPU and memory cost (`costUnused`,
    each instance type's unused core- and GiB-hours at its rates); both None for a name
    with sessions no rate prices."""
    reading = _MeasuredUse(db, aggregate, end_ms, username)
    reading.carried_in(start_ms)
    by_name: dict[str, list[tuple[str, UseRow]]] = defaultdict(list)
    for (name, instance_type), figures in add_up(reading, start_ms, end_ms).items():
        by_name[name].append((instance_type, figures))
    result = []
    for name in sorted(by_name):
        parts = by_name[name]
        count, measured_ms, cpu_used, cpu_asked, ram_used, ram_asked = map(sum, zip(*(f for _, f in parts)))
        row = {
            "name": name,
            "sessions": round(count),
            "measuredHours": measured_ms / HOUR_MS,
            "cpuCoreUsageAverage": cpu_used / measured_ms,
            "cpuCoreRequestAverage": cpu_asked / measured_ms,
            "cpuEfficiency": cpu_used / cpu_asked if cpu_asked else None,
            "ramByteUsageAverage": ram_used / measured_ms,
            "ramByteRequestAverage": ram_asked / measured_ms,
            "ramEfficiency": ram_used / ram_asked if ram_asked else None,
            # what was reserved and not used (more used than reserved: none unused)
            "cpuCoreHoursUnused": max(0.0, cpu_asked - cpu_used) / HOUR_MS,
            "ramGiBHoursUnused": max(0.0, ram_asked - ram_used) / HOUR_MS / GiB,
        }
        if rates is not None:
            row |= _money(parts, rates)
        result.append(row)
    return result


def _money(parts: list[tuple[str, UseRow]], rates: Callable[[str], Rates | None]) -> dict:
    """`totalEfficiency` and `costUnused` of a name's figures by instance type."""
    used = asked = unused = 0.0
    for instance_type, f in parts:
        rate = rates(instance_type)
        if rate is None:
            return {"totalEfficiency": None, "costUnused": None}
        used += (f.cpu_core_ms * rate.cpu + f.mem_byte_ms / GiB * rate.memory) / HOUR_MS
        asked += (f.cpu_reserved_core_ms * rate.cpu + f.mem_reserved_byte_ms / GiB * rate.memory) / HOUR_MS
        unused += max(0.0, f.cpu_reserved_core_ms - f.cpu_core_ms) / HOUR_MS * rate.cpu
        unused += max(0.0, f.mem_reserved_byte_ms - f.mem_byte_ms) / HOUR_MS / GiB * rate.memory
    return {"totalEfficiency": used / asked if asked else None, "costUnused": unused}
