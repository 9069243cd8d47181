"""The fleet's money for a month: what each community cost, what it is billed, and the
share of the cost that fees recover.

A cluster's bill has two parts: what its hubs' cost services attributed to people's
servers (each hub's cost API total for the month), and the rest, the shared and idle
cost (system nodes, capacity nobody's server used, disks, network), split between the
communities on the cluster by its rule:

- `by_attributed_cost`: in proportion to the cost their hubs on that cluster were
  attributed (evenly when none was);
- `even`: equal parts;
- `fixed`: the shares the fleet config gives (summing to 1).

A community's cost is its hubs' attributed cost plus its shares; its fee is the fleet
config's amount per month, or (`from_hub`) what its hubs' own statements billed; its
recovery is fee / cost (None when the cost is 0). A month's figures are computed from the
hubs present that month (those with figures): a community is billed in a month when one
of its hubs was; `even` and `by_attributed_cost` split between the communities with a hub
present on the cluster, `fixed` always as written. A cluster without a bill that month
costs what its hubs were attributed (no shared cost).

Money is `Decimal`, rounded to the cent once (half to even, as the statements' `,.2f`),
and every sum is of the rounded figures, so the parts as shown add up: each hub's
attributed cost and each bill are rounded, the shared cost is the rounded bill minus the
rounded attributed costs, and it is split in whole cents (each share its exact part
rounded down, the cents left over to the largest fractions, then by name), so the
shares add up to the shared cost exactly and the communities' costs, with what no
community took, to the bills.

A worked example (docs/fleet.md): cluster east billed 1,000.00, its hubs attributed
500.00 (oceanography 350.00, seismology 150.00), `by_attributed_cost`: the shared 500.00
splits 350.00 and 150.00. Cluster west, 400.00 a month, its hubs attributed 300.00, `even`
between three communities: the shared 100.00 splits 33.34, 33.33 and 33.33 (the cent
left over to the first by name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import NamedTuple

CENT = Decimal("0.01")
RATIO = Decimal("0.0001")  # a recovery ratio: a percentage to two decimals
FROM_HUB = "from_hub"
SPLITS = ("by_attributed_cost", "even", "fixed")


class HubMonth(NamedTuple):
    """A hub's month, as its cost service reports it."""

    attributed_cost: Decimal
    """Its cost API's total for the month: what people's servers and homes cost."""
    fee: Decimal = Decimal(0)
    """What its own monthly statement billed (its `pricing.fee`), for `fee: from_hub`."""


class ClusterMonth(NamedTuple):
    bill: Decimal | None
    """The cluster's bill for the month (None: no bill imported for it)."""
    attributed_cost: Decimal
    """What its hubs were attributed."""
    shared_cost: Decimal
    """The bill minus what its hubs were attributed (negative when they were attributed
    more: the split then gives each community back its part)."""
    shares: dict[str, Decimal]
    """The shared cost by community; they add up to it, but for `unallocated`."""
    unallocated: Decimal
    """Shared cost no community took: no community on the cluster that month."""

    @property
    def cost(self) -> Decimal:
        return self.bill if self.bill is not None else self.attributed_cost


class CommunityMonth(NamedTuple):
    attributed_cost: Decimal
    """What its hubs were attributed, on every cluster."""
    shared_cost: Decimal
    """Its shares of its clusters' shared cost."""
    cost: Decimal
    """attributed_cost + shared_cost."""
    fee: Decimal
    """What it is billed."""
    recovery: Decimal | None
    """fee / cost, to 4 decimals; None when the cost is 0."""


class FleetMonth(NamedTuple):
    hubs: dict[str, Decimal]
    """Each present hub's attributed cost, rounded."""
    clusters: dict[str, ClusterMonth]
    communities: dict[str, CommunityMonth]
    total: CommunityMonth
    """The fleet's: its cost is the clusters' (the bills, or what was attributed)."""
    unallocated: Decimal
    """The shared cost no community took, on every cluster (in total.cost, in no
    community's)."""


def money(value: Decimal | int | float | str) -> Decimal:
    """An amount as a Decimal: a float as it prints (0.1 is 0.1, not its binary value)."""
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r}")
    return amount


def to_cents(value: Decimal | int | float | str) -> Decimal:
    """An amount rounded to the cent, half to even."""
    return money(value).quantize(CENT, rounding=ROUND_HALF_EVEN)


def recovery(fee: Decimal, cost: Decimal) -> Decimal | None:
    """fee / cost to 4 decimals (0.5357 is 53.57 %), None when nothing was spent."""
    return None if cost == 0 else (fee / cost).quantize(RATIO, rounding=ROUND_HALF_EVEN)


