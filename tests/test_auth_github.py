"""GitHub logins with OAuthenticator's own HTTP mocks (GitHub cannot be reached from here):
organisations and teams, teams as groups, and what an outage does."""

import re
from types import SimpleNamespace

import pytest
from oauthenticator.tests.mocks import setup_oauth_mock
from tornado.httpclient import HTTPResponse

from twoi2c_hub.authenticators.base import LoginRefused, anonymous_username
from twoi2c_hub.authenticators.github import GitHubOAuthenticator, team_groups

MEMBERS = {"org-a": {"alice", "carol"}, "org-b": {"dave"}}
TEAM_MEMBERS = {("org-a", "team-x"): {"alice"}}


def team(org, slug, parent=None):
    return {
        "slug": slug,
        "name": slug.title(),
        "organization": {"login": org},
        "parent": {"slug": parent, "name": parent} if parent else None,
    }


TEAMS = {
    "alice": [
        team("Org-A", "Team-X"),
        team("org-a", "grandchild", "child"),
        team("org-a", "child", "parent"),
        team("org-c", "elsewhere"),
    ],
    "carol": [],
    "dave": [team("org-b", "b-team")],
}


def user_model(login, user_id):
    return {"login": login, "id": user_id, "name": login.title(), "email": None}


@pytest.fixture
def github(client):
    setup_oauth_mock(
        client,
        host=["github.com", "api.github.com"],
        access_token_path="/login/oauth/access_token",
        user_path="/user",
        token_type="token",
        scope="read:org",
    )
    state = {"down": False}

    def membership(request):
        if state["down"]:
            return HTTPResponse(request, 502)
        parts = request.url.split("/orgs/", 1)[1].split("/")
        if parts[1] == "teams":
            org, team_slug, user = parts[0], parts[2], parts[4]
            return 204 if user in TEAM_MEMBERS.get((org, team_slug), set()) else 404
        org, user = parts[0], parts[2]
        return 204 if user in MEMBERS.get(org, set()) else 404

    def user_teams(request):
        token = request.headers["Authorization"].split()[1]
        return TEAMS.get(client.access_tokens[token]["login"], [])

    client.hosts["api.github.com"].append((re.compile(r"/orgs/.*"), membership))
    client.hosts["api.github.com"].append(("/user/teams", user_teams))
    client.github_state = state
    return client


def make_authenticator(**settings):
    defaults = dict(
        manage_groups=True,
        client_id="id",
        client_secret="secret",
        scope=["read:org"],
        explain_refusals=True,
        teams_as_groups=True,
        allowed_organizations={"org-a", "org-b"},
    )
    defaults.update(settings)
    return GitHubOAuthenticator(**defaults)


async def log_in(github, login, user_id=1, authenticator=None):
    authenticator = authenticator or make_authenticator()
    handler = github.handler_for_user(user_model(login, user_id))
    return await authenticator.get_authenticated_user(handler, None)


async def test_member_of_an_allowed_org_gets_every_team_there_as_a_group(github):
    model = await log_in(github, "alice")
    assert model["name"] == "alice"
    # nested teams bring their parents; teams of organisations not allowed here do not count
    assert model["groups"] == ["org-a:child", "org-a:grandchild", "org-a:parent", "org-a:team-x"]


async def test_non_member_is_refused_with_the_organisations_named(github):
    with pytest.raises(LoginRefused) as refused:
        await log_in(github, "mallory")
    assert refused.value.status_code == 403
    assert refused.value.jupyterhub_message.startswith("You (mallory) are not a member of any of: org-a, org-b.")
    assert refused.value.switch_account_url == "https://github.com/logout"


async def test_team_entry_allows_only_that_team(github):
    authenticator = make_authenticator(allowed_organizations={"org-a:team-x"})
    assert (await log_in(github, "alice", authenticator=authenticator))["name"] == "alice"
    with pytest.raises(LoginRefused, match=r"not a member of any of: org-a:team-x"):
        await log_in(github, "carol", authenticator=authenticator)


async def test_allowed_groups_use_the_team_groups(github):
    authenticator = make_authenticator(allowed_organizations=set(), allowed_groups={"org-a:team-x"})
    assert (await log_in(github, "alice", authenticator=authenticator))["name"] == "alice"
    with pytest.raises(LoginRefused) as refused:
        await log_in(github, "dave", authenticator=authenticator)
    assert refused.value.jupyterhub_message == (
        "You are not a member of any of the groups allowed on this hub: org-a:team-x. Your groups: org-b:b-team."
    )


