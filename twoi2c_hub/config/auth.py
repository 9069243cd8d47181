"""The `auth:` section: who may log in, and which groups they are in."""

from __future__ import annotations

import datetime
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict, _error


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
