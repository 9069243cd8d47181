"""The `budgets:` section: limits on what a person, a group or the hub may spend.

```yaml
budgets:
  combine: least_generous     # several budgets on one person: least_generous, most_generous, sum
  when_unreadable: allow      # the accounting data cannot be read: allow (and count) or deny
  contact: Ask your instructor (instructor@example.org) for more.
  budgets:
    - name: students-monthly
      applies_to: group       # user, group or hub
      names: [students]
      limit: 20               # in the pricing currency (unit: money), or hours
      period: month           # calendar month (resets on the 1st), or rolling: 30d
      thresholds:
        - {at: 80, action: warn}
        - {at: 90, action: restrict}
        - {at: 100, action: deny}
        - {at: 120, action: stop, grace_minutes: 10}
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, PositiveFloat, field_validator, model_validator

from .base import Strict, _error
from .yamlfile import shown

ACTIONS = ("warn", "restrict", "deny", "stop")


class Threshold(Strict):
    """What happens once a share of the limit is used."""

    at: float = Field(gt=0, le=1000)
    """Percent of the limit (80 = 80 %)."""
    action: Literal["warn", "restrict", "deny", "stop"]
    """warn: the banner and spawn page show what is left; restrict: choices that cost more
    per hour than is left are disabled; deny: no new server; stop: running servers are
    stopped after `grace_minutes`, with notice."""
    grace_minutes: float = Field(default=10, ge=0)
    """For stop: minutes between the notice and the stop."""


class BudgetSpec(Strict):
    """One budget."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    """A short name (lowercase letters, digits, - _ .), the ledger's and the API's."""
    display_name: str | None = Field(default=None, min_length=1, max_length=80)
    """What people read ("Students' weekly allowance"); unset: the short name."""
    applies_to: Literal["user", "group", "hub"]
    """Whose spending it limits."""
    names: list[str] = Field(default_factory=list)
    """The users or groups it applies to (empty for the hub)."""
    per_person: bool = True
    """For a group: each member has the whole limit (true), or the group shares it (false)."""
    unit: Literal["money", "server_hours", "cpu_core_hours", "memory_gib_hours", "gpu_hours"] = "money"
    """money (the pricing currency) or resource-hours."""
    limit: PositiveFloat
    """The limit per period, in `unit`."""
    period: str = "month"
    """`month` (calendar month, UTC, resets on the 1st) or rolling days, e.g. `30d`."""
    thresholds: list[Threshold] = Field(
        default_factory=lambda: [Threshold(at=80, action="warn"), Threshold(at=100, action="deny")]
    )
    """What happens at which share of the limit (default: warn at 80 %, deny at 100 %)."""

    @field_validator("period")
    @classmethod
    def _period(cls, value):
        if value != "month" and not re.fullmatch(r"[1-9][0-9]{0,2}d", value):
            raise _error(f"must be month or a number of days like 30d, not {shown(value)}")
        return value

    @model_validator(mode="after")
    def _names(self):
        if self.applies_to == "hub" and self.names:
            raise _error("a hub budget names no users or groups")
        if self.applies_to != "hub" and not self.names:
            raise _error(f"name the {self.applies_to}s it applies to in names")
        return self

    @property
    def rolling_days(self) -> int | None:
        return None if self.period == "month" else int(self.period[:-1])


class EmailAlerts(Strict):
    """Budget alerts by e-mail to the community admins."""

    to: list[str] = Field(min_length=1)
    """Who receives them."""
    sender: str = Field(alias="from")
    """The From address."""
    smtp_host: str = "localhost"
    """The SMTP server."""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    """Its port."""
    starttls: bool = False
    """Upgrade the connection with STARTTLS."""
    username: str | None = None
    """Log in to the SMTP server as."""
    password_env: str | None = None
    """The environment variable holding the SMTP password."""


class WebhookAlerts(Strict):
    """Budget alerts posted as Slack-compatible JSON (`{"text": ...}`)."""

    url: str | None = None
    """The webhook's URL."""
    url_env: str | None = None
    """Or the environment variable holding it (a webhook URL is a secret)."""

    @model_validator(mode="after")
    def _one_url(self):
        if (self.url is None) == (self.url_env is None):
            raise _error("give url or url_env")
        return self


class AlertsSection(Strict):
    """Alerts to the community admins, each at most once per budget and period."""

    at: list[float] = Field(default_factory=lambda: [50, 75, 90, 100])
    """Percentages of a budget that raise an alert."""
    forecast: bool = True
    """Also alert when a calendar-month budget's month-end forecast passes its limit."""
    email: EmailAlerts | None = None
    """By e-mail."""
    webhook: WebhookAlerts | None = None
    """By webhook."""


class BudgetsSection(Strict):
    """Budgets, and how they combine."""

    budgets: list[BudgetSpec] = Field(default_factory=list)
    """The budgets."""
    combine: Literal["least_generous", "most_generous", "sum"] = "least_generous"
    """Several budgets on one person: the least generous decides, the most generous
    decides, or (sum) the limits of their per-person budgets of one unit add up."""
    when_unreadable: Literal["allow", "deny"] = "allow"
    """When the accounting data cannot be read at a spawn: allow it (counted on /metrics)
    or refuse it with a message."""
    contact: str | None = None
    """Who to ask for more, shown with every warning and refusal."""
    alerts: AlertsSection | None = None
    """Alerts for the budgets of the hub, of a whole group (`per_person: false`) and of
    named users; not for each member of a group's per-person budget."""

    @model_validator(mode="after")
    def _unique(self):
        seen = set()
        for i, budget in enumerate(self.budgets):
            if budget.name in seen:
                raise _error(f"budgets[{i}]: another budget is also named {budget.name!r}")
            seen.add(budget.name)
        return self
