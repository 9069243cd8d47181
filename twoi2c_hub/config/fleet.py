"""The fleet config (`fleet.yaml`): one operator's hubs, the clusters they run on, and the
communities they serve, validated as the community config is (every problem with its
path, unknown keys refused with a "did you mean").

```yaml
fleet:
  name: Example Operator
  currency: USD
  secret_env: TWOI2C_FLEET_SECRET   # the key of the people's digests
clusters:
  - name: east
    bills: [bills/east-*.csv]       # AWS CUR or GCP billing exports
    shared_cost: by_attributed_cost # or even, or fixed with shares
communities:
  - name: oceanography
    fee: 400                        # per month, or from_hub: the hub's own pricing.fee
hubs:
  - name: ocean-prod
    community: oceanography
    cluster: east
    url: https://ocean.example.org
    token_env: FLEET_TOKEN_OCEAN_PROD
```

A file is a fleet config when it has a top-level `fleet:` key (`check-config` tells the
two kinds apart by it). The money and the people are computed in
`twoi2c_hub.accounting.fleet`, from the plain data `placement()`, `sharing()` and
`fees()` give (config stays pure models and loading: nothing is collected here).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .base import SLUG_PATTERN, _error
from .loading import ConfigError, _message, _path
from .overrides import suggestion
from .yamlfile import MAX_CONFIG_BYTES, YamlRefused, load, one_line, read_text, shown

ENVIRONMENT_VARIABLE = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_AMOUNT = Decimal(10) ** 12  # a month's bill or fee (as a bill's line: accounting.bills.MAX_AMOUNT)
Split = Literal["by_attributed_cost", "even", "fixed"]


class FleetModel(BaseModel):
    """Unknown keys refused, as in the community config. Not a `Strict` of the community
    config: its setting names would join that file's "did you mean" suggestions."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)


def _url(value: str) -> str:
    if re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", value):
        return value
    raise _error(f"must be the hub's http(s) address, like https://hub.example.org, not {shown(value)}")


class FleetSection(FleetModel):
    """Who runs the fleet, its currency and the key of its people's digests."""

    name: str = Field(min_length=1, max_length=200)
    """The operator's name, as its pages show it."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """The currency of every bill, fee and hub price (ISO 4217 code); nothing is converted."""
    secret_env: str = Field(pattern=ENVIRONMENT_VARIABLE)
    """The environment variable holding the fleet secret (at least 32 random bytes, e.g.
    `openssl rand -hex 32`), given to every hub too: each hub sends a keyed digest of
    each person's name, never the name."""
    database_url: str = "sqlite:///twoi2c-fleet.sqlite"
    """Where the collected figures are kept: an SQLAlchemy URL, `sqlite:///PATH` (relative
    to the directory the collector runs in) or `postgresql+psycopg://...` for production."""
    history_days: int = Field(default=400, ge=1, le=4000)
    """How many days back the first collection from a hub reaches (later ones ask only for
    what may have changed since)."""
    recheck_days: int = Field(default=7, ge=2, le=400)
    """How many of the last days every collection asks for again: a late stop event, or a
    hub's reconciliation after its usage service was down, can still change them."""
    request_timeout: float = Field(default=30, gt=0, le=600)
    """Seconds a hub may take to answer one request before it counts as not answering."""

    @field_validator("database_url")
    @classmethod
    def _database(cls, value):
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise _error(f"must be an sqlite:// or postgresql:// URL, not {shown(value)}")
        return value


class ClusterSpec(FleetModel):
    """A cluster the hubs run on: its cloud bill and how its shared cost is split."""

    name: str = Field(pattern=SLUG_PATTERN, max_length=100)
    """The cluster's name."""
    bills: list[str] = Field(default_factory=list)
    """The cluster's imported cloud bills: AWS CUR or GCP billing exports (CSV), as paths
    or shell patterns (`bills/east-*.csv`), relative to this file."""
    monthly_cost: Decimal | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    """Or the cluster's cost per month, when no bill is imported (a fixed contract)."""
    shared_cost: Split = "by_attributed_cost"
    """How the bill's shared and idle part (the bill minus what its hubs' cost services
    attributed) is split between the communities on the cluster: `by_attributed_cost`
    (in proportion to their hubs' attributed cost), `even` (equal parts), or `fixed`
    (the `shares`)."""
    shares: dict[str, Annotated[Decimal, Field(ge=0, le=1)]] = Field(default_factory=dict)
    """For `shared_cost: fixed`: each community's share of the shared cost, from 0 to 1,
    summing to 1."""

    @model_validator(mode="after")
    def _one_cost(self):
        if bool(self.bills) == (self.monthly_cost is not None):
            raise _error("give bills (the imported cloud bills) or monthly_cost, one of the two")
        if self.shared_cost == "fixed" and not self.shares:
            raise _error("shared_cost: fixed needs shares (each community's fraction, summing to 1)")
        if self.shares and self.shared_cost != "fixed":
            raise _error(f"shares apply only with shared_cost: fixed (this cluster's is {self.shared_cost})")
        if self.shares and sum(self.shares.values()) != 1:
            raise _error(f"shares must sum to 1; they sum to {sum(self.shares.values())}")
        return self


