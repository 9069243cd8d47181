"""The community config: one YAML file describing a community's hub, validated.

Sections: `hub` (identity and branding), `auth` (who logs in), `community_admin_groups`,
`profiles` (KubeSpawner's profile_list format with `allowed_groups` and `node_share`),
`instance_types` (capacity figures added to the built-in table), `spawner` (local or
Kubernetes, per-user environment) and `culling`.

Every model forbids unknown keys, so a typo (`alowed_groups`) is an error with its path
instead of a setting silently ignored, which for `allowed_groups` would open a profile to
everyone.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .. import catalog
from ..catalog.instances import INSTANCE_TYPES, InstanceType

SLUG_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"


def _error(message: str) -> PydanticCustomError:
    # the type name is what check-config prints before nothing: the message stands alone
    return PydanticCustomError("twoi2c", message)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- KubeSpawner overrides ----------------------------------------------------------


@functools.cache
def kubespawner_traits() -> dict[str, Any]:
    """KubeSpawner's configurable traits by name (what a kubespawner_override may set)."""
    from kubespawner import KubeSpawner

    return KubeSpawner.class_traits(config=True)


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of CPU cores, like 0.5 or 2"
    if value <= 0:
        return "must be > 0"
    return None


def override_problems(override: Any, *, write_in: bool = False) -> list[tuple[tuple, str]]:
    """Every problem in one kubespawner_override, as (path inside it, message).

    Keys must be KubeSpawner settings; resource figures must be what KubeSpawner accepts
    and be positive; a guarantee must not exceed its limit. A write-in's override is
    only checked for its keys: its `{value}` placeholders are filled in at spawn time.
    """
    if not isinstance(override, dict):
        return [((), "must be a mapping of KubeSpawner settings to values")]
    traits = kubespawner_traits()
    problems: list[tuple[tuple, str]] = []
    sizes: dict[str, int] = {}
    for key, value in override.items():
        if key not in traits:
            close = difflib.get_close_matches(str(key), traits, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(((key,), f"is not a KubeSpawner setting{hint}"))
            continue
        if write_in or value is None:
            continue
        problem = None
        if key in ("cpu_guarantee", "cpu_limit"):
            problem = _number_problem(value)
        elif key in ("mem_guarantee", "mem_limit"):
            try:
                sizes[key] = catalog.parse_bytes(value)
            except Exception:
                problem = f"must be a size like 512M, 4G or a number of bytes, not {value!r}"
            else:
                if sizes[key] <= 0:
                    problem = "must be > 0"
        elif key == "image" and (not isinstance(value, str) or not value.strip()):
            problem = "must be an image name such as quay.io/jupyter/scipy-notebook:2025-01-06"
        elif key in ("node_selector", "environment", "extra_resource_limits", "extra_resource_guarantees"):
            if not isinstance(value, dict):
                problem = "must be a mapping of names to values"
            elif key in ("node_selector", "environment") and not all(
                isinstance(v, str) or v is None for v in value.values()
            ):
                problem = "values must be strings (quote numbers, booleans and lists)"
            elif key.startswith("extra_resource"):
                for name, amount in value.items():
                    if str(name).endswith("/gpu") and not _whole_number(amount):
                        problems.append(((key, name), 'must be a whole number of GPUs, like "1"'))
        if problem:
            problems.append(((key,), problem))
    cpu_g, cpu_l = override.get("cpu_guarantee"), override.get("cpu_limit")
    if not write_in and not _number_problem(cpu_g) and not _number_problem(cpu_l) and cpu_g > cpu_l:
        problems.append((("cpu_guarantee",), f"{cpu_g} must not exceed cpu_limit ({cpu_l})"))
    if "mem_guarantee" in sizes and "mem_limit" in sizes and sizes["mem_guarantee"] > sizes["mem_limit"]:
        problems.append(
            (("mem_guarantee",), f"{override['mem_guarantee']} must not exceed mem_limit ({override['mem_limit']})")
        )
    return problems


def _whole_number(amount: Any) -> bool:
    try:
        count = float(amount)
    except (TypeError, ValueError):
        return False
    return count >= 0 and count == int(count)


def catalog_problems(data: Any) -> list[tuple[tuple, str]]:
    """Problems in every kubespawner_override of the raw `profiles:` section, with paths."""
    problems: list[tuple[tuple, str]] = []
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, list):
        return problems

    def check(where: tuple, item: Any, write_in: bool = False):
        if isinstance(item, dict) and "kubespawner_override" in item:
            base = where + ("kubespawner_override",)
            problems.extend(
                (base + loc, msg) for loc, msg in override_problems(item["kubespawner_override"], write_in=write_in)
            )

    for i, profile in enumerate(profiles):
        check(("profiles", i), profile)
        options = profile.get("profile_options") if isinstance(profile, dict) else None
        for key, option in (options or {}).items() if isinstance(options, dict) else []:
            if not isinstance(option, dict):
                continue
            where = ("profiles", i, "profile_options", key)
            choices = option.get("choices")
            for choice_key, choice in (choices or {}).items() if isinstance(choices, dict) else []:
                check(where + ("choices", choice_key), choice)
            check(where + ("unlisted_choice",), option.get("unlisted_choice"), write_in=True)
    return problems


