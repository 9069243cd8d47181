"""What every community authenticator adds to the OAuthenticator class it extends.

- group mapping: import only the provider's groups that match patterns, rename them;
- staff break-glass admins, by their name at the provider;
- anonymised usernames: a keyed hash of the provider's stable subject;
- a refusal that explains itself (`LoginRefused`, shown by our error template);
- group changes at login and at refresh reported to a hook (for dated membership);
- what happens when the provider's API is down during a refresh.

Each behaviour is off until configured (`twoi2c_hub.configure` turns them on from the
community config), so the class stays a drop-in: OAuthenticator's own tests pass
against it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re

from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Callable, Dict, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

ANONYMOUS_SECRET_ENV = "TWOI2C_USERNAME_SECRET"


class LoginRefused(web.HTTPError):
    """A refused login, with the reason shown to the person and written to the log."""

    def __init__(self, reason: str, *, status_code: int = 403, switch_account_url: str | None = None):
        super().__init__(status_code, reason)
        # JupyterHub's error page shows `jupyterhub_message`
        self.jupyterhub_message = reason
        self.switch_account_url = switch_account_url


def anonymous_username(secret: bytes, provider: str, subject: str, prefix: str = "u") -> str:
    """A stable pseudonym for `subject` at `provider`, keyed by `secret`.

    blake2b keyed hash, base32 without padding, lowercased: letters and digits only,
    32 characters with the prefix, so valid as a Unix name, a Kubernetes label and a
    DNS label, and the same at every login.
    """
    digest = hashlib.blake2b(f"{provider}\0{subject}".encode(), key=secret, digest_size=20).digest()
    encoded = base64.b32encode(digest).decode().rstrip("=").lower()
    return (prefix + encoded)[:32]


def _names(groups) -> str:
    return ", ".join(sorted(groups)) or "(none)"


class CommunityMixinBase(LoggingConfigurable):
    """What both community mixins add: refusals that explain themselves, group mapping,
    anonymised usernames, group changes reported to a hook."""

    # how this provider is named in anonymised-username hashes and in messages
    provider_name = "oauth"

    explain_refusals = Bool(
        False,
        config=True,
        help="""Answer a refused login with a page that says why (not the bare 403),
        and log the reason. Set by twoi2c_hub.configure.""",
    )

    group_patterns = List(
        Unicode(),
        config=True,
        help="""Import only the provider's groups matching one of these shell-style
        patterns (e.g. `my-org:*`). Empty: import every group.""",
    )

    group_renames = List(
        Dict(),
        config=True,
        help="""Rename imported groups: a list of {"match": regex, "replace": template}
        applied in order to each group (re.sub on the whole name).""",
    )

    group_prefix = Unicode(
        "",
        config=True,
        help="A prefix added to every imported group name, after renames.",
    )

    anonymize_usernames = Bool(
        False,
        config=True,
        help=f"""Use a keyed hash of the provider's stable subject as the username, so no
        personal name reaches the hub, the pods or the logs. The key comes from
        ${ANONYMOUS_SECRET_ENV}; keep it: changing it gives everyone a new username.""",
    )

    anonymous_secret = Unicode(
        config=True,
        help=f"The anonymised-username key (default: ${ANONYMOUS_SECRET_ENV}).",
    )

    @default("anonymous_secret")
    def _default_anonymous_secret(self):
        return os.environ.get(ANONYMOUS_SECRET_ENV, "")

    group_change_hook = Callable(
        None,
        allow_none=True,
        config=True,
        help="""Called as hook(authenticator, username, added, removed) whenever a login
        or a refresh changes someone's groups (sets of names). The usage service uses it
        to keep membership with dates.""",
    )

    def check_allow_config(self):
        super().check_allow_config()
        if self.anonymize_usernames and len(self.anonymous_secret) < 32:
            raise ValueError(
                f"{type(self).__name__}.anonymize_usernames needs a secret of at least 32 "
                f"characters in ${ANONYMOUS_SECRET_ENV} (e.g. `openssl rand -hex 32`)"
            )

    def map_groups(self, groups) -> set[str]:
        """The provider's groups as this hub names them: filtered, renamed, prefixed."""
        mapped = set()
        for group in groups:
            group = str(group)
            if self.group_patterns and not any(fnmatch.fnmatchcase(group, p) for p in self.group_patterns):
                continue
            for rule in self.group_renames:
                group = re.sub(rule["match"], rule["replace"], group)
            if group:
                mapped.add(self.group_prefix + group)
        return mapped

    def report_group_changes(self, username: str, old: set[str], new: set[str]) -> None:
        added, removed = new - old, old - new
        if not (added or removed):
            return
        self.log.info("Groups of %s changed: added %s, removed %s", username, _names(added), _names(removed))
        if self.group_change_hook is not None:
            try:
                self.group_change_hook(self, username, added, removed)
            except Exception:
                self.log.exception("group_change_hook failed for %s", username)

    async def run_post_auth_hook(self, handler, auth_model):
        auth_model = await super().run_post_auth_hook(handler, auth_model)
        if auth_model and self.manage_groups and "groups" in auth_model and handler is not None:
            existing = handler.find_user(auth_model["name"])
            old = {g.name for g in existing.groups} if existing else set()
            self.report_group_changes(auth_model["name"], old, set(auth_model["groups"]))
        return auth_model

    def check_blocked_users(self, username, authentication=None):
        allowed = super().check_blocked_users(username, authentication)
        if not allowed and self.explain_refusals:
            self.refuse("This account is blocked on this hub. Ask the hub's administrators if this is a mistake.")
        return allowed

    def switch_account_url(self) -> str | None:
        """Where to go to log in with another account at the provider, if it has one."""
        return None

    def refuse(self, reason: str, status_code: int = 403):
        self.log.warning("Login refused: %s", reason)
        raise LoginRefused(reason, status_code=status_code, switch_account_url=self.switch_account_url())