class CommunitySpec(FleetModel):
    """A community the fleet serves, and what it is billed."""

    name: str = Field(pattern=SLUG_PATTERN, max_length=100)
    """The community's name (hubs name it in `community`)."""
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    """The name people know it by (default: `name`)."""
    fee: Decimal | Literal["from_hub"] = Field(union_mode="left_to_right")
    """The fee billed per month, or `from_hub`: what the community's hubs bill on their
    own monthly statements (their `pricing.fee`)."""
    budget: Decimal | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    """The most its hubs may be attributed in a month: past it this month, the fleet
    service's `twoi2c_fleet_community_over_budget` is 1 and its overview says so."""

    @field_validator("fee")
    @classmethod
    def _amount(cls, value):
        if isinstance(value, Decimal) and not (value.is_finite() and 0 <= value <= MAX_AMOUNT):
            raise _error(f"must be an amount per month from 0 to {MAX_AMOUNT:,}, or from_hub")
        return value


class HubSpec(FleetModel):
    """One hub of the fleet: which community it serves, where it runs, how it is reached."""

    name: str = Field(pattern=SLUG_PATTERN, max_length=100)
    """The hub's name, unique in the fleet (2i2c's `staging` on every cluster would be
    `east-staging`, `west-staging`)."""
    community: str
    """The community it serves (a name under `communities`)."""
    cluster: str
    """The cluster it runs on (a name under `clusters`)."""
    url: str | None = None
    """The hub's address; its usage and cost services are under it (`/services/usage/`)."""
    token_env: str | None = Field(default=None, pattern=ENVIRONMENT_VARIABLE)
    """The environment variable holding the hub's read-only token for the fleet."""
    archive: str | None = None
    """An export archive of the hub (`twoi2c-hub export`), relative to this file: the
    history of a hub that left, or of a hub's past before it joined the fleet."""

    @field_validator("url")
    @classmethod
    def _address(cls, value):
        return None if value is None else _url(value)

    @model_validator(mode="after")
    def _reachable(self):
        if (self.url is None) != (self.token_env is None):
            raise _error("give url and token_env together: the fleet reads the hub's APIs with that token")
        if self.url is None and self.archive is None:
            raise _error("give url and token_env (a running hub), archive (a hub that left), or both")
        return self


