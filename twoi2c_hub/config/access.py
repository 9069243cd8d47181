"""Wiring who may do what: an external authenticator (`auth.provider: external`) and the
community's roles (`roles:`, `custom_scopes:`), beside what configure() sets itself."""

from __future__ import annotations

import json

from traitlets import Bytes, Unicode

from .base import SettingError


def external_authenticator(c, auth) -> None:
    """The class `auth.class` names, with our mixin, its settings and the community's rules."""
    from ..authenticators.external import community_class, is_oauthenticator, resolve
    from .wiring import _secret  # (which imports this module)

    cls = community_class(resolve(auth.class_), auth.subject_claim)
    c.JupyterHub.authenticator_class = cls
    section = c[cls.__name__]
    for name, value in auth.settings.items():
        section[name] = value
    traits = cls.class_traits(config=True)
    for name, variable in auth.settings_from_env.items():
        value = _secret(variable, f"auth.settings_from_env.{name}")
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
        _secret("TWOI2C_USERNAME_SECRET", "auth.anonymize_usernames")
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


def roles(c, config) -> None:
    """The community's roles and custom scopes, after the hub's own (which keep theirs).

    A `user` role with scopes replaces JupyterHub's default one, and JupyterHub then
    ignores `extra_user_scopes` (every user's access to our services): those are added to
    it instead."""
    if config.custom_scopes:
        defined = {name: spec.model_dump(exclude_defaults=True) for name, spec in config.custom_scopes.items()}
        c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), **defined}
    if not config.roles:
        return
    extra = set(c.JupyterHub.get("extra_user_scopes", set()))
    loaded = []
    for spec in config.roles:
        role = spec.model_dump(exclude_unset=True)
        role["name"] = spec.name
        if spec.name == "user" and "scopes" in role and extra:
            role["scopes"] = [*role["scopes"], *sorted(extra - set(role["scopes"]))]
            c.JupyterHub.extra_user_scopes = set()
        loaded.append(role)
    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), *loaded]
