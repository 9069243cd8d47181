"""twoi2c-cilogon: several institutions through CILogon, groups from a claim.

Extends OAuthenticator's CILogonOAuthenticator: `idps` keeps its format (one username
claim and allowed domains per institution); `groups_claim` (e.g. `isMemberOf`,
`eduPersonEntitlement`) gives the groups.
"""

from __future__ import annotations

from oauthenticator import cilogon as upstream

from .base import CommunityAuthenticatorMixin, _names


class CILogonOAuthenticator(CommunityAuthenticatorMixin, upstream.CILogonOAuthenticator):
    """CILogonOAuthenticator with group mapping and refusals that explain themselves.

    It keeps the upstream name, so `c.CILogonOAuthenticator` settings read the same."""

    provider_name = "cilogon"
    subject_claim = "sub"

    def switch_account_url(self):
        return f"https://{self.cilogon_host}/logout/"

    def refusal_reason(self, username, auth_model):
        user_info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        idp = user_info.get("idp")
        settings = self.idps.get(idp) or {}
        domains = settings.get("allowed_domains")
        if domains:
            claim = settings.get("allowed_domains_claim")
            raw = user_info.get(claim) if claim else self._user_info_to_unprocessed_username(user_info)
            domain = str(raw or "").split("@")[-1].lower()
            name = user_info.get("idp_name") or idp
            return f"Accounts of {name} may log in here only from the domains {_names(domains)}; yours is '{domain}'."
        return super().refusal_reason(username, auth_model)
