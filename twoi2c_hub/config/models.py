"""The community config: one YAML file describing a community's hub, validated.

Sections: `hub` (identity and branding), `auth` (who logs in), `community_admin_groups`,
`profiles` (KubeSpawner's profile_list format with `allowed_groups` and `node_share`),
`instance_types` (capacity figures added to the built-in table), `spawner` (local or
Kubernetes, per-user environment), `culling`, `usage`, `pricing`, `cost` and `budgets`. Each section's models live in
their own module; this one puts them together.
"""

from __future__ import annotations

from pydantic import Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from .. import catalog
from ..catalog.instances import INSTANCE_TYPES, InstanceType
from .auth import (
    AuthSection,
    CILogonAuth,
    DemoAuthSection,
    DemoUser,
    GitHubAuth,
    GroupMapping,
    OIDCAuth,
    WorkshopAuth,
)
from .base import Strict, _error
from .budgets import BudgetSpec, BudgetsSection, Threshold
from .overrides import catalog_problems, kubespawner_traits, override_problems
from .pricing import InstancePriceSpec, PriceTableSpec, PricingSection, unpriced
from .profiles import Choice, InstanceTypeSpec, NodeShare, Profile, ProfileOption, UnlistedChoice
from .roles import CustomScope, RoleSpec, custom_scope_problems, group_lead_problems, role_problems
from .sections import (
    CostSection,
    CullingSection,
    FleetViewSection,
    Funder,
    HomeStorageSection,
    HubSection,
    LocalSpawnerSection,
    SpawnerSection,
    UsageSection,
)

__all__ = [
    "AuthSection",
    "BudgetSpec",
    "BudgetsSection",
    "CILogonAuth",
    "Choice",
    "CommunityConfig",
    "CostSection",
    "CullingSection",
    "CustomScope",
    "DemoUser",
    "Funder",
    "GitHubAuth",
    "GroupMapping",
    "HomeStorageSection",
    "HubSection",
    "InstancePriceSpec",
    "InstanceTypeSpec",
    "LocalSpawnerSection",
    "NodeShare",
    "PriceTableSpec",
    "PricingSection",
    "OIDCAuth",
    "Profile",
    "ProfileOption",
    "RoleSpec",
    "SpawnerSection",
    "Strict",
    "Threshold",
    "UnlistedChoice",
    "UsageSection",
    "WorkshopAuth",
    "catalog_problems",
    "kubespawner_traits",
    "override_problems",
]