def split_cents(amount: Decimal, weights: Mapping[str, Decimal | int | Fraction]) -> dict[str, Decimal]:
    """`amount` (in whole cents) split in proportion to `weights` (not negative, not all
    0), in whole cents that add up to it exactly: each part its exact quota rounded
    down, the cents left over one each to the largest remainders, ties by name."""
    cents = money(amount) / CENT
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of cents")
    exact = {name: Fraction(weight) for name, weight in sorted(weights.items())}
    if any(weight < 0 for weight in exact.values()) or not sum(exact.values()):
        raise ValueError(f"weights must be positive or 0, and not all 0: {dict(weights)}")
    total = sum(exact.values())
    quotas = {name: int(cents) * weight / total for name, weight in exact.items()}
    parts = {name: math.floor(quota) for name, quota in quotas.items()}
    left = int(cents) - sum(parts.values())  # 0 <= left < len(parts)
    for name in sorted(quotas, key=lambda n: (parts[n] - quotas[n], n))[:left]:
        parts[name] += 1
    return {name: Decimal(part) * CENT for name, part in parts.items()}


def month_money(
    placement: Mapping[str, tuple[str, str]],
    sharing: Mapping[str, tuple[str, Mapping[str, Decimal]]],
    fees: Mapping[str, Decimal | str],
    bills: Mapping[str, Decimal | None],
    hubs: Mapping[str, HubMonth],
) -> FleetMonth:
    """The fleet's money for one month.

    `placement`: hub -> (cluster, community), `sharing`: cluster -> (its split rule, the
    fixed shares by community) and `fees`: community -> fee per month or "from_hub", as
    the fleet config's placement(), sharing() and fees() give them; `bills`: cluster ->
    the month's bill (missing or None: none imported); `hubs`: the month's figures of
    each hub present that month.
    """
    for hub, figures in hubs.items():
        if hub not in placement:
            raise ValueError(f"hub {hub!r} has figures but is not in the fleet")
        if money(figures.attributed_cost) < 0:
            raise ValueError(f"hub {hub!r}: an attributed cost is not negative ({figures.attributed_cost})")
    for hub, (cluster, _) in placement.items():
        if cluster not in sharing:
            raise ValueError(f"hub {hub!r} runs on cluster {cluster!r}, which has no sharing rule")
    attributed = {hub: to_cents(hubs[hub].attributed_cost) for hub in sorted(hubs)}
    clusters = {
        name: _cluster_month(name, rule, shares, bills.get(name), placement, attributed)
        for name, (rule, shares) in sorted(sharing.items())
    }
    present = {placement[hub][1] for hub in attributed}
    shared = {community for cluster in clusters.values() for community in cluster.shares}
    communities = {}
    for community in sorted(present | shared):
        own = [hub for hub in attributed if placement[hub][1] == community]
        attributed_cost = sum((attributed[hub] for hub in own), Decimal("0.00"))
        shared_cost = sum((c.shares.get(community, Decimal(0)) for c in clusters.values()), Decimal("0.00"))
        fee = _fee(fees.get(community, Decimal(0)), [hubs[hub] for hub in own]) if own else Decimal("0.00")
        cost = attributed_cost + shared_cost
        communities[community] = CommunityMonth(attributed_cost, shared_cost, cost, fee, recovery(fee, cost))
    unallocated = sum((c.unallocated for c in clusters.values()), Decimal("0.00"))
    total_cost = sum((c.cost for c in clusters.values()), Decimal("0.00"))
    total_fee = sum((c.fee for c in communities.values()), Decimal("0.00"))
    total = CommunityMonth(
        sum((c.attributed_cost for c in clusters.values()), Decimal("0.00")),
        sum((c.shared_cost for c in clusters.values()), Decimal("0.00")),
        total_cost,
        total_fee,
        recovery(total_fee, total_cost),
    )
    return FleetMonth(attributed, clusters, communities, total, unallocated)


def _cluster_month(
    name: str,
    rule: str,
    fixed: Mapping[str, Decimal],
    bill: Decimal | None,
    placement: Mapping[str, tuple[str, str]],
    attributed: Mapping[str, Decimal],
) -> ClusterMonth:
    if rule not in SPLITS:
        raise ValueError(f"cluster {name!r}: the shared cost is split {', '.join(SPLITS)}, not {rule!r}")
    by_community: dict[str, Decimal] = {}
    for hub, cost in attributed.items():
        cluster, community = placement[hub]
        if cluster == name:
            by_community[community] = by_community.get(community, Decimal(0)) + cost
    attributed_cost = sum(by_community.values(), Decimal("0.00"))
    if bill is None:
        return ClusterMonth(None, attributed_cost, Decimal("0.00"), {}, Decimal("0.00"))
    bill = to_cents(bill)
    shared_cost = bill - attributed_cost
    if rule == "fixed":
        weights: Mapping[str, Decimal | int] = fixed
    elif rule == "by_attributed_cost" and any(by_community.values()):
        weights = by_community
    else:  # even, and by_attributed_cost when the hubs were attributed nothing
        weights = {community: 1 for community in by_community}
    if not weights or not any(weights.values()):
        return ClusterMonth(bill, attributed_cost, shared_cost, {}, shared_cost)
    return ClusterMonth(bill, attributed_cost, shared_cost, split_cents(shared_cost, weights), Decimal("0.00"))


def _fee(fee: Decimal | str, own: list[HubMonth]) -> Decimal:
    """A present community's fee: the config's, or the sum of its hubs' statements' fees."""
    if fee == FROM_HUB:
        return sum((to_cents(hub.fee) for hub in own), Decimal("0.00"))
    return to_cents(fee)
