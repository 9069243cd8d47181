"""twoi2c-github: GitHub organisations and teams, every team a JupyterHub group.

Extends OAuthenticator's GitHubOAuthenticator. With `teams_as_groups`, every team the
person belongs to inside an allowed organisation becomes the group `org:team` (team slugs
as in GitHub's URLs), parent teams of nested teams included, without listing each team.
"""

from __future__ import annotations

from oauthenticator import github as upstream
from oauthenticator.oauth2 import OAuthenticator
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


class _OrganisationMembership(upstream.GitHubOAuthenticator):
    """OAuthenticator's GitHub class with the organisation check done here.

    Upstream's `check_allowed` asks GitHub about the hub username (a hash when usernames
    are anonymised; GitHub needs the login) and treats an outage as "not a member".
    This replaces that one step through public methods only: `OAuthenticator.check_allowed`
    (allow_all, allowed_users, admins, existing users) and then our own membership check.
    `tests/test_upstream_contracts.py` fails if upstream's `check_allowed` changes, so a
    new OAuthenticator is reviewed before this is trusted with it.
    """

    async def check_allowed(self, username, auth_model):
        if await OAuthenticator.check_allowed(self, username, auth_model):
            return True
        if not self.allowed_organizations:
            return False
        auth_state = auth_model["auth_state"]
        login = auth_state.get("provider_username") or username
        for org_team in sorted(self.allowed_organizations):
            if await self.is_member(org_team, login, auth_state["token_response"]):
                return True
        self.log.warning("User %s is not part of allowed_organizations", username)
        return False

    async def is_member(self, org_team: str, login: str, token_response: dict) -> bool:
        """Whether GitHub's `login` is in `org` or `org:team`; an outage is a 503 with a
        reason, not a refusal."""
        headers = self.build_userdata_request_headers(token_response["access_token"], token_response["token_type"])
        org, _, team = org_team.partition(":")
        url = (
            f"{self.github_api}/orgs/{org}/teams/{team}/members/{login}"
            if team
            else f"{self.github_api}/orgs/{org}/members/{login}"
        )
        response = await self.httpfetch(
            url,
            parse_json=False,
            raise_error=False,
            method="GET",
            headers=headers,
            validate_cert=self.validate_server_cert,
        )
        if response.code >= 500 and self.explain_refusals:
            self.refuse(
                f"GitHub could not be reached to check your membership of {org_team} "
                f"(HTTP {response.code}). Please try again in a few minutes.",
                status_code=503,
            )
        return response.code == 204


class GitHubOAuthenticator(CommunityAuthenticatorMixin, _OrganisationMembership):
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