class CommunityConfig(Strict):
    """The whole file: one section per part of the hub."""

    hub: HubSection
    """The community's name, logo, links, funders and announcement."""
    auth: AuthSection = Field(default_factory=DemoAuthSection)
    """Who may log in and which groups they are in:
    one provider's settings, chosen by `provider` (demo by default)."""
    community_admin_groups: list[str] = Field(default_factory=list)
    """Members of these groups read everyone's usage (the community admins)."""
    group_leads: dict[str, list[str]] = Field(default_factory=dict)
    """Each group's leads, who read in the cost service that group's hours, cost, budgets
    and statements (and no other group's): usernames, or `group:NAME` for every member of
    a group. E.g. `{physics-101: [prof-ada, group:physics-101-tas]}`."""
    instance_types: dict[str, InstanceTypeSpec] = Field(default_factory=dict)
    """Instance types added to (or correcting) the built-in capacity table, by name."""
    profiles: list[Profile] = Field(default_factory=list)
    """The server profiles, in KubeSpawner's profile_list format."""
    spawner: SpawnerSection = Field(default_factory=SpawnerSection)
    """Kubernetes or local processes, and per-user environment."""
    culling: CullingSection = Field(default_factory=CullingSection)
    """Stopping idle servers."""
    usage: UsageSection = Field(default_factory=UsageSection)
    """The usage-accounting service."""
    pricing: PricingSection | None = None
    """Prices: what a server costs per hour (no section: no prices shown, no cost service)."""
    cost: CostSection = Field(default_factory=CostSection)
    """The cost service."""
    budgets: BudgetsSection | None = None
    """Limits on spending, and what happens as they are reached (needs the cost service)."""
    roles: list[RoleSpec] = Field(default_factory=list)
    """JupyterHub roles (its `load_roles`): scopes given to users, groups and the hub's services."""
    custom_scopes: dict[str, CustomScope] = Field(default_factory=dict)
    """Scopes of the community's own (`custom:...`), for its roles."""
    fleet_view: FleetViewSection | None = None
    """The fleet's pages and API (an operator's hub only; no section: none)."""

    def own_services(self) -> dict[str, str | None]:
        """The hub's own services and the custom scope each defines (names as configure() uses them)."""
        services: dict[str, str | None] = {}
        if self.culling.enabled:
            services["idle-culler"] = None
        if self.usage.enabled:
            services["usage"] = "custom:usage:read-all"
        if self.pricing is not None and self.cost.enabled:
            services["cost"] = "custom:cost:read-all"
            if self.budgets is not None and self.budgets.budgets:
                services["cost-checks"] = None
        if self.fleet_view is not None:
            services["fleet"] = "custom:fleet:read"
        return services

    @model_validator(mode="after")
    def _roles_valid(self):
        own = {scope for scope in self.own_services().values() if scope}
        # a fleet's token: each day's people as digests, the statements
        own |= {"custom:usage:digests"} if self.usage.enabled else set()
        own |= {"custom:cost:statements", "custom:cost:read-group"} if "cost" in self.own_services() else set()
        problems = custom_scope_problems(self.custom_scopes, own)
        problems += role_problems(self.roles, own | set(self.custom_scopes), set(self.own_services()))
        problems += group_lead_problems(self.group_leads)
        if self.group_leads and "cost" not in self.own_services():
            problems.append("group_leads: need pricing: and the cost service (cost.enabled), where leads read")
        if problems:
            raise _error("\n".join(problems))
        return self

    # what check-config warns about (with paths): kept, never an error; set by parse_config
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Things that work but may not be what was meant, one line each with its path
        (a key nobody reads, an instance type's label no cloud gives its nodes)."""
        return list(self._warnings)

    @model_validator(mode="after")
    def _profiles_consistent(self):
        slugs: dict[str, int] = {}
        for i, profile in enumerate(self.profiles):
            slug = profile.slug or catalog.initialize([{"display_name": profile.display_name}])[0]["slug"]
            if slug in slugs:
                raise PydanticCustomError(
                    "twoi2c",
                    "profiles[{i}]: slug '{slug}' is also the slug of profiles[{j}]; give one a different slug",
                    {"i": i, "slug": slug, "j": slugs[slug]},
                )
            slugs[slug] = i
        return self

    @model_validator(mode="after")
    def _budgets_need_their_figures(self):
        if self.budgets is not None and self.budgets.budgets and (self.pricing is None or not self.cost.enabled):
            raise _error("budgets: need pricing: and the cost service (cost.enabled), which keeps them")
        return self

    @model_validator(mode="after")
    def _every_profile_priced(self):
        if self.pricing is not None:
            problems = unpriced(self.profile_list(), self.pricing.to_pricing(), self.instance_catalog())
            if problems:
                raise _error("pricing: " + "; ".join(problems))
        return self

    def instance_catalog(self) -> dict[str, InstanceType]:
        """Instance types by name, and a custom type also by its `node_label`: a pod's
        node selector names the label, and the type described for it (its measured
        capacity, its price) is the one that prices and shares that node."""
        table = dict(INSTANCE_TYPES)
        custom = {name: spec.to_instance_type(name) for name, spec in self.instance_types.items()}
        table.update(custom)
        for instance in custom.values():
            if instance.node_label and instance.node_label not in custom:
                table[instance.node_label] = instance
        return table

    def profile_list(self) -> list[dict]:
        """The profiles as KubeSpawner's profile_list, node shares expanded into choices.

        Keys are kept as the file wrote them (nothing filled in), so a profile list taken
        from an existing hub comes out as it went in.
        """
        instances = self.instance_catalog()
        result = []
        for profile in self.profiles:
            data = profile.model_dump(exclude_unset=True)
            for key, option in profile.profile_options.items():
                if not option.node_share:
                    continue
                generated: dict[str, dict] = {}
                for share in option.node_share:
                    choices = catalog.node_share_choices(
                        instances[share.instance],
                        share.choices,
                        daemonset_cpu=share.daemonset_cpu,
                        daemonset_memory_bytes=catalog.parse_bytes(share.daemonset_memory),
                        default=share.default,
                    )
                    if share.allowed_groups is not None:
                        for choice in choices.values():
                            choice["allowed_groups"] = list(share.allowed_groups)
                    generated.update(choices)
                option_data = data["profile_options"][key]
                option_data.pop("node_share")
                option_data["choices"] = {**generated, **option_data.get("choices", {})}
            result.append(data)
        return result
