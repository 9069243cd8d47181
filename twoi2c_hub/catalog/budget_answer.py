"""The budget check's answer: may this person start this server, and their budgets' state.

The cost service builds it (`api/v1/budgets/check`, and each budget's line in
`api/v1/budgets`); the spawners read it for the spawn form's notice and at every start.
On the wire the keys are those the API has always answered with (`appliesTo`,
`periodStart`, ...); a key the service leaves out (`price_per_hour` when no server was
asked about, `stop_at` unless running servers are to stop) stays out.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["none", "warn", "restrict", "deny", "stop"]


class BudgetLine(BaseModel):
    """One budget that applies to the person: what it allows, what is used and left."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    budget: str
    display_name: str | None = Field(None, alias="displayName")  # what people read (None: `budget`)
    applies_to: str = Field(alias="appliesTo")
    subject: str
    unit: str  # "money" or a resource-hours unit ("cpu_core_hours", ...)
    currency: str | None = None  # for a budget in money
    used: float
    limit: float
    left: float
    percent: float
    action: Action
    period: str
    period_start: str | None = Field(None, alias="periodStart")
    resets: str | None = None
    extended_until: str | None = Field(None, alias="extendedUntil")
    text: str  # the line in words, as the pages show it


class RecentUse(BaseModel):
    """What a person's last measured sessions on one profile used at most."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    sessions: int
    ram_byte_usage_max: int = Field(alias="ramByteUsageMax")
    cpu_core_usage_average: float = Field(alias="cpuCoreUsageAverage")

    def text(self) -> str:
        last = "Your last session" if self.sessions == 1 else f"Your last {self.sessions} sessions"
        return (
            f"{last} here used at most {self.ram_byte_usage_max / 1024**3:.1f} GiB of memory "
            f"and {self.cpu_core_usage_average:.1f} CPU on average."
        )


class BudgetAnswer(BaseModel):
    """The decision and the lines it was made from; `allowed` False with a `message` that
    says why (and whom to ask: the community's `contact`)."""

    model_config = ConfigDict(populate_by_name=True)

    allowed: bool = True
    action: Action = "none"
    message: str | None = None
    contact: str | None = None
    as_of: int | None = None  # epoch ms the figures are for (running servers count up to it)
    decisive: str | None = None  # the budget that decided
    budgets: list[BudgetLine] = []
    price_per_hour: float | None = None  # when a server was asked about
    currency: str | None = None
    stop_at: str | None = None  # when running servers stop (action "stop")
    # profile -> what the person's recent sessions on it used (the spawn page's question only)
    recent_use: dict[str, RecentUse] | None = Field(None, alias="recentUse")

    def decisive_line(self) -> BudgetLine | None:
        """The line of the budget that decided (the first line if none did)."""
        return next((b for b in self.budgets if b.budget == self.decisive), self.budgets[0] if self.budgets else None)

    @property
    def stops_every_start(self) -> bool:
        return self.action in ("deny", "stop")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_unset=True)
