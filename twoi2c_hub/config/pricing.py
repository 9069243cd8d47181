"""The `pricing:` section: a currency, what is charged, and dated price tables.

```yaml
pricing:
  currency: USD
  charge: requests          # or limits, or node_share
  prices:
    - effective: 2026-01-01
      cpu_core_hour: 0.0316
      memory_gib_hour: 0.0042
      gpu_hour: {nvidia-tesla-t4: 0.35}
      home_gib_month: 0.17
      instances:
        n2-highmem-4: {on_demand: 0.2368, spot: 0.0592}
```

A table applies from its `effective` date until the next one's (or its `until`, the
first day it no longer applies). `twoi2c_hub.catalog.pricing` computes the prices.
"""

from __future__ import annotations

import difflib
from datetime import date
from typing import Literal

from pydantic import Field, NonNegativeFloat, field_validator, model_validator

from .. import catalog
from ..catalog.pricing import ANY_GPU
from .base import Strict, _error


class InstancePriceSpec(Strict):
    """An instance type's price per hour."""

    on_demand: NonNegativeFloat | None = None
    """On-demand price per hour."""
    spot: NonNegativeFloat | None = None
    """Spot (preemptible) price per hour, charged when `market: spot`."""

    @model_validator(mode="after")
    def _some_price(self):
        if self.on_demand is None and self.spot is None:
            raise _error("give on_demand and/or spot")
        return self


class PriceTableSpec(Strict):
    """The prices in force from one date."""

    effective: date
    """The first day these prices apply (UTC)."""
    until: date | None = None
    """The first day they no longer apply (default: the next table's effective date)."""
    cpu_core_hour: NonNegativeFloat | None = None
    """Price of one CPU core for an hour."""
    memory_gib_hour: NonNegativeFloat | None = None
    """Price of one GiB of memory for an hour."""
    gpu_hour: dict[str, NonNegativeFloat] | NonNegativeFloat | None = None
    """Price of one GPU for an hour: one price, or one per GPU type (the node selector's
    accelerator label, e.g. nvidia-tesla-t4; "*" for any other)."""
    home_gib_month: NonNegativeFloat | None = None
    """Price of one GiB of home storage for a month."""
    instances: dict[str, InstancePriceSpec] = Field(default_factory=dict)
    """Price per hour by instance type; a server on a priced type is charged its share of
    that price, split into CPU, memory and GPU as OpenCost does."""

    @field_validator("instances")
    @classmethod
    def _known_instances(cls, value, info):
        known = (info.context or {}).get("instance_types") or set(catalog.INSTANCE_TYPES)
        for name in value:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else "; describe it under instance_types"
                raise _error(f"unknown instance type '{name}'{hint}")
        return value

    @model_validator(mode="after")
    def _order(self):
        if self.until is not None and self.until <= self.effective:
            raise _error(f"until ({self.until}) must be after effective ({self.effective})")
        return self

    def to_table(self) -> catalog.PriceTable:
        gpu = self.gpu_hour
        return catalog.PriceTable(
            effective=self.effective,
            cpu_core_hour=self.cpu_core_hour,
            memory_gib_hour=self.memory_gib_hour,
            gpu_hour=dict(gpu) if isinstance(gpu, dict) else ({} if gpu is None else {ANY_GPU: gpu}),
            home_gib_month=self.home_gib_month,
            instances={k: catalog.InstancePrice(v.on_demand, v.spot) for k, v in self.instances.items()},
        )


class FeeSpec(Strict):
    """The operator's fee on the monthly statement."""

    monthly: NonNegativeFloat = 0
    """A fixed amount per month."""
    percent: float = Field(default=0, ge=0, le=1000)
    """A percentage of the month's cloud cost."""


class PricingSection(Strict):
    """Prices, for the cost service and the spawn page."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """The currency of every price (ISO 4217 code); nothing is converted."""
    charge: Literal["requests", "limits", "node_share"] = "requests"
    """What a server is charged for: its requests (guarantees), its limits, or, for
    node-share choices, its share of the node (a whole-node choice pays the node)."""
    market: Literal["on_demand", "spot"] = "on_demand"
    """Which instance price applies."""
    prices: list[PriceTableSpec] = Field(min_length=1)
    """Price tables, each from its effective date."""
    group_rule: Literal["split", "each", "primary"] = "split"
    """How a person in several groups is counted in the cost by group: `split` (each group
    an equal share), `each` (every group the whole cost: groups add up to more than the
    hub), `primary` (the first of `primary_groups` the person was in, else their first
    group by name)."""
    primary_groups: list[str] = Field(default_factory=list)
    """For `group_rule: primary`: the groups that are charged, in order of precedence."""
    fee: FeeSpec = Field(default_factory=FeeSpec)
    """The operator's fee, shown on the monthly statement."""

    @model_validator(mode="after")
    def _no_overlap_no_gap(self):
        tables = sorted(enumerate(self.prices), key=lambda item: item[1].effective)
        for (i, earlier), (j, later) in zip(tables, tables[1:]):
            end = earlier.until or later.effective
            if earlier.effective == later.effective or end > later.effective:
                raise _error(
                    f"prices[{j}] (from {later.effective}) overlaps prices[{i}] (from {earlier.effective} until {end})"
                )
            if end < later.effective:
                raise _error(f"no prices from {end} until {later.effective}: between prices[{i}] and prices[{j}]")
        last_index, last = tables[-1]
        if last.until is not None:
            raise _error(f"prices[{last_index}]: the newest prices apply until a newer table; remove until")
        return self

    @model_validator(mode="after")
    def _primary_groups_with_primary_rule(self):
        if self.primary_groups and self.group_rule != "primary":
            raise _error("primary_groups applies only with group_rule: primary")
        return self

    def to_pricing(self) -> catalog.Pricing:
        return catalog.Pricing(
            currency=self.currency,
            tables=tuple(t.to_table() for t in self.prices),
            charge=self.charge,
            market=self.market,
        )


def unpriced(profile_list: list[dict], pricing: catalog.Pricing, instances: dict) -> list[str]:
    """What no price table can price: each profile alone and with each of its choices."""
    problems = []
    for profile in catalog.initialize(profile_list):
        base = profile.get("kubespawner_override") or {}
        variants = [("", base)]
        for key, option in (profile.get("profile_options") or {}).items():
            for choice_key, choice in (option.get("choices") or {}).items():
                merged = dict(base)
                catalog.merge_override(merged, choice.get("kubespawner_override") or {})
                variants.append((f" with {key}: {choice_key}", merged))
        for where, override in variants:
            server = catalog.ResolvedServer(profile["slug"], profile["display_name"], {}, override).resources()
            for table in pricing.tables:
                try:
                    pricing.hourly(server, table.effective, instances)
                except catalog.PricingError as e:
                    problems.append(f"profile '{profile['slug']}'{where} has no price: {e}")
                    break
    return problems
