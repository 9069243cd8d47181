"""OIDC and CILogon-style logins through a real hub and a real OpenID Connect provider on
loopback: authorize -> callback -> hub cookie -> spawn page, for allowed and refused
people, with mapped groups, anonymised names and changed memberships."""

import secrets

import pytest
import yaml
from bs4 import BeautifulSoup

from twoi2c_hub.authenticators.base import anonymous_username
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub

USERNAME_SECRET = secrets.token_hex(32)


def community_config(tmp_path, auth: dict):
    config = demo_config()
    config["auth"] = auth
    config["culling"] = {"enabled": False}
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def oidc_hub(hub_factory, oidc_provider, tmp_path_factory):
    config = community_config(
        tmp_path_factory.mktemp("oidc-config"),
        {
            "provider": "oidc",
            "client_id": "twoi2c-tests",
            "client_secret_env": "TEST_OIDC_SECRET",
            "allowed_groups": ["researchers", "students"],
            "admin_groups": ["hub-admins"],
            "anonymize_usernames": True,
            "refresh_age": 2,
            "groups": {
                "import": ["lab-*", "researchers", "students", "hub-admins"],
                "rename": [{"match": "^lab-", "replace": ""}],
            },
            "oidc": {"discovery_url": oidc_provider.url, "groups_claim": "groups"},
        },
    )
    return hub_factory(
        config,
        "oidc-hub",
        environment={
            "TEST_OIDC_SECRET": "not-so-secret",
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "TWOI2C_USERNAME_SECRET": USERNAME_SECRET,
        },
    )


def hashed(subject):
    return anonymous_username(USERNAME_SECRET.encode(), "oidc", subject)


def spawn_profiles(session, hub):
    page = BeautifulSoup(session.get(f"{hub.url}/hub/spawn", timeout=30).text, "html.parser")
    return [card["data-profile"] for card in page.select(".twoi2c-profile")]


def test_allowed_person_logs_in_with_mapped_groups_and_an_anonymised_name(oidc_hub, oidc_provider):
    oidc_provider.set_claims(
        "alice-subject",
        {
            "preferred_username": "alice",
            "email": "alice@example.org",
            "groups": ["lab-researchers", "some-mailing-list"],
        },
    )
    session, response = oidc_provider.log_in(oidc_hub.url, "alice-subject")
    assert response.status_code == 200
    name = hashed("alice-subject")
    model = oidc_hub.user_model(name)
    assert model["groups"] == ["researchers"]  # renamed; the mailing list was not imported
    assert model["admin"] is False
    assert oidc_hub.user_model("alice") is None  # no personal name reached the hub
    assert spawn_profiles(session, oidc_hub) == ["cpu", "gpu"]


def test_refused_person_sees_why_and_can_try_another_account(oidc_hub, oidc_provider):
    oidc_provider.set_claims("mallory-subject", {"preferred_username": "mallory", "groups": ["visitors"]})
    _, response = oidc_provider.log_in(oidc_hub.url, "mallory-subject")
    assert response.status_code == 403
    page = BeautifulSoup(response.text, "html.parser")
    text = " ".join(page.get_text().split())
    assert (
        "You are not a member of any of the groups allowed on this hub: researchers, students. Your groups: (none)."
    ) in text
    links = {a.get_text(" ", strip=True): a["href"] for a in page.select(".twoi2c-refusal a")}
    assert links["log out at your identity provider"] == f"{oidc_provider.url}/oauth2/end_session"
    assert links["log in again with another account"].endswith("/hub/login")
    assert oidc_hub.user_model(hashed("mallory-subject")) is None
    assert "Login refused: You are not a member" in oidc_hub.hub.log_tail(400)


def test_changed_membership_applies_at_the_next_login_and_at_refresh(oidc_hub, oidc_provider):
    subject = "carol-subject"
    oidc_provider.set_claims(subject, {"preferred_username": "carol", "groups": ["students"]})
    session, _ = oidc_provider.log_in(oidc_hub.url, subject)
    name = hashed(subject)
    assert oidc_hub.user_model(name)["groups"] == ["students"]
    assert spawn_profiles(session, oidc_hub) == ["cpu"]

    # the next login brings the new membership
    oidc_provider.set_claims(subject, {"preferred_username": "carol", "groups": ["lab-researchers", "hub-admins"]})
    session, _ = oidc_provider.log_in(oidc_hub.url, subject)
    model = oidc_hub.user_model(name)
    assert sorted(model["groups"]) == ["hub-admins", "researchers"] and model["admin"] is True

    # and so does a refresh, once auth_refresh_age (2 s) has passed, without a new login
    oidc_provider.set_claims(subject, {"preferred_username": "carol", "groups": ["students"]})
    oidc_hub.wait_for(
        lambda: (
            session.get(f"{oidc_hub.url}/hub/home", timeout=30).status_code == 200
            and oidc_hub.user_model(name)["groups"] == ["students"]
        ),
        timeout=20,
        what="the refresh to bring the new groups",
    )
    log = oidc_hub.hub.log_tail(400)
    assert f"Groups of {name} changed: added students, removed hub-admins, researchers" in log


CILOGON_IDP = "https://idp.uni.example/idp/shibboleth"


