"""The `auth:` section: who may log in, and which groups they are in."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from .base import Strict, _error


class DemoUser(Strict):
    groups: list[str] = Field(default_factory=list)
    """The person's groups."""
    admin: bool = False
    """A hub admin."""


class GroupMapping(Strict):
    import_: list[str] = Field(default_factory=list, alias="import")
    """Shell-style patterns of the provider's groups to keep (default: all)."""
    rename: list[dict[str, str]] = Field(default_factory=list)
    """Rules [{match: regex, replace: template}] applied in order."""
    prefix: str = ""
    """Put before every group's name."""

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
    """Members of these may log in: `org` or `org:team-slug`."""
    teams_as_groups: bool = True
    """Every team in an allowed organisation is the group `org:team`."""


class CILogonAuth(Strict):
    # OAuthenticator's `idps`, as it documents them (username_derivation, allowed_domains, ...)
    idps: dict[str, dict[str, Any]] = Field(min_length=1)
    """OAuthenticator's `idps`, as it documents them (username_derivation, allowed_domains, ...)."""
    groups_claim: str | None = None
    """The claim holding groups, e.g. isMemberOf or eduPersonEntitlement."""


class OIDCAuth(Strict):
    discovery_url: str
    """The provider's .well-known/openid-configuration URL."""
    username_claim: str = "preferred_username"
    """The claim that is the username."""
    groups_claim: str | None = None
    """The claim holding groups."""
    groups_from_scopes: bool = False
    """The granted scopes are the groups."""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    """The scopes asked for."""

    @model_validator(mode="after")
    def _one_group_source(self):
        if self.groups_claim and self.groups_from_scopes:
            raise _error("set groups_claim or groups_from_scopes, not both")
        return self


class WorkshopAuth(Strict):
    password_env: str = "TWOI2C_WORKSHOP_PASSWORD"
    """The environment variable with the attendees' password (at least 8 characters)."""
    admin_password_env: str | None = None
    """The environment variable with the admins' password (at least 32 characters)."""
    opens: datetime.datetime | None = None
    """When the password starts to work (with a time zone)."""
    closes: datetime.datetime | None = None
    """When it stops working."""
    group: str | None = None
    """The group every attendee is in."""
    temporary_accounts: bool = False
    """Each login gets a new random username."""
    max_failures: int = Field(default=5, ge=1)
    """Wrong passwords allowed per address within failure_window."""
    failure_window: int = Field(default=300, ge=1)
    """Seconds over which failures are counted."""
    global_max_failures: int = Field(default=100, ge=1)
    """Wrong passwords allowed hub-wide within failure_window, from any number of addresses."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Proxies (addresses or networks) whose X-Forwarded-For names the client; empty:
    forwarding headers are ignored."""

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


# `unconverted` is written by `twoi2c-hub convert` only, and never valid
PROVIDERS = ("demo", "github", "cilogon", "oidc", "workshop", "external")
TAGS = (*PROVIDERS, "unconverted")
OAUTH_PROVIDERS = ("github", "cilogon", "oidc")
# what to set so that a provider gives groups
_GROUPS_HINT = {
    "github": "set auth.github.teams_as_groups",
    "cilogon": "set auth.cilogon.groups_claim",
    "oidc": "set auth.oidc.groups_claim or auth.oidc.groups_from_scopes",
    "workshop": "set auth.workshop.group",
}


class _Auth(Strict):
    """Who may log in and who is an admin: what every provider has."""

    allow_all: bool = Field(default=False, description="Everyone the provider vouches for may log in.")
    allowed_users: list[str] = Field(default_factory=list, description="Hub usernames that may log in.")
    allowed_groups: list[str] = Field(
        default_factory=list, description="Members of these groups may log in (the provider must give groups)."
    )
    admin_users: list[str] = Field(default_factory=list, description="Hub usernames that are hub admins.")
    admin_groups: list[str] = Field(default_factory=list, description="Members of these groups are hub admins.")
    blocked_users: list[str] = Field(default_factory=list, description="Hub usernames that may never log in.")
    refresh_age: int = Field(
        default=300, ge=0, description="Seconds between re-reads of a person's groups; 0: only at login."
    )

    def gives_groups(self) -> bool:
        return True

    def group_problems(self, provider: str) -> list[str]:
        if (self.allowed_groups or self.admin_groups) and not self.gives_groups():
            return [
                f"auth.allowed_groups/admin_groups: {provider} gives no groups here; {_GROUPS_HINT.get(provider, '')}"
            ]
        return []


class DemoAuthSection(_Auth):
    """`provider: demo`: a fixed list of people and one password (for demos and tests)."""

    provider: Literal["demo"] = "demo"
    """`demo`."""
    users: dict[str, DemoUser] = Field(default_factory=dict, description="The demo's people, by username.")