class FleetConfig(FleetModel):
    """The whole file."""

    fleet: FleetSection
    """Who runs the fleet, its currency and the fleet secret."""
    clusters: list[ClusterSpec] = Field(min_length=1)
    """The clusters the hubs run on."""
    communities: list[CommunitySpec] = Field(min_length=1)
    """The communities the hubs serve."""
    hubs: list[HubSpec] = Field(min_length=1)
    """The hubs."""

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        for kind in ("clusters", "communities", "hubs"):
            seen: dict[str, int] = {}
            for i, item in enumerate(getattr(self, kind)):
                if item.name in seen:
                    problems.append(
                        f"{kind}[{i}].name: '{item.name}' is also the name of {kind}[{seen[item.name]}]; "
                        "give one another name"
                    )
                seen.setdefault(item.name, i)
        tokens: dict[str, int] = {}
        for i, hub in enumerate(self.hubs):
            if hub.token_env in tokens:  # one hub's token would be sent to the other
                problems.append(
                    f"hubs[{i}].token_env: {hub.token_env} is also hubs[{tokens[hub.token_env]}]'s: "
                    "give each hub a token of its own"
                )
            if hub.token_env:
                tokens.setdefault(hub.token_env, i)
        clusters = {c.name for c in self.clusters}
        communities = {c.name for c in self.communities}
        for i, hub in enumerate(self.hubs):
            for kind, known, value in (("cluster", clusters, hub.cluster), ("community", communities, hub.community)):
                if value not in known:
                    problems.append(
                        f"hubs[{i}].{kind}: no {kind} {shown(value)} under "
                        f"{'clusters' if kind == 'cluster' else 'communities'}{suggestion(value, known)}"
                    )
        on_cluster = {c: {h.community for h in self.hubs if h.cluster == c} & communities for c in clusters}
        for i, cluster in enumerate(self.clusters):
            for community in cluster.shares:
                if community not in on_cluster[cluster.name]:
                    here = ", ".join(sorted(on_cluster[cluster.name])) or "none"
                    problems.append(
                        f"{_path(('clusters', i, 'shares', community))}: no hub of {shown(community)} runs on "
                        f"{cluster.name} (the communities on it: {here})"
                    )
        served = {h.community for h in self.hubs}
        for i, community in enumerate(self.communities):
            if community.name not in served:
                problems.append(
                    f"communities[{i}]: '{community.name}' has no hub: add its hubs under hubs, or remove it"
                )
        if problems:
            raise _error("\n".join(problems))
        return self

    def placement(self) -> dict[str, tuple[str, str]]:
        """hub -> (cluster, community)."""
        return {hub.name: (hub.cluster, hub.community) for hub in self.hubs}

    def sharing(self) -> dict[str, tuple[str, dict[str, Decimal]]]:
        """cluster -> (how its shared cost is split, the fixed shares by community)."""
        return {c.name: (c.shared_cost, dict(c.shares)) for c in self.clusters}

    def fees(self) -> dict[str, Decimal | str]:
        """community -> its fee per month, or "from_hub"."""
        return {c.name: c.fee for c in self.communities}

    def budgets(self) -> dict[str, Decimal]:
        """community -> the most its hubs may be attributed a month, for those with one."""
        return {c.name: c.budget for c in self.communities if c.budget is not None}


def _models(model: type[BaseModel] = FleetConfig):
    yield model
    for field in model.model_fields.values():
        for sub in _nested(field.annotation):
            yield from _models(sub)


def _nested(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _nested(arg)]


_VARIABLE = "must be an environment variable's name: letters, digits and _, not starting with a digit"
PATTERN_MESSAGES = {"secret_env": _VARIABLE, "token_env": _VARIABLE, "currency": "must be an ISO 4217 code, like USD"}


def validation_messages(error: ValidationError) -> list[str]:
    """One line per problem, with its path (`hubs[2].token_env: ...`)."""
    names = {name for model in _models() for name in model.model_fields}
    lines = []
    for item in error.errors():
        # a union's member adds its type to the location (fee's "decimal"): dropped
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and (p in ("decimal", "str") or "[" in p)))
        if not loc:  # the checks across sections name their own paths
            lines.extend(item["msg"].splitlines())
            continue
        if loc[:1] == ("communities",) and loc[-1] == "fee" and item["type"] != "twoi2c":
            lines.append(f"{_path(loc)}: must be an amount per month, or from_hub")
            continue
        message = _message(item)
        if item["type"] == "string_pattern_mismatch" and loc[-1] in PATTERN_MESSAGES:
            message = PATTERN_MESSAGES[loc[-1]]
        if item["type"] == "extra_forbidden":
            message += suggestion(loc[-1], names)
        lines.append(f"{_path(loc)}: {message}" if loc else message)
    return list(dict.fromkeys(lines))  # fee's two union members may say the same


def is_fleet_file(path: str | os.PathLike) -> bool:
    """Whether a config file is a fleet config (a top-level `fleet:` key); a file that
    cannot be read, or is not YAML, is not (the community config's loader says why)."""
    try:
        data = load(read_text(path, MAX_CONFIG_BYTES), MAX_CONFIG_BYTES)
    except YamlRefused:
        return False
    return isinstance(data, dict) and "fleet" in data


def parse_fleet(text: str, source: str = "<fleet>") -> FleetConfig:
    """The validated fleet config in `text`, or a ConfigError listing every problem."""
    try:
        data = load(text, MAX_CONFIG_BYTES)
    except YamlRefused as e:
        raise ConfigError(source, [f"{e.where}not valid YAML: {e.problem}" if e.syntax else str(e)]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a mapping of sections (fleet:, clusters:, communities:, hubs:)"])
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, [one_line(line) for line in validation_messages(e)]) from None


def load_fleet(path: str | os.PathLike) -> FleetConfig:
    """The validated fleet config in `path`, or a ConfigError listing every problem."""
    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except YamlRefused as e:
        raise ConfigError(path, [str(e)]) from None
    return parse_fleet(text, str(path))
