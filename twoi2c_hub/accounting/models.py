"""What the usage service records: server sessions, dated group membership, rollups.

Times are UTC epoch milliseconds (`*_ms`): the same arithmetic on SQLite and PostgreSQL,
no time zone to get wrong. A session is identified by the hub's own start time of the
server (`username`, `server_name`, `started_ms`), so an event and the reconciliation
loop that both see a session record it once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# how a session ended
STOP_REASONS = ("user", "admin", "culler", "crash", "hub", "reconciled", "budget")
# each said as a person reads it, on the pages
STOP_REASON_WORDS = {
    "user": "stopped by its owner",
    "admin": "stopped by an admin",
    "culler": "stopped after being idle",
    "crash": "ended on its own (a crash)",
    "hub": "stopped by the hub (a restart)",
    "reconciled": "found stopped by the hub",
    "budget": "stopped: the budget was used up",
}


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class Base(DeclarativeBase):
    pass


class ServerSession(Base):
    """One run of one server, from its start to its stop."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("username", "server_name", "started_ms", name="one_session_per_start"),
        Index("sessions_by_start", "started_ms"),
        Index("sessions_by_user", "username", "started_ms"),
        Index("sessions_open", "stopped_ms"),
        Index("sessions_by_duration", "duration_ms"),
        # the few sessions not yet in the rollups, found without scanning the rest
        Index("sessions_unrolled", "rolled_up", "started_ms"),
        Index("sessions_cost_unrolled", "cost_rolled_up", "started_ms"),
    )

    # columns in the order the migrations add them: a new database, made from these
    # models in one step, is the same as one migrated step by step
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str | None] = mapped_column(String(255))
    # option -> choice key (or the written-in value), as JSON text
    choices: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)
    cpu_guarantee: Mapped[float | None] = mapped_column(Float)
    cpu_limit: Mapped[float | None] = mapped_column(Float)
    mem_guarantee_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mem_limit_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    gpu_type: Mapped[str | None] = mapped_column(String(255))
    started_ms: Mapped[int] = mapped_column(BigInteger)
    stopped_ms: Mapped[int | None] = mapped_column(BigInteger)
    # stopped - started, kept so that reports can bound how far back a window reaches
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    # "event": told by the spawner; "reconciled": found by the reconciliation loop
    source: Mapped[str] = mapped_column(String(32), default="event")
    # last time the reconciliation loop saw the server running
    seen_ms: Mapped[int | None] = mapped_column(BigInteger)
    # counted in the daily rollups (only closed sessions are)
    rolled_up: Mapped[bool] = mapped_column(Boolean, default=False)
    # the node's instance type, when the profile chose one (priced by instance type)
    instance_type: Mapped[str | None] = mapped_column(String(255))
    # counted in the daily cost rollups (computed with the prices in force, see costs.py)
    cost_rolled_up: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SessionGroup(Base):
    """The groups the person was in when the session started."""

    __tablename__ = "session_groups"
    __table_args__ = (Index("session_groups_by_group", "group_name"),)

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class GroupMembership(Base):
    """Who was in which group, from when until when (open: still a member)."""

    __tablename__ = "group_memberships"
    __table_args__ = (Index("memberships_by_user", "username", "group_name", "until_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    group_name: Mapped[str] = mapped_column(String(255))
    since_ms: Mapped[int] = mapped_column(BigInteger)
    until_ms: Mapped[int | None] = mapped_column(BigInteger)


class UsageFigures:
    """The figures every rollup row adds up, in OpenCost's names."""

    sessions: Mapped[int] = mapped_column(Integer, default=0)  # sessions that started that day
    server_hours: Mapped[float] = mapped_column(Float, default=0)
    cpu_core_hours: Mapped[float] = mapped_column(Float, default=0)
    memory_gib_hours: Mapped[float] = mapped_column(Float, default=0)
    gpu_hours: Mapped[float] = mapped_column(Float, default=0)


# rows stored in key order (no rowid on SQLite): the days of a window are one range
CLUSTERED = {"sqlite_with_rowid": False}


class DailyUserUsage(UsageFigures, Base):
    """Closed sessions' usage per UTC day and user."""

    __tablename__ = "usage_daily_user"
    __table_args__ = CLUSTERED

    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since 1970-01-01 UTC
    username: Mapped[str] = mapped_column(String(255), primary_key=True)


def month_of(day: int) -> int:
    """The calendar month (UTC) of a day number, as months since year 0 (year * 12 + month - 1)."""
    moment = datetime.fromtimestamp(day * 86_400, tz=UTC)
    return moment.year * 12 + moment.month - 1


def first_day_of(month: int) -> int:
    """The day number of a month's first day."""
    return int(datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp()) // 86_400


def whole_months(first_day: int, end_day: int) -> tuple[range, list[tuple[int, int]]]:
    """Days [first_day, end_day) as the calendar months wholly inside them and the day
    ranges left over (before the first whole month, after the last)."""
    first_month = month_of(first_day) + (0 if first_day_of(month_of(first_day)) == first_day else 1)
    end_month = month_of(end_day)
    if first_month >= end_month:
        return range(0), [(first_day, end_day)] if first_day < end_day else []
    leftovers = [(first_day, first_day_of(first_month)), (first_day_of(end_month), end_day)]
    return range(first_month, end_month), [(a, b) for a, b in leftovers if a < b]


class MonthlyUserUsage(UsageFigures, Base):
    """Closed sessions' usage per calendar month (UTC) and user: reports over whole months
    (last month by person, a year by month) read these instead of 30 days of rows each."""

    __tablename__ = "usage_monthly_user"
    __table_args__ = CLUSTERED

    month: Mapped[int] = mapped_column(Integer, primary_key=True)  # year * 12 + month - 1
    username: Mapped[str] = mapped_column(String(255), primary_key=True)


class DailyGroupUsage(UsageFigures, Base):
    """Closed sessions' usage per UTC day and group (the groups at session start)."""

    __tablename__ = "usage_daily_group"
    __table_args__ = CLUSTERED

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class DailyProfileUsage(UsageFigures, Base):
    """Closed sessions' usage per UTC day and profile."""

    __tablename__ = "usage_daily_profile"
    __table_args__ = CLUSTERED

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile: Mapped[str] = mapped_column(String(255), primary_key=True)


class DailyUserProfileUsage(UsageFigures, Base):
    """Closed sessions' usage per UTC day, user and profile: one person's reports."""

    __tablename__ = "usage_daily_user_profile"
    __table_args__ = (Index("usage_user_profile_by_user", "username", "day"), CLUSTERED)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    profile: Mapped[str] = mapped_column(String(255), primary_key=True)


class DailyUserGroupUsage(UsageFigures, Base):
    """Closed sessions' usage per UTC day, user and group (the groups at session start)."""

    __tablename__ = "usage_daily_user_group"
    __table_args__ = (Index("usage_user_group_by_user", "username", "day"), CLUSTERED)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class CostFigures:
    """What every cost rollup row adds up, in OpenCost's names, and the hours no price covered."""

    cpu_cost: Mapped[float] = mapped_column(Float, default=0)
    ram_cost: Mapped[float] = mapped_column(Float, default=0)
    gpu_cost: Mapped[float] = mapped_column(Float, default=0)
    unpriced_hours: Mapped[float] = mapped_column(Float, default=0)


class DailyUserProfileCost(CostFigures, Base):
    """Closed sessions' cost per UTC day, user and profile."""

    __tablename__ = "cost_daily_user_profile"
    __table_args__ = (Index("cost_user_profile_by_user", "username", "day"), CLUSTERED)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    profile: Mapped[str] = mapped_column(String(255), primary_key=True)


class MonthlyUserCost(CostFigures, Base):
    """Closed sessions' cost per calendar month (UTC) and user (see MonthlyUserUsage)."""

    __tablename__ = "cost_monthly_user"
    __table_args__ = CLUSTERED

    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)


class DailyUserGroupCost(CostFigures, Base):
    """Closed sessions' cost per UTC day, user and group, shared by the hub's group rule."""

    __tablename__ = "cost_daily_user_group"
    __table_args__ = (Index("cost_user_group_by_user", "username", "day"), CLUSTERED)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class CostBasisRow(Base):
    """What the cost rollups were computed with (a digest of prices and rules): when the
    configuration changes, they are computed again from the sessions."""

    __tablename__ = "cost_basis"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    computed_ms: Mapped[int] = mapped_column(BigInteger)


class LedgerEntry(Base):
    """A top-up or an extension of one budget for one person or group, and who gave it, when and why."""

    __tablename__ = "budget_ledger"
    __table_args__ = (Index("ledger_by_budget", "budget", "subject", "at_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    budget: Mapped[str] = mapped_column(String(64))
    # the username (a person's budget) or group name (a group's); "" for the hub's
    subject: Mapped[str] = mapped_column(String(255))
    # "topup": `amount` more for the period it is given in; "extension": nothing is
    # denied or stopped by this budget until `until_ms`
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[float] = mapped_column(Float, default=0)
    until_ms: Mapped[int | None] = mapped_column(BigInteger)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)


class BudgetNotice(Base):
    """Something said once per budget, subject and period: an alert at a threshold, a
    forecast, a stop notice (its time starts the grace period)."""

    __tablename__ = "budget_notices"
    __table_args__ = (UniqueConstraint("budget", "subject", "period_start_ms", "kind", name="one_notice_per_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    budget: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    period_start_ms: Mapped[int] = mapped_column(BigInteger)
    # e.g. "threshold:80", "forecast", "stop"
    kind: Mapped[str] = mapped_column(String(32))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class BillLine(Base):
    """An imported cloud bill, summed per UTC day and service (e.g. Compute Engine)."""

    __tablename__ = "bill_lines"
    __table_args__ = (UniqueConstraint("source", "day", "service", name="one_line_per_day_and_service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # aws, gcp
    day: Mapped[int] = mapped_column(Integer)
    service: Mapped[str] = mapped_column(String(255))
    cost: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(8))
    imported_ms: Mapped[int] = mapped_column(BigInteger)


class HomeUsage(Base):
    """A person's home directory size, measured on a UTC day (the largest that day)."""

    __tablename__ = "home_usage"
    __table_args__ = (Index("home_usage_by_user", "username", "day"),)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)


class SessionUse(Base):
    """What a session's server used (not reserved), as sampled while it ran: CPU and memory
    added up over the time the samples cover (`measured_ms`), and the peaks. None of a
    session: not measured (no source, or none that answered)."""

    __tablename__ = "session_use"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    first_sample_ms: Mapped[int] = mapped_column(BigInteger)
    last_sample_ms: Mapped[int] = mapped_column(BigInteger)
    # the time between consecutive samples, added up: what the averages are over
    measured_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # the server's CPU time in core-milliseconds over measured_ms; the cumulative CPU
    # seconds at the last sample, to take the next difference from
    cpu_core_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_seconds_at_last: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_peak_cores: Mapped[float] = mapped_column(Float, default=0.0)
    # resident memory in byte-milliseconds over measured_ms, and the largest seen
    mem_byte_ms: Mapped[float] = mapped_column(Float, default=0.0)
    mem_peak_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # GPU utilisation (0-1) in milliseconds over gpu_measured_ms, where a source has it
    gpu_util_ms: Mapped[float | None] = mapped_column(Float)
    gpu_measured_ms: Mapped[int | None] = mapped_column(BigInteger)


class UseFigures:
    """What every rollup of measured use adds up: a closed session's measured figures
    spread evenly over its time, each day its share; `sessions`: measured ones started that day."""

    sessions: Mapped[int] = mapped_column(Integer, default=0)
    measured_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_core_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_reserved_core_ms: Mapped[float] = mapped_column(Float, default=0.0)  # the guarantee, else the limit
    mem_byte_ms: Mapped[float] = mapped_column(Float, default=0.0)
    mem_reserved_byte_ms: Mapped[float] = mapped_column(Float, default=0.0)


class DailyUserProfileUse(UseFigures, Base):
    """Closed sessions' measured use per UTC day, user, profile and instance type (its price)."""

    __tablename__ = "use_daily_user_profile"
    __table_args__ = (Index("use_user_profile_by_user", "username", "day"), CLUSTERED)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    profile: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance_type: Mapped[str] = mapped_column(String(255), primary_key=True)  # "": none (priced per resource)


class DailyUserGroupUse(UseFigures, Base):
    """Closed sessions' measured use per UTC day, user, group (at session start) and instance type."""

    __tablename__ = "use_daily_user_group"
    __table_args__ = (Index("use_user_group_by_user", "username", "day"), CLUSTERED)

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance_type: Mapped[str] = mapped_column(String(255), primary_key=True)