class _OAuth(_Auth):
    """What the OAuth providers (GitHub, CILogon, any OIDC provider) share."""

    client_id: str | None = Field(default=None, description="The client registered with the provider.")
    client_secret_env: str = Field(
        default="OAUTH_CLIENT_SECRET",
        description="The environment variable holding the client secret (never this file).",
    )
    callback_url: str | None = Field(default=None, description="The OAuth callback URL, if not the hub's own.")
    staff_users: list[str] = Field(
        default_factory=list, description="Break-glass admins, by their name at the provider."
    )
    anonymize_usernames: bool = Field(
        default=False, description="Hub usernames are a keyed hash of the provider's subject ($TWOI2C_USERNAME_SECRET)."
    )
    provider_down: Literal["keep", "logout"] = Field(
        default="keep", description="What a refresh does when the provider cannot be reached."
    )
    groups: GroupMapping = Field(default_factory=GroupMapping, description="How the provider's groups are mapped.")

    def lets_someone_in(self) -> bool:
        return bool(
            self.allow_all
            or self.allowed_users
            or self.allowed_groups
            or self.admin_users
            or self.staff_users
            or self.admin_groups
        )

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        if not self.client_id:
            problems.append(
                f"auth.client_id: is required for provider {self.provider} "
                f"(the secret goes in ${self.client_secret_env})"
            )
        problems += self.group_problems(self.provider)
        if not self.lets_someone_in():
            problems.append(
                "auth: nobody could log in; set allowed_users, allowed_groups, "
                "github.allowed_organizations, an idp's allowed_domains, or allow_all"
            )
        if problems:
            raise _error("\n".join(problems))
        return self


class GitHubAuthSection(_OAuth):
    """`provider: github`: GitHub organisations and teams."""

    provider: Literal["github"]
    """`github`."""
    github: GitHubAuth | None = Field(default=None, description="Organisations and teams.")

    def gives_groups(self) -> bool:
        return bool(self.github and self.github.teams_as_groups)

    def lets_someone_in(self) -> bool:
        return super().lets_someone_in() or bool(self.github and self.github.allowed_organizations)


class CILogonAuthSection(_OAuth):
    """`provider: cilogon`: institutions through CILogon."""

    provider: Literal["cilogon"]
    """`cilogon`."""
    cilogon: CILogonAuth = Field(description="The institutions (identity providers) and the groups claim.")

    def gives_groups(self) -> bool:
        return bool(self.cilogon.groups_claim)

    def lets_someone_in(self) -> bool:
        return super().lets_someone_in() or any(
            isinstance(i, dict) and (i.get("allow_all") or i.get("allowed_domains")) for i in self.cilogon.idps.values()
        )


class OIDCAuthSection(_OAuth):
    """`provider: oidc`: any OpenID Connect provider."""

    provider: Literal["oidc"]
    """`oidc`."""
    oidc: OIDCAuth = Field(description="The provider's discovery URL and claims.")

    def gives_groups(self) -> bool:
        return bool(self.oidc.groups_claim or self.oidc.groups_from_scopes)


class WorkshopAuthSection(_Auth):
    """`provider: workshop`: one shared password for the attendees of a workshop."""

    provider: Literal["workshop"]
    """`workshop`."""
    workshop: WorkshopAuth | None = Field(default=None, description="The password, its time window, the group.")
    # accepted only to say they have no use here (everyone with the password is allowed)
    anonymize_usernames: bool = Field(default=False, description="Not used by this provider.")
    staff_users: list[str] = Field(default_factory=list, description="Not used by this provider.")

    def gives_groups(self) -> bool:
        return bool(self.workshop and self.workshop.group)

    @model_validator(mode="after")
    def _consistent(self):
        problems = self.group_problems("workshop")
        for name in ("anonymize_usernames", "staff_users", "admin_groups", "allowed_users", "allowed_groups"):
            if getattr(self, name):
                problems.append(
                    f"auth.{name}: the workshop provider has no use for it (everyone with the password is allowed)"
                )
        if self.workshop and self.workshop.temporary_accounts and self.admin_users:
            problems.append("auth.admin_users: temporary accounts get random names, so no admin could log in")
        if self.admin_users and not (self.workshop and self.workshop.admin_password_env):
            problems.append("auth.workshop.admin_password_env: is required when auth.admin_users is set")
        if problems:
            raise _error("\n".join(problems))
        return self


# they extend _Auth above
from .external_auth import ExternalAuthSection, UnconvertedAuthSection  # noqa: E402


def _provider(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("provider", "demo")
    return getattr(value, "provider", "demo")


# one model per provider, chosen by `provider` (demo when absent): a setting that belongs
# to another provider is an unknown key, reported with its path
AuthSection = Annotated[
    Annotated[DemoAuthSection, Tag("demo")]
    | Annotated[GitHubAuthSection, Tag("github")]
    | Annotated[CILogonAuthSection, Tag("cilogon")]
    | Annotated[OIDCAuthSection, Tag("oidc")]
    | Annotated[WorkshopAuthSection, Tag("workshop")]
    | Annotated[ExternalAuthSection, Tag("external")]
    | Annotated[UnconvertedAuthSection, Tag("unconverted")],
    Discriminator(_provider),
]