@pytest.fixture(scope="module")
def cilogon_hub(hub_factory, oidc_provider, tmp_path_factory):
    config = community_config(
        tmp_path_factory.mktemp("cilogon-config"),
        {
            "provider": "cilogon",
            "client_id": "cilogon-tests",
            "client_secret_env": "TEST_CILOGON_SECRET",
            "refresh_age": 0,
            "cilogon": {
                "idps": {
                    CILOGON_IDP: {
                        "username_derivation": {
                            "username_claim": "email",
                            "action": "strip_idp_domain",
                            "domain": "uni.example",
                        },
                        "allowed_domains": ["uni.example"],
                    }
                },
                "groups_claim": "isMemberOf",
            },
        },
    )
    # CILogon's endpoints, pointed at the provider on loopback
    endpoints = f'''
c.CILogonOAuthenticator.authorize_url = "{oidc_provider.url}/oauth2/authorize"
c.CILogonOAuthenticator.token_url = "{oidc_provider.url}/oauth2/token"
c.CILogonOAuthenticator.userdata_url = "{oidc_provider.url}/userinfo"
c.CILogonOAuthenticator.basic_auth = True
'''
    return hub_factory(
        config, "cilogon-hub", extra_config=endpoints, environment={"TEST_CILOGON_SECRET": "not-so-secret"}
    )


def cilogon_claims(email, groups=()):
    return {"idp": CILOGON_IDP, "idp_name": "University of Example", "email": email, "isMemberOf": list(groups)}


def test_cilogon_institution_member_gets_groups_from_the_claim(cilogon_hub, oidc_provider):
    oidc_provider.set_claims("bob-sub", cilogon_claims("bob@uni.example", ["students"]))
    session, response = oidc_provider.log_in(cilogon_hub.url, "bob-sub")
    assert response.status_code == 200
    assert cilogon_hub.user_model("bob")["groups"] == ["students"]
    assert spawn_profiles(session, cilogon_hub) == ["cpu"]


def test_cilogon_wrong_domain_is_refused_with_the_domains(cilogon_hub, oidc_provider):
    oidc_provider.set_claims("eve-sub", cilogon_claims("eve@elsewhere.example"))
    _, response = oidc_provider.log_in(cilogon_hub.url, "eve-sub")
    assert response.status_code == 403
    text = " ".join(BeautifulSoup(response.text, "html.parser").get_text().split())
    assert (
        "Accounts of University of Example may log in here only from the domains uni.example; "
        "yours is 'elsewhere.example'."
    ) in text


HOSTILE_LOCAL_PART = "<img src=x onerror=alert(1)>'\"ünï" + "x" * 170


def test_hostile_name_is_stored_as_given_and_shown_as_text(cilogon_hub, oidc_provider):
    oidc_provider.set_claims("odd-sub", cilogon_claims(f"{HOSTILE_LOCAL_PART}@uni.example", ["students"]))
    session, response = oidc_provider.log_in(cilogon_hub.url, "odd-sub")
    assert response.status_code == 200
    name = HOSTILE_LOCAL_PART.lower()
    model = cilogon_hub.user_model(name)
    assert model["name"] == name and len(name) == 203
    home = BeautifulSoup(session.get(f"{cilogon_hub.url}/hub/home", timeout=30).content, "html.parser")
    assert home.find("img", src="x") is None  # never markup...
    assert home.select_one("#login_widget").get_text(strip=True).startswith(name)  # ...but the name, as text


def test_script_tag_in_a_name_is_refused_with_a_message_not_run(cilogon_hub, oidc_provider):
    # "</script>" has a "/", which JupyterHub cannot have in a username (it is part of URLs)
    oidc_provider.set_claims("script-sub", cilogon_claims("<script>alert(1)</script>@uni.example"))
    _, response = oidc_provider.log_in(cilogon_hub.url, "script-sub")
    assert response.status_code == 403
    assert "<script>alert(1)" not in response.text
    assert "The username &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; from your identity provider" in response.text


def test_name_jupyterhub_cannot_take_is_refused_with_a_message(cilogon_hub, oidc_provider):
    oidc_provider.set_claims("slash-sub", cilogon_claims("a/b@uni.example", ["students"]))
    _, response = oidc_provider.log_in(cilogon_hub.url, "slash-sub")
    assert response.status_code == 403
    text = " ".join(BeautifulSoup(response.text, "html.parser").get_text().split())
    assert "The username 'a/b' from your identity provider cannot be used on this hub" in text
    assert cilogon_hub.user_model("a/b") is None


def test_group_changes_reach_the_usage_service_with_their_dates(oidc_hub, oidc_provider):
    """The authenticator's group_change_hook posts each change to the usage service, which
    keeps membership with dates (here, before its next reconciliation could have)."""
    import sqlite3

    subject = "dora-subject"
    oidc_provider.set_claims(subject, {"preferred_username": "dora", "groups": ["students"]})
    oidc_provider.log_in(oidc_hub.url, subject)
    oidc_provider.set_claims(subject, {"preferred_username": "dora", "groups": ["lab-researchers"]})
    oidc_provider.log_in(oidc_hub.url, subject)
    name = hashed(subject)
    database = oidc_hub.hub.data_dir / "twoi2c-usage.sqlite"

    def memberships():
        with sqlite3.connect(database) as connection:
            return connection.execute(
                "SELECT group_name, since_ms, until_ms FROM group_memberships WHERE username = ? ORDER BY since_ms",
                (name,),
            ).fetchall()

    rows = oidc_hub.wait_for(
        lambda: memberships() if len(memberships()) == 2 else None, what="dora's dated memberships"
    )
    (first, first_since, first_until), (second, second_since, second_until) = rows
    assert (first, second) == ("students", "researchers")
    assert first_until == second_since and second_until is None and first_since < first_until
