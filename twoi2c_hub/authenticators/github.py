"""twoi2c-github: GitHub organisations and teams, every team a JupyterHub group.

Extends OAuthenticator's GitHubOAuthenticator. With `teams_as_groups`, every team the
person belongs to inside an allowed organisation becomes the group `org:team` (team slugs
as in GitHub's URLs), parent teams of nested teams included, without listing each team.
"""

from __future__ import annotations

import contextvars

from oauthenticator import github as upstream
from traitlets import Bool

from .base import CommunityAuthenticatorMixin, _names


def team_groups(teams: list[dict], organizations: set[str] | None = None) -> set[str]:
    """`org:team` for every team (and every parent of a nested team) in `organizations`
    (all organisations if None). Organisation and team names compare case-insensitively,
    as GitHub's do; groups use GitHub's lowercase slugs."""
    allowed = {o.lower() for o in organizations} if organizations else None
    # GitHub gives each team only its direct parent: follow the chain through the list
    by_slug = {(t["organization"]["login"].lower(), t["slug"].lower()): t for t in teams}
    groups = set()
    for team in teams:
        org = team["organization"]["login"].lower()
        if allowed is not None and org not in allowed:
            continue
        node, seen = team, set()
        while node and node["slug"].lower() not in seen:
            slug = node["slug"].lower()
            seen.add(slug)
            groups.add(f"{org}:{slug}")
            parent = node.get("parent")
            node = by_slug.get((org, parent["slug"].lower()), parent) if parent else None
    return groups


# the GitHub login of the person being checked: with anonymised usernames the hub
# username is a hash, but GitHub's membership API needs the login
_login_being_checked = contextvars.ContextVar("login_being_checked", default=None)


class GitHubOAuthenticator(CommunityAuthenticatorMixin, upstream.GitHubOAuthenticator):
    """GitHubOAuthenticator with teams as groups and refusals that explain themselves.

    It keeps the upstream name, so `c.GitHubOAuthenticator` settings and messages read
    the same; the module path tells them apart."""

    provider_name = "github"
    subject_claim = "id"  # GitHub's numeric user id never changes; the login can

    teams_as_groups = Bool(
        False,
        config=True,
        help="""Make every team the person belongs to, inside the allowed organisations
        (all organisations if none are listed), the group `org:team`. Needs the
        `read:org` scope; sets manage_groups and populate_teams_in_auth_state.""",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.teams_as_groups:
            self.manage_groups = True
            self.populate_teams_in_auth_state = True
            if not callable(self.auth_state_groups_key):
                self.auth_state_groups_key = self._teams_to_groups

    def _teams_to_groups(self, auth_state):
        organizations = {entry.split(":", 1)[0] for entry in self.allowed_organizations}
        return team_groups(auth_state.get("teams") or [], organizations or None)

    def check_allow_config(self):
        super().check_allow_config()
        needs_read_org = self.teams_as_groups or any(":" in o for o in self.allowed_organizations)
        if needs_read_org and "read:org" not in self.scope:
            raise ValueError(
                f"{type(self).__name__}: the scope must include 'read:org' to read team "
                f"membership (scope is {sorted(self.scope)}). Add it, e.g. "
                "c.GitHubOAuthenticator.scope = ['read:org']."
            )

    def switch_account_url(self):
        # GitHub offers no account switcher in the OAuth flow: log out there first
        return "https://github.com/logout"

    def refusal_reason(self, username, auth_model):
        if self.allowed_organizations:
            return (
                f"You ({username}) are not a member of any of: "
                f"{_names(self.allowed_organizations)}. If you joined recently, check that "
                "the organisation granted this hub access, then log in again."
            )
        return super().refusal_reason(username, auth_model)

    async def check_allowed(self, username, auth_model):
        login = ((auth_model or {}).get("auth_state") or {}).get("provider_username")
        token = _login_being_checked.set(login)
        try:
            return await super().check_allowed(username, auth_model)
        finally:
            _login_being_checked.reset(token)

    async def _check_membership_allowed_organizations(self, org_team, username, access_token, token_type):
        # Answer an outage with a reason instead of treating it as "not a member".
        username = _login_being_checked.get() or username
        headers = self.build_userdata_request_headers(access_token, token_type)
        org, _, team = org_team.partition(":")
        url = (f"{self.github_api}/orgs/{org}/teams/{team}/members/{username}" if team
               else f"{self.github_api}/orgs/{org}/members/{username}")
        response = await self.httpfetch(
            url, parse_json=False, raise_error=False, method="GET", headers=headers,
            validate_cert=self.validate_server_cert,
        )
        if response.code >= 500 and self.explain_refusals:
            self.refuse(
                f"GitHub could not be reached to check your membership of {org_team} "
                f"(HTTP {response.code}). Please try again in a few minutes.",
                status_code=503,
            )
        return response.code == 204
