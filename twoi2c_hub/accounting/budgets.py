"""Budget state: what each budget that applies to a person has used, what is left, and
what follows (warn, restrict, deny, stop), combined by the hub's rule.

Spending is read with the cost and usage reports (rollups plus the sessions not yet in
them, running ones up to now), so a budget's figure is the one the reports show. A
calendar-month budget resets on the 1st (UTC); a rolling one counts the last N days, and
a person it denies can start again once enough of their spending has aged out of the
window (`resets`, to the minute). Top-ups add to the limit of the period they are given in; an
extension suspends deny and stop until its date. Both are kept in `budget_ledger`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, bindparam, case, func, select
from sqlalchemy.orm import Session as DB

from ..catalog import ServerResources
from ..catalog.pricing import amount, charged
from .cost_reports import cost
from .costs import CostBasis, SessionCoster
from .figures import NO_COST, NO_USAGE
from .models import DAY_MS, LedgerEntry, from_ms, to_ms
from .reports import usage
from .spending import PersonHistory
from .storage import storage_cost

ACTIONS = ("none", "warn", "restrict", "deny", "stop")
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Threshold:
    percent: float
    action: str
    grace_seconds: float = 600


@dataclass(frozen=True)
class Budget:
    name: str
    applies_to: str  # user, group, hub
    names: tuple[str, ...]
    limit: float
    unit: str = "money"
    per_person: bool = True
    rolling_days: int | None = None  # None: the calendar month
    thresholds: tuple[Threshold, ...] = (Threshold(80, "warn"), Threshold(100, "deny"))
    display_name: str | None = None  # what people read; None: the name

    @property
    def shown(self) -> str:
        return self.display_name or self.name

    @property
    def period_text(self) -> str:
        return "this month" if self.rolling_days is None else f"the last {self.rolling_days} days"

    def subjects(self, username: str, groups: frozenset[str]) -> list[tuple[str, str | None]]:
        """(subject, group) pairs this budget limits for the person: the person
        themselves, a group they share it with, or the hub ("")."""
        if self.applies_to == "user":
            return [(username, None)] if username in self.names else []
        if self.applies_to == "group":
            mine = sorted(set(self.names) & groups)
            if self.per_person:
                return [(username, mine[0])] if mine else []
            return [(group, group) for group in mine]
        return [("", None)]

    def period(self, now_ms: int) -> tuple[int, int | None]:
        """(start of the period, when it resets: None for a rolling window)."""
        if self.rolling_days is not None:
            return now_ms - self.rolling_days * DAY_MS, None
        now = from_ms(now_ms)
        start = datetime(now.year, now.month, 1, tzinfo=UTC)
        following = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        return to_ms(start), to_ms(following)


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    subject: str
    group: str | None
    used: float
    limit: float  # with the period's top-ups
    action: str
    period_start_ms: int
    resets_ms: int | None
    extended_until_ms: int | None = None

    @property
    def left(self) -> float:
        return max(0.0, self.limit - self.used)

    @property
    def percent(self) -> float:
        return 100 * self.used / self.limit if self.limit else 100.0

    @property
    def severity(self) -> int:
        return ACTIONS.index(self.action)

    @property
    def grace_seconds(self) -> float:
        stops = [t.grace_seconds for t in self.budget.thresholds if t.action == "stop" and self.percent >= t.percent]
        return min(stops) if stops else 0.0


def spending(
    db: DB, basis: CostBasis | None, budget: Budget, subject: str, since: int, now: int
) -> Callable[[int], float]:
    """start -> what `subject` (a person, a group, or the hub) spent in [start, now), in the
    budget's unit, for any start at or after `since`. A person's own history is read once
    (the spawn-time check's case); a group's or the hub's is read for each start."""
    person = budget.applies_to == "user" or (budget.applies_to == "group" and budget.per_person)
    money = budget.unit == "money"
    if person:
        coster = SessionCoster(basis) if basis is not None else None
        history = PersonHistory(db, coster, subject, since, now, frozenset([budget.unit]))
        if not money:
            return lambda a: history.spent(a)[budget.unit]
        return lambda a: history.spent(a)["money"] + storage_cost(db, basis, a, now, "user", subject).get(subject, 0.0)
    aggregate = "user" if budget.applies_to == "hub" else "group"

    def shared(a: int) -> float:
        if money:
            totals = cost(db, basis, a, now, aggregate, now)
            homes = storage_cost(db, basis, a, now, aggregate)
            rows = list(totals.values()) if budget.applies_to == "hub" else [totals.get(subject, NO_COST)]
            stored = sum(homes.values()) if budget.applies_to == "hub" else homes.get(subject, 0.0)
            return sum(row.compute_cost for row in rows) + stored
        hours = usage(db, a, now, aggregate, now)
        rows = [hours.get(subject, NO_USAGE)] if budget.applies_to != "hub" else list(hours.values())
        return sum(getattr(row, budget.unit) for row in rows)

    return shared


def spent(db: DB, basis: CostBasis | None, budget: Budget, subject: str, a: int, now: int) -> float:
    """What `subject` spent in [a, now), in the budget's unit."""
    return spending(db, basis, budget, subject, a, now)(a)


_IN_PERIOD = and_(
    LedgerEntry.kind == "topup", LedgerEntry.at_ms >= bindparam("start"), LedgerEntry.at_ms <= bindparam("now")
)
_LEDGER = select(
    func.sum(case((_IN_PERIOD, LedgerEntry.amount), else_=0.0)),
    func.max(case((LedgerEntry.kind == "extension", LedgerEntry.until_ms), else_=None)),
).where(LedgerEntry.budget == bindparam("budget"), LedgerEntry.subject == bindparam("subject"))


def _ledger(db: DB, budget: Budget, subject: str, start_ms: int, now_ms: int) -> tuple[float, int | None]:
    """(top-ups given in the period, the latest extension's end if still ahead), one query."""
    params = {"start": start_ms, "now": now_ms, "budget": budget.name, "subject": subject}
    topups, until = db.execute(_LEDGER, params).one()
    return float(topups or 0.0), until if until is not None and until > now_ms else None


def status(db: DB, basis: CostBasis | None, budget: Budget, subject: str, group: str | None, now: int) -> BudgetStatus:
    start, resets = budget.period(now)
    spend = spending(db, basis, budget, subject, start, now)
    used = spend(start)
    topups, extended = _ledger(db, budget, subject, start, now)
    limit = budget.limit + topups
    percent = 100 * used / limit
    crossed = [t.action for t in budget.thresholds if percent >= t.percent]
    action = max(crossed, key=ACTIONS.index) if crossed else "none"
    if extended is not None and ACTIONS.index(action) > ACTIONS.index("restrict"):
        action = "restrict"  # an extension: no deny, no stop until it ends
    if resets is None and ACTIONS.index(action) >= ACTIONS.index("deny"):
        resets = _rolling_reset(spend, budget, now, limit)
    return BudgetStatus(budget, subject, group, used, limit, action, start, resets, extended)


def _rolling_reset(spend: Callable[[int], float], budget: Budget, now: int, limit: float) -> int | None:
    """When enough of a rolling window's spending has aged out to fall below the lowest
    deny threshold, to the minute (running servers not counted on): the earliest window
    start whose spending up to now is below it, plus the window's length."""
    deny_at = min(t.percent for t in budget.thresholds if t.action in ("deny", "stop")) / 100 * limit
    length = budget.rolling_days * DAY_MS
    low, high = now - length, now  # spending from `high` is nothing: below any limit
    while high - low > MINUTE_MS:
        middle = (low + high) // 2
        if spend(middle) < deny_at:
            high = middle
        else:
            low = middle
    return -(-high // MINUTE_MS) * MINUTE_MS + length


@dataclass(frozen=True)
class Decision:
    """What the budgets that apply to a person say, combined."""

    action: str
    statuses: tuple[BudgetStatus, ...]
    decisive: BudgetStatus | None

    @property
    def severity(self) -> int:
        return ACTIONS.index(self.action)


def combine(statuses: list[BudgetStatus], rule: str) -> Decision:
    """least_generous: the most severe budget decides; most_generous: the least severe;
    sum: a person's own budgets of one unit and period add their limits into one."""
    if not statuses:
        return Decision("none", (), None)
    pool = list(statuses)
    if rule == "sum":
        pool = _summed(pool)
        rule = "least_generous"
    if rule == "most_generous":
        decisive = min(pool, key=lambda s: (s.severity, -s.left))
    else:
        decisive = max(pool, key=lambda s: (s.severity, -s.left))
    return Decision(decisive.action, tuple(statuses), decisive)


def _summed(statuses: list[BudgetStatus]) -> list[BudgetStatus]:
    own: dict[tuple, list[BudgetStatus]] = {}
    rest = []
    for s in statuses:
        if s.subject and (s.budget.applies_to == "user" or s.budget.per_person):
            own.setdefault((s.budget.unit, s.budget.rolling_days), []).append(s)
        else:
            rest.append(s)
    for group in own.values():
        first = group[0]
        limit = sum(s.limit for s in group)
        percent = 100 * first.used / limit
        crossed = [t.action for t in first.budget.thresholds if percent >= t.percent]
        action = max(crossed, key=ACTIONS.index) if crossed else "none"
        rest.append(BudgetStatus(first.budget, first.subject, first.group, first.used, limit, action,
                                 first.period_start_ms, first.resets_ms, first.extended_until_ms))  # fmt: skip
    return rest


def decide(
    db: DB, basis: CostBasis | None, budgets: list[Budget], rule: str, username: str, groups, now_ms: int
) -> Decision:
    groups = frozenset(groups)
    statuses = [
        status(db, basis, budget, subject, group, now_ms)
        for budget in budgets
        for subject, group in budget.subjects(username, groups)
    ]
    return combine(statuses, rule)


def hourly_in_unit(basis: CostBasis | None, unit: str, server: ServerResources, now_ms: int) -> float:
    """What an hour of `server` uses of a budget in `unit`."""
    if unit == "money":
        return basis.pricing.hourly(server, from_ms(now_ms).date(), basis.instances).total
    if unit == "server_hours":
        return 1.0
    amounts = charged(server, basis.pricing.charge if basis else "requests")
    return {"cpu_core_hours": amounts.cpu, "memory_gib_hours": amounts.memory_gib}.get(unit, amounts.gpus)


# A month-end forecast from fewer days than this would mostly be the first days' noise (one
# evening's GPU session on the 1st read as the month's rate): none is made, none alerted.
FORECAST_MIN_DAYS = 3
# a forecast from fewer days than this is said to be a rough one
FORECAST_FIRM_DAYS = 10


@dataclass(frozen=True)
class Forecast:
    """A calendar month's spending so far, carried on in a straight line to its end."""

    spent: float
    elapsed_days: float  # of the month, up to now
    month_days: int

    @property
    def ready(self) -> bool:
        """Enough of the month has passed to forecast its end."""
        return self.elapsed_days >= FORECAST_MIN_DAYS

    @property
    def at_end(self) -> float | None:
        """What the month will have cost at this rate (None: too early to say)."""
        return self.spent * self.month_days / self.elapsed_days if self.ready else None

    @property
    def rough(self) -> bool:
        return self.elapsed_days < FORECAST_FIRM_DAYS


def month_end_forecast(s: BudgetStatus, now: int) -> Forecast | None:
    """The forecast of a calendar-month budget (None for a rolling one: it has no end)."""
    if s.resets_ms is None or s.budget.rolling_days is not None:
        return None
    elapsed_ms = max(0, min(now, s.resets_ms) - s.period_start_ms)
    return Forecast(s.used, elapsed_ms / DAY_MS, round((s.resets_ms - s.period_start_ms) / DAY_MS))


def spending_over_time(db: DB, basis, s: BudgetStatus, now: int) -> dict:
    """The period so far, day by day (cumulative), the limit, and for a calendar month
    past its first FORECAST_MIN_DAYS days a straight-line forecast to its end: a chart of
    spend against the budget."""
    budget, days, total = s.budget, [], 0.0
    day = s.period_start_ms
    while day < now:
        end = min(now, (day // DAY_MS + 1) * DAY_MS)
        total += spent(db, basis, budget, s.subject, day, end)
        days.append((from_ms(day).date().isoformat(), round(total, 6)))
        day = end
    chart = {"days": [d for d, _ in days], "spent": [v for _, v in days], "limit": s.limit, "forecast": None}
    forecast = month_end_forecast(s, now)
    if forecast is not None and forecast.ready:
        last_day = from_ms(s.resets_ms - 1).date().isoformat()
        chart["forecast"] = {"days": [days[-1][0], last_day], "spent": [round(total, 6), round(forecast.at_end, 6)]}
    return chart


# --- what people are told ----------------------------------------------------------------


def describe(s: BudgetStatus, currency: str) -> str:
    """'students-monthly: 18.40 USD of 20.00 USD used (92 %), resets on 2026-12-01'."""
    text = (
        f"{s.budget.shown}: {amount(s.used, s.budget.unit, currency)} of "
        f"{amount(s.limit, s.budget.unit, currency)} used ({s.percent:.0f} %)"
    )
    if s.budget.rolling_days is not None:
        text += f" in the last {s.budget.rolling_days} days"
    if s.resets_ms is not None:
        verb = "resets" if s.budget.rolling_days is None else "you can start again"
        text += f"; {verb} on {from_ms(s.resets_ms).date().isoformat()}"
    return text


def forecast_text(f: Forecast, unit: str, currency: str) -> str:
    """How the month will end at this rate, and how sure that is: 'a rough forecast from
    the first 4 of the month's 30 days: 131.77 USD by its end at this rate'."""
    if not f.ready:
        wait = f"forecasts start once its first {FORECAST_MIN_DAYS} days have passed"
        return f"too early to forecast the month's end: {wait}"
    basis = f"the first {int(f.elapsed_days)} of the month's {f.month_days} days"
    return (
        f"{'a rough forecast' if f.rough else 'forecast'} from {basis}: "
        f"{amount(f.at_end, unit, currency)} by its end at this rate"
    )


def spending_caption(s: BudgetStatus, now: int, currency: str) -> str:
    """What the chart of a budget's spending says: so far, of what, and the forecast."""
    unit = s.budget.unit
    period = s.budget.period_text if s.budget.rolling_days is None else f"in {s.budget.period_text}"
    text = f"spent {amount(s.used, unit, currency)} of {amount(s.limit, unit, currency)} {period}"
    forecast = month_end_forecast(s, now)
    if forecast is not None:
        text += f"; {forecast_text(forecast, unit, currency)}"
    return text
