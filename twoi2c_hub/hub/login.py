"""The authenticator: who may log in, which groups they are in, who is an admin.

Our own providers (demo, workshop, GitHub, CILogon, OpenID Connect) and any other
JupyterHub authenticator class (`auth.provider: external`) with our mixin; a secret is
read from the environment variable the config names, never from the config file.
"""

from __future__ import annotations

import json

from traitlets import Bytes, Unicode
from traitlets.config import Config

from ..config import CommunityConfig
from ..config.auth import (
    CILogonAuthSection,
    GitHubAuth,
    GitHubAuthSection,
    OIDCAuthSection,
    WorkshopAuth,
    WorkshopAuthSection,
)
from ..config.external_auth import ExternalAuthSection, is_oauthenticator, resolve
from .environment import SettingError, secret


def authenticator(c: Config, config: CommunityConfig) -> None:
    """The authenticator class and its settings from the config's `auth:`."""
    auth = config.auth
    if auth.provider == "demo":
        from ..authenticators.demo import DemoAuthenticator

        c.JupyterHub.authenticator_class = DemoAuthenticator
        c.DemoAuthenticator.users = {name: user.model_dump() for name, user in auth.users.items()}
    elif auth.provider == "workshop":
        _workshop(c, auth)
    elif auth.provider == "external":
        external_authenticator(c, auth)
    else:
        _oauth(c, auth)
    section = c.Authenticator
    if auth.admin_users:
        section.admin_users = set(auth.admin_users)
    if auth.blocked_users:
        section.blocked_users = set(auth.blocked_users)
    if auth.allowed_users:
        section.allowed_users = set(auth.allowed_users)
    if auth.allow_all:
        section.allow_all = True
    section.auth_refresh_age = auth.refresh_age


def _oauth(c: Config, auth: GitHubAuthSection | CILogonAuthSection | OIDCAuthSection) -> None:
    from ..authenticators import cilogon, github, oidc

    cls = {
        "github": github.GitHubOAuthenticator,
        "cilogon": cilogon.CILogonOAuthenticator,
        "oidc": oidc.GenericOAuthenticator,
    }[auth.provider]
    c.JupyterHub.authenticator_class = cls
    section = c[cls.__name__]
    section.client_id = auth.client_id
    section.client_secret = secret(auth.client_secret_env, f"auth.client_id ({auth.provider})")
    if auth.callback_url:
        section.oauth_callback_url = auth.callback_url
    section.explain_refusals = True
    section.group_patterns = auth.groups.import_
    section.group_renames = auth.groups.rename
    section.group_prefix = auth.groups.prefix
    section.staff_users = auth.staff_users
    section.anonymize_usernames = auth.anonymize_usernames
    section.provider_down_policy = auth.provider_down
    if auth.anonymize_usernames:
        secret("TWOI2C_USERNAME_SECRET", "auth.anonymize_usernames")
    if auth.refresh_age:
        # refreshing groups needs the provider's tokens, kept encrypted in auth_state
        secret("JUPYTERHUB_CRYPT_KEY", f"auth.refresh_age ({auth.refresh_age} s; 0 refreshes only at login)")
        section.enable_auth_state = True
    if auth.gives_groups():
        section.manage_groups = True
        if auth.allowed_groups:
            section.allowed_groups = set(auth.allowed_groups)
        if auth.admin_groups:
            section.admin_groups = set(auth.admin_groups)
    if auth.provider == "github":
        github = auth.github or GitHubAuth()
        section.allowed_organizations = set(github.allowed_organizations)
        section.teams_as_groups = github.teams_as_groups
        if github.teams_as_groups or any(":" in o for o in github.allowed_organizations):
            section.scope = ["read:org"]
    elif auth.provider == "cilogon":
        section.idps = auth.cilogon.idps
        if auth.cilogon.groups_claim:
            section.groups_claim = auth.cilogon.groups_claim
    else:
        oidc = auth.oidc
        section.discovery_url = oidc.discovery_url
        section.username_claim = oidc.username_claim
        section.scope = oidc.scopes
        if oidc.groups_claim:
            section.groups_claim = oidc.groups_claim
        section.groups_from_scopes = oidc.groups_from_scopes


def _workshop(c: Config, auth: WorkshopAuthSection) -> None:
    from ..authenticators.workshop import WorkshopAuthenticator

    workshop = auth.workshop or WorkshopAuth()
    c.JupyterHub.authenticator_class = WorkshopAuthenticator
    section = c.WorkshopAuthenticator
    section.user_password = secret(workshop.password_env, "auth.workshop.password_env")
    if workshop.admin_password_env:
        section.admin_password = secret(workshop.admin_password_env, "auth.workshop.admin_password_env")
    section.allow_all = True
    if workshop.opens:
        section.opens = workshop.opens.isoformat()
    if workshop.closes:
        section.closes = workshop.closes.isoformat()
    if workshop.group:
        section.attendee_group = workshop.group
    section.temporary_accounts = workshop.temporary_accounts
    section.max_failures = workshop.max_failures
    section.failure_window = workshop.failure_window
    section.global_max_failures = workshop.global_max_failures
    section.trusted_proxies = workshop.trusted_proxies
    c.JupyterHub.template_vars = {
        **c.JupyterHub.get("template_vars", {}),
        "workshop_temporary_accounts": workshop.temporary_accounts,
        "workshop_closes": workshop.closes.isoformat(timespec="minutes") if workshop.closes else None,
    }


def external_authenticator(c: Config, auth: ExternalAuthSection) -> None:
    """The class `auth.class` names, with our mixin, its settings and the community's rules."""
    from ..authenticators.external import community_class

    cls = community_class(resolve(auth.class_), auth.subject_claim)
    c.JupyterHub.authenticator_class = cls
    section = c[cls.__name__]
    for name, value in auth.settings.items():
        section[name] = value
    traits = cls.class_traits(config=True)
    for name, variable in auth.settings_from_env.items():
        value = secret(variable, f"auth.settings_from_env.{name}")
        if not isinstance(traits[name], (Unicode, Bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                raise SettingError(
                    f"auth.settings_from_env.{name}: ${variable} must hold JSON (a list or a mapping)"
                ) from None
        section[name] = value
    section.explain_refusals = True
    section.group_patterns = auth.groups.import_
    section.group_renames = auth.groups.rename
    section.group_prefix = auth.groups.prefix
    section.anonymize_usernames = auth.anonymize_usernames
    if auth.anonymize_usernames:
        secret("TWOI2C_USERNAME_SECRET", "auth.anonymize_usernames")
    groups = bool(auth.allowed_groups or auth.admin_groups or auth.groups_claim)
    if groups and "manage_groups" not in auth.settings:
        section.manage_groups = True
    if is_oauthenticator(cls):
        section.staff_users = auth.staff_users
        if auth.groups_claim:
            section.groups_claim = auth.groups_claim
        if auth.allowed_groups:
            section.allowed_groups = set(auth.allowed_groups)
        if auth.admin_groups:
            section.admin_groups = set(auth.admin_groups)
    else:
        section.community_allowed_groups = set(auth.allowed_groups)
        section.community_admin_groups = set(auth.admin_groups)
