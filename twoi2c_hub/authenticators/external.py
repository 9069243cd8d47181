"""Any other JupyterHub authenticator (`auth.provider: external`), with what the
community config adds where the class allows it.

The class is named by a dotted path (`canvasoauthenticator.CanvasOAuthenticator`) or an
entry-point name of `jupyterhub.authenticators` (`google`, `tmp`, `shared-password`), and
found as JupyterHub finds it (`twoi2c_hub.config.external_auth.resolve`, which
check-config runs). `community_class` makes, at config time, a subclass of the same name
(so `c.<Class>` settings read the same):

- an OAuthenticator (Google, Auth0, GitLab, Canvas, ...) gets CommunityAuthenticatorMixin,
  as our own providers do: group mapping, `groups_claim`, admin groups, staff,
  anonymised usernames (of its `subject_claim`), refusals that explain themselves;
- any other Authenticator (LTI, tmp, shared password, dummy, a site's own) gets
  ExternalAuthenticatorMixin: the groups its `authenticate` returns mapped, allowed and
  admin groups applied to them, anonymised usernames (a keyed hash of the name it
  returns), refusals that explain themselves. What happens inside `authenticate` (a
  wrong password, an LTI signature) stays the class's own.
"""

from __future__ import annotations

import inspect

from jupyterhub.auth import Authenticator
from oauthenticator.oauth2 import OAuthenticator
from traitlets import Set, Unicode

from .base import CommunityAuthenticatorMixin, CommunityMixinBase, _names, anonymous_username


class ExternalAuthenticatorMixin(CommunityMixinBase):
    """Mixed into any Authenticator that is not an OAuthenticator, before it in the bases.

    Its own `allowed_groups` and `admin_groups` (community_*), so a class with settings of
    those names (LDAP's) keeps its meaning of them."""

    community_allowed_groups = Set(
        Unicode(),
        config=True,
        help="Members of these groups (as the class gives them, after mapping) may log in.",
    )

    community_admin_groups = Set(
        Unicode(),
        config=True,
        help="Members of these groups (after mapping) are hub admins.",
    )

    async def authenticate(self, handler, data):
        result = super().authenticate(handler, data)
        if inspect.isawaitable(result):
            result = await result
        if not result:
            return result  # refused by the class itself
        if isinstance(result, str):
            result = {"name": result}
        result = dict(result)
        if result.get("groups") is not None:
            result["groups"] = sorted(self.map_groups(result["groups"]))
        if set(result.get("groups") or ()) & self.community_admin_groups:
            result["admin"] = True
        if self.anonymize_usernames:
            result["name"] = anonymous_username(self.anonymous_secret.encode(), self.provider_name, result["name"])
        return result

    async def check_allowed(self, username, authentication=None):
        groups = set((authentication or {}).get("groups") or ())
        if groups & self.community_allowed_groups or (authentication or {}).get("admin"):
            return True
        allowed = super().check_allowed(username, authentication)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed and self.explain_refusals:
            if self.community_allowed_groups:
                self.refuse(
                    f"You are not a member of any of the groups allowed on this hub: "
                    f"{_names(self.community_allowed_groups)}. Your groups: {_names(groups)}."
                )
            self.refuse(f"Your account ({username}) is not on this hub's list of allowed users.")
        return allowed


def community_class(cls: type[Authenticator], subject_claim: str = "sub") -> type[Authenticator]:
    """`cls` with the community mixin that fits it, under the same name."""
    if issubclass(cls, CommunityMixinBase):
        return cls
    mixin = CommunityAuthenticatorMixin if issubclass(cls, OAuthenticator) else ExternalAuthenticatorMixin
    namespace = {
        "__module__": __name__,
        "__doc__": cls.__doc__,
        "provider_name": cls.__name__.lower(),
        "subject_claim": subject_claim,
    }
    return type(cls.__name__, (mixin, cls), namespace)