class CommunityAuthenticatorMixin(CommunityMixinBase):
    """Mixed into an OAuthenticator subclass, before it in the bases."""

    # the user_info key holding the provider's stable, never-reassigned subject
    subject_claim = "sub"

    staff_users = List(
        Unicode(),
        config=True,
        help="""Break-glass staff: names *at the provider* (before anonymisation) who are
        always allowed in and are hub admins, whatever the other rules say.""",
    )

    provider_down_policy = Unicode(
        "keep",
        config=True,
        help="""When the provider cannot be reached during a refresh: "keep" the session
        and the groups already known (nobody is locked out by an outage), or "logout"
        (everyone must log in again, which fails until the provider is back).""",
    )

    groups_claim = Unicode(
        "",
        config=True,
        help="""Take groups from this claim of the provider's user info (e.g. `groups`,
        `isMemberOf`, `eduPersonEntitlement`); a single string counts as one group.
        Sets manage_groups.""",
    )

    groups_from_scopes = Bool(
        False,
        config=True,
        help="Take groups from the scopes the provider granted (as 2i2c's Auth0 hubs do).",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.groups_claim and self.groups_from_scopes:
            raise ValueError("set groups_claim or groups_from_scopes, not both")
        if self.groups_claim or self.groups_from_scopes:
            self.manage_groups = True
            self.auth_state_groups_key = self._groups_from_auth_state

    def _groups_from_auth_state(self, auth_state) -> list[str]:
        if self.groups_from_scopes:
            value = auth_state.get("scope")
        else:
            value = (auth_state.get(self.user_auth_state_key) or {}).get(self.groups_claim)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value if v is not None and not isinstance(v, (dict, list))]

    @validate("provider_down_policy")
    def _valid_policy(self, proposal):
        if proposal.value not in ("keep", "logout"):
            raise ValueError('provider_down_policy must be "keep" or "logout"')
        return proposal.value

    # --- usernames -------------------------------------------------------------------

    def provider_username(self, user_info: dict) -> str:
        """The person's name at the provider (before anonymisation)."""
        return super().user_info_to_username(user_info)

    def user_info_to_username(self, user_info):
        name = self.provider_username(user_info)
        if not self.anonymize_usernames:
            return name
        subject = user_info.get(self.subject_claim)
        if subject in (None, ""):
            raise LoginRefused(
                f"The identity provider did not send '{self.subject_claim}', which this hub "
                "needs to give you a private username.",
                status_code=500,
            )
        return anonymous_username(self.anonymous_secret.encode(), self.provider_name, str(subject))

    def validate_username(self, username):
        if super().validate_username(username):
            return True
        if self.explain_refusals:
            shown = username if len(username) <= 64 else username[:61] + "..."
            raise LoginRefused(
                f"The username '{shown}' from your identity provider cannot be used on this "
                "hub (it is empty, has a '/' or spaces at either end, or does not match the "
                "hub's username rules)."
            )
        return False

    def build_auth_state_dict(self, token_info, user_info):
        auth_state = super().build_auth_state_dict(token_info, user_info)
        auth_state["provider_username"] = self.provider_username(user_info)
        return auth_state

    # --- groups ----------------------------------------------------------------------

    async def get_user_groups(self, auth_state):
        return self.map_groups(await super().get_user_groups(auth_state))

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        provider_name = (auth_model.get("auth_state") or {}).get("provider_username")
        if provider_name is not None and provider_name in self.staff_users:
            self.log.info("Staff member %s (%s) logs in as a hub admin", auth_model["name"], provider_name)
            auth_model["admin"] = True
        return auth_model

    async def refresh_user(self, user, handler=None, **kwargs):
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        except (HTTPClientError, OSError, TimeoutError) as e:
            code = getattr(e, "code", None)
            if code is not None and 400 <= code < 500:
                raise
            if self.provider_down_policy == "keep":
                self.log.warning(
                    "%s could not be reached to refresh %s (%s); keeping the session and groups",
                    self.provider_name,
                    user.name,
                    e,
                )
                return True
            self.log.warning(
                "%s could not be reached to refresh %s (%s); logging out", self.provider_name, user.name, e
            )
            return False
        if isinstance(refreshed, dict) and self.manage_groups and "groups" in refreshed:
            old = {g.name for g in getattr(user, "groups", None) or []}
            self.report_group_changes(user.name, old, set(refreshed["groups"]))
        return refreshed

    # --- refusals --------------------------------------------------------------------

    def refusal_reason(self, username: str, auth_model: dict) -> str:
        """Why `username` may not log in; providers say more."""
        groups = set(auth_model.get("groups") or [])
        if self.allowed_groups:
            return (
                f"You are not a member of any of the groups allowed on this hub: "
                f"{_names(self.allowed_groups)}. Your groups: {_names(groups)}."
            )
        return f"Your account ({username}) is not on this hub's list of allowed users."

    async def check_allowed(self, username, auth_model):
        if auth_model is not None:
            provider_name = (auth_model.get("auth_state") or {}).get("provider_username")
            if provider_name is not None and provider_name in self.staff_users:
                return True
        allowed = await super().check_allowed(username, auth_model)
        if not allowed and self.explain_refusals and auth_model is not None:
            self.refuse(self.refusal_reason(username, auth_model))
        return allowed