def _check_groups(groups: list[str] | None) -> list[str] | None:
    if groups is not None and not groups:
        raise _error(
            "an empty allowed_groups offers this to nobody; remove the key to offer it to everyone, or name the groups"
        )
    return groups


class Overridable(Strict):
    # checked by `catalog_problems`, which reports every bad key with its own path
    kubespawner_override: dict[str, Any] = Field(default_factory=dict)
    allowed_groups: list[str] | None = None

    @field_validator("allowed_groups")
    @classmethod
    def _valid_groups(cls, value):
        return _check_groups(value)


class Choice(Overridable):
    display_name: str
    description: str | None = None
    default: bool = False


class UnlistedChoice(Overridable):
    enabled: bool = False
    display_name: str | None = None
    display_name_in_choices: str | None = None
    description_in_choices: str | None = None  # jupyterhub-fancy-profiles
    validation_regex: str | None = None
    validation_message: str | None = None

    @field_validator("validation_regex")
    @classmethod
    def _compiles(cls, value):
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise _error(f"is not a valid regular expression: {e}") from None
        return value


class NodeShare(Strict):
    """`node_share: {instance: n2-highmem-16, choices: 5}` instead of five choices."""

    instance: str
    choices: int = Field(ge=1, le=10)
    default: int | None = Field(default=None, ge=0)
    daemonset_cpu: float = Field(default=0.1, ge=0)
    daemonset_memory: str | int = "256M"
    allowed_groups: list[str] | None = None

    @field_validator("instance")
    @classmethod
    def _known_instance(cls, value, info):
        known = (info.context or {}).get("instance_types") or set(INSTANCE_TYPES)
        if value not in known:
            close = difflib.get_close_matches(value, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; describe it under instance_types"
            raise _error(f"unknown instance type '{value}'{hint}")
        return value

    @field_validator("daemonset_memory")
    @classmethod
    def _size(cls, value):
        try:
            catalog.parse_bytes(value)
        except Exception:
            raise _error(f"must be a size like 256M or 1G, not {value!r}") from None
        return value

    @field_validator("allowed_groups")
    @classmethod
    def _valid_groups(cls, value):
        return _check_groups(value)


class ProfileOption(Strict):
    display_name: str
    choices: dict[str, Choice] = Field(default_factory=dict)
    unlisted_choice: UnlistedChoice | None = None
    # one instance type, or several whose choices are offered together
    node_share: list[NodeShare] | None = None
    dynamic_image_building: dict[str, Any] | None = None  # jupyterhub-fancy-profiles

    @field_validator("node_share", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _has_something_to_choose(self):
        enabled = self.unlisted_choice is not None and self.unlisted_choice.enabled
        if not self.choices and not self.node_share and not enabled:
            raise _error("an option needs choices, a node_share, or an enabled unlisted_choice")
        if sum(c.default for c in self.choices.values()) > 1:
            raise _error("only one choice may be the default")
        return self


class Profile(Overridable):
    display_name: str
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    description: str | None = None
    default: bool = False
    profile_options: dict[str, ProfileOption] = Field(default_factory=dict)

    @field_validator("profile_options")
    @classmethod
    def _option_keys(cls, value):
        for key in value:
            if not re.fullmatch(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*", key):
                raise _error(
                    f"option name '{key}' must be letters, digits, '_' and single '-' "
                    "(it becomes part of the form field names)"
                )
        return value


# --- other sections -------------------------------------------------------------------


class Funder(Strict):
    name: str
    url: str | None = None
    logo_url: str | None = None


class HubSection(Strict):
    name: str = Field(min_length=1, max_length=100)
    logo_url: str | None = None
    url: str | None = None
    support_url: str | None = None
    funders: list[Funder] = Field(default_factory=list)
    announcement: str | None = None


class DemoUser(Strict):
    groups: list[str] = Field(default_factory=list)
    admin: bool = False


class GroupMapping(Strict):
    import_: list[str] = Field(default_factory=list, alias="import")  # shell-style patterns
    rename: list[dict[str, str]] = Field(default_factory=list)  # [{match: regex, replace: template}]
    prefix: str = ""

    @field_validator("rename")
    @classmethod
    def _rules(cls, rules):
        for i, rule in enumerate(rules):
            if set(rule) != {"match", "replace"}:
                raise _error(f"rule {i} must have exactly the keys match and replace")
            try:
                re.compile(rule["match"])
            except re.error as e:
                raise _error(f"rule {i}: match is not a valid regular expression: {e}") from None
        return rules


class GitHubAuth(Strict):
    allowed_organizations: list[str] = Field(default_factory=list)  # "org" or "org:team-slug"
    teams_as_groups: bool = True


class CILogonAuth(Strict):
    # OAuthenticator's `idps`, as it documents them (username_derivation, allowed_domains, ...)
    idps: dict[str, dict[str, Any]] = Field(min_length=1)
    groups_claim: str | None = None  # e.g. isMemberOf, eduPersonEntitlement


class OIDCAuth(Strict):
    discovery_url: str
    username_claim: str = "preferred_username"
    groups_claim: str | None = None
    groups_from_scopes: bool = False
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])

    @model_validator(mode="after")
    def _one_group_source(self):
        if self.groups_claim and self.groups_from_scopes:
            raise _error("set groups_claim or groups_from_scopes, not both")
        return self


class WorkshopAuth(Strict):
    password_env: str = "TWOI2C_WORKSHOP_PASSWORD"  # the attendees' password (at least 8 characters)
    admin_password_env: str | None = None  # for auth.admin_users (at least 32 characters)
    opens: datetime.datetime | None = None
    closes: datetime.datetime | None = None
    group: str | None = None
    temporary_accounts: bool = False
    max_failures: int = Field(default=5, ge=1)
    failure_window: int = Field(default=300, ge=1)

    @field_validator("opens", "closes")
    @classmethod
    def _aware(cls, value):
        if value is not None and value.tzinfo is None:
            raise _error("needs a time zone, e.g. 2026-12-01T09:00:00+01:00 or ...Z")
        return value

    @model_validator(mode="after")
    def _window(self):
        if self.opens and self.closes and self.closes <= self.opens:
            raise _error("closes must be after opens")
        return self


OAUTH_PROVIDERS = ("github", "cilogon", "oidc")


class AuthSection(Strict):
    """Who may log in, and which groups they are in."""

    provider: Literal["demo", "github", "cilogon", "oidc", "workshop"] = "demo"
    # OAuth providers: the client registered with the provider; the secret comes from
    # the environment, never from this file
    client_id: str | None = None
    client_secret_env: str = "OAUTH_CLIENT_SECRET"
    callback_url: str | None = None
    allow_all: bool = False
    allowed_users: list[str] = Field(default_factory=list)
    allowed_groups: list[str] = Field(default_factory=list)
    admin_users: list[str] = Field(default_factory=list)
    admin_groups: list[str] = Field(default_factory=list)  # members are hub admins
    blocked_users: list[str] = Field(default_factory=list)
    staff_users: list[str] = Field(default_factory=list)  # break-glass admins, by name at the provider
    anonymize_usernames: bool = False  # key in $TWOI2C_USERNAME_SECRET
    refresh_age: int = Field(default=300, ge=0)  # seconds between group refreshes; 0: only at login
    provider_down: Literal["keep", "logout"] = "keep"
    groups: GroupMapping = Field(default_factory=GroupMapping)
    github: GitHubAuth | None = None
    cilogon: CILogonAuth | None = None
    oidc: OIDCAuth | None = None
    workshop: WorkshopAuth | None = None
    users: dict[str, DemoUser] = Field(default_factory=dict)  # the demo provider's people

    def gives_groups(self) -> bool:
        if self.provider == "github":
            return bool(self.github and self.github.teams_as_groups)
        if self.provider == "cilogon":
            return bool(self.cilogon and self.cilogon.groups_claim)
        if self.provider == "oidc":
            return bool(self.oidc and (self.oidc.groups_claim or self.oidc.groups_from_scopes))
        if self.provider == "workshop":
            return bool(self.workshop and self.workshop.group)
        return True

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        for name in ("github", "cilogon", "oidc", "workshop"):
            if getattr(self, name) is not None and name != self.provider:
                problems.append(f"auth.{name}: is for provider {name}, but auth.provider is {self.provider}")
        if self.provider in ("github", "cilogon", "oidc", "workshop") and getattr(self, self.provider) is None:
            if self.provider in ("cilogon", "oidc"):
                problems.append(f"auth.{self.provider}: is required for provider {self.provider}")
        if self.provider in OAUTH_PROVIDERS and not self.client_id:
            problems.append(
                f"auth.client_id: is required for provider {self.provider} "
                f"(the secret goes in ${self.client_secret_env})"
            )
        if self.users and self.provider != "demo":
            problems.append("auth.users: only the demo provider has a fixed list of users")
        if (self.allowed_groups or self.admin_groups) and not self.gives_groups():
            hint = {
                "github": "set auth.github.teams_as_groups",
                "cilogon": "set auth.cilogon.groups_claim",
                "oidc": "set auth.oidc.groups_claim or auth.oidc.groups_from_scopes",
                "workshop": "set auth.workshop.group",
            }.get(self.provider, "")
            problems.append(f"auth.allowed_groups/admin_groups: {self.provider} gives no groups here; {hint}")
        if self.provider == "workshop":
            for name in ("anonymize_usernames", "staff_users", "admin_groups", "allowed_users", "allowed_groups"):
                if getattr(self, name):
                    problems.append(
                        f"auth.{name}: the workshop provider has no use for it (everyone with the password is allowed)"
                    )
            if self.workshop and self.workshop.temporary_accounts and self.admin_users:
                problems.append("auth.admin_users: temporary accounts get random names, so no admin could log in")
            if self.admin_users and not (self.workshop and self.workshop.admin_password_env):
                problems.append("auth.workshop.admin_password_env: is required when auth.admin_users is set")
        if self.provider in OAUTH_PROVIDERS and not (
            self.allow_all
            or self.allowed_users
            or self.allowed_groups
            or self.admin_users
            or self.staff_users
            or self.admin_groups
            or (self.github and self.github.allowed_organizations)
            or (
                self.cilogon
                and any(
                    isinstance(i, dict) and (i.get("allow_all") or i.get("allowed_domains"))
                    for i in self.cilogon.idps.values()
                )
            )
        ):
            problems.append(
                "auth: nobody could log in; set allowed_users, allowed_groups, "
                "github.allowed_organizations, an idp's allowed_domains, or allow_all"
            )
        if problems:
            raise _error("\n".join(problems))
        return self


class InstanceTypeSpec(Strict):
    provider: Literal["gcp", "aws", "azure", "other"] = "other"
    cpu: float = Field(gt=0)
    memory: str | int
    allocatable_cpu: float | None = Field(default=None, gt=0)
    allocatable_memory: str | int | None = None
    gpu_count: int = Field(default=0, ge=0)
    gpu_type: str | None = None

    @field_validator("memory", "allocatable_memory")
    @classmethod
    def _size(cls, value):
        if value is not None:
            try:
                size = catalog.parse_bytes(value)
            except Exception:
                raise _error(f"must be a size like 64G, not {value!r}") from None
            if size <= 0:
                raise _error("must be > 0")
        return value

    def to_instance_type(self, name: str) -> InstanceType:
        allocatable = self.allocatable_memory
        return InstanceType(
            name=name,
            provider=self.provider,
            cpu=self.cpu,
            memory_bytes=catalog.parse_bytes(self.memory),
            allocatable_cpu=self.allocatable_cpu,
            allocatable_memory_bytes=None if allocatable is None else catalog.parse_bytes(allocatable),
            gpu_count=self.gpu_count,
            gpu_type=self.gpu_type,
        )


class LocalSpawnerSection(Strict):
    """How the local-process spawner applies profiles on this machine."""

    # image name -> the Python executable of an environment with jupyter-server;
    # images not listed are shown as "not available on this hub" and run the default
    images: dict[str, str] = Field(default_factory=dict)
    python: str | None = None  # default: the hub's own Python
    apply_memory_limit: bool = True
    apply_cpu_limit: bool = True


class SpawnerSection(Strict):
    kind: Literal["local", "kube"] = "local"
    default_url: str | None = None
    start_timeout: int = Field(default=120, gt=0)
    # environment for every server; {username} and {escaped_username} are filled in
    user_environment: dict[str, str] = Field(default_factory=dict)
    # environment and (Kubernetes) volume mounts for hub admins only
    admin_environment: dict[str, str] = Field(default_factory=dict)
    admin_volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    local: LocalSpawnerSection = Field(default_factory=LocalSpawnerSection)

    @field_validator("user_environment", "admin_environment")
    @classmethod
    def _placeholders(cls, value):
        for name, template in value.items():
            for field_name in re.findall(r"\{([^{}]*)\}", template):
                if field_name not in ("username", "escaped_username"):
                    raise _error(
                        f"{name}: unknown placeholder {{{field_name}}}; use {{username}} or {{escaped_username}}"
                    )
        return value


class CullingSection(Strict):
    enabled: bool = True
    timeout: int = Field(default=3600, gt=0)  # seconds without activity
    every: int = Field(default=0, ge=0)  # seconds between checks; 0: timeout / 2
    max_age: int = Field(default=0, ge=0)  # seconds; 0: no maximum
    cull_users: bool = False
    cull_admin_users: bool = True
    concurrency: int = Field(default=10, ge=1)


class UsageSection(Strict):
    """The usage-accounting service (/services/usage/)."""

    enabled: bool = True
    # SQLite (a path relative to the hub's working directory) or PostgreSQL
    # (postgresql+psycopg://user@host/db); the password, if any, from the environment
    database_url: str = "sqlite:///twoi2c-usage.sqlite"
    reconcile_interval: float = Field(default=30, gt=0)  # seconds
    port: int = Field(default=0, ge=0, le=65535)  # 0: any free port
    # where the proxy reaches the service: 127.0.0.1 when the proxy runs beside the hub;
    # on zero-to-jupyterhub the proxy is another pod: http://hub:PORT (set port too)
    host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _fixed_port_off_loopback(self):
        if self.host not in ("127.0.0.1", "localhost") and not self.port:
            raise _error("set port: a fixed port is needed when host is not 127.0.0.1")
        return self

    @field_validator("database_url")
    @classmethod
    def _supported(cls, value):
        if not value.startswith(("sqlite:///", "postgresql")):
            raise _error("must be a sqlite:///PATH or postgresql+psycopg://... URL")
        return value


class CommunityConfig(Strict):
    hub: HubSection
    auth: AuthSection = Field(default_factory=AuthSection)
    community_admin_groups: list[str] = Field(default_factory=list)
    instance_types: dict[str, InstanceTypeSpec] = Field(default_factory=dict)
    profiles: list[Profile] = Field(default_factory=list)
    spawner: SpawnerSection = Field(default_factory=SpawnerSection)
    culling: CullingSection = Field(default_factory=CullingSection)
    usage: UsageSection = Field(default_factory=UsageSection)

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
        if sum(p.default for p in self.profiles) > 1:
            raise _error("profiles: only one profile may be the default")
        return self

    def instance_catalog(self) -> dict[str, InstanceType]:
        table = dict(INSTANCE_TYPES)
        table.update({name: spec.to_instance_type(name) for name, spec in self.instance_types.items()})
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