async def test_github_api_down_at_login_says_so(github):
    github.github_state["down"] = True
    with pytest.raises(LoginRefused) as refused:
        await log_in(github, "alice")
    assert refused.value.status_code == 503
    assert "GitHub could not be reached to check your membership" in refused.value.jupyterhub_message


class FakeUser(SimpleNamespace):
    async def get_auth_state(self):
        return self.auth_state


async def test_github_api_down_at_refresh_keeps_sessions_by_default(github):
    authenticator = make_authenticator(enable_auth_state=True)
    model = await log_in(github, "alice", authenticator=authenticator)
    user = FakeUser(
        name="alice", auth_state=model["auth_state"], groups=[SimpleNamespace(name=g) for g in model["groups"]]
    )
    github.hosts["api.github.com"].insert(0, ("/user", lambda request: HTTPResponse(request, 503)))
    assert await authenticator.refresh_user(user) is True
    authenticator.provider_down_policy = "logout"
    assert await authenticator.refresh_user(user) is False


async def test_refresh_reports_changed_groups_to_the_hook(github):
    changes = []
    authenticator = make_authenticator(
        enable_auth_state=True,
        group_change_hook=lambda auth, name, added, removed: changes.append((name, added, removed)),
    )
    model = await log_in(github, "dave", authenticator=authenticator)
    assert changes == [("dave", {"org-b:b-team"}, set())]  # a first login adds every group
    changes.clear()
    user = FakeUser(name="dave", auth_state=model["auth_state"], groups=[SimpleNamespace(name="org-b:b-team")])
    TEAMS["dave"] = [team("org-b", "new-team")]
    try:
        refreshed = await authenticator.refresh_user(user)
    finally:
        TEAMS["dave"] = [team("org-b", "b-team")]
    assert refreshed["groups"] == ["org-b:new-team"]
    assert changes == [("dave", {"org-b:new-team"}, {"org-b:b-team"})]


def test_team_scope_is_checked_at_start():
    authenticator = GitHubOAuthenticator(client_id="id", client_secret="s", teams_as_groups=True, scope=[])
    with pytest.raises(ValueError, match=r"the scope must include 'read:org'"):
        authenticator.check_allow_config()


async def test_group_mapping_staff_and_anonymised_names(github, monkeypatch):
    secret = "k" * 40
    authenticator = make_authenticator(
        group_patterns=["org-a:team-*", "org-a:child"],
        group_renames=[{"match": "^org-a:", "replace": ""}],
        group_prefix="gh-",
        staff_users=["carol"],
        allowed_organizations={"org-b"},
        anonymize_usernames=True,
        anonymous_secret=secret,
    )
    with pytest.raises(LoginRefused):  # alice is not in org-b, the only allowed organisation
        await log_in(github, "alice", 1001, authenticator=authenticator)
    dave = await log_in(github, "dave", 1003, authenticator=authenticator)
    # membership was checked with dave's GitHub login, not with his anonymised name
    assert dave["name"] == anonymous_username(secret.encode(), "github", "1003")
    staff = await log_in(github, "carol", 1002, authenticator=authenticator)
    assert staff["admin"] is True  # break-glass: carol is in no allowed org
    assert staff["name"] == anonymous_username(secret.encode(), "github", "1002")
    assert staff["name"].isalnum() and len(staff["name"]) == 32 and staff["name"][0].isalpha()
    assert staff["auth_state"]["provider_username"] == "carol"
    mapped = authenticator.map_groups(team_groups(TEAMS["alice"], {"org-a"}))
    assert mapped == {"gh-team-x", "gh-child"}


def test_anonymised_names_are_stable_and_keyed():
    one = anonymous_username(b"a" * 32, "github", "42")
    assert one == anonymous_username(b"a" * 32, "github", "42")
    assert one != anonymous_username(b"b" * 32, "github", "42")
    assert one != anonymous_username(b"a" * 32, "oidc", "42")


async def test_blocked_person_is_told_so(github):
    authenticator = make_authenticator(blocked_users={"alice"})
    with pytest.raises(LoginRefused) as refused:
        await log_in(github, "alice", authenticator=authenticator)
    assert refused.value.jupyterhub_message == (
        "This account is blocked on this hub. Ask the hub's administrators if this is a mistake."
    )
    assert (await log_in(github, "dave", authenticator=authenticator))["name"] == "dave"
