"""Workshop logins: one password, a validity window, a group, rate limits, temporary accounts."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests
import yaml
from bs4 import BeautifulSoup

from twoi2c_hub.authenticators.base import LoginRefused
from twoi2c_hub.authenticators.workshop import WorkshopAuthenticator
from twoi2c_hub.paths import demo_config

PASSWORD = "workshop-password-1"


def handler(address="10.1.2.3"):
    return SimpleNamespace(request=SimpleNamespace(remote_ip=address))


def workshop(**settings):
    return WorkshopAuthenticator(user_password=PASSWORD, attendee_group="attendees", **settings)


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def test_attendee_with_the_password_is_put_in_the_group():
    result = await workshop().authenticate(handler(), {"username": "Ada", "password": PASSWORD})
    assert result == {"name": "ada", "admin": False, "groups": ["attendees"]}


async def test_logins_before_the_window_opens_are_refused_with_the_time():
    opens = iso(timedelta(hours=2))
    with pytest.raises(LoginRefused) as refused:
        await workshop(opens=opens).authenticate(handler(), {"username": "ada", "password": PASSWORD})
    assert refused.value.jupyterhub_message.startswith("Logins to this workshop open at ")


async def test_the_password_expires_when_the_window_closes():
    closes = iso(timedelta(seconds=-1))
    with pytest.raises(LoginRefused) as refused:
        await workshop(closes=closes).authenticate(handler(), {"username": "ada", "password": PASSWORD})
    assert refused.value.jupyterhub_message.startswith("This workshop ended: logins closed at ")


def test_window_needs_time_zones_and_an_order():
    with pytest.raises(ValueError, match="needs a time zone"):
        workshop(opens="2026-12-01T09:00")
    with pytest.raises(ValueError, match="closes .* before it opens"):
        workshop(opens=iso(timedelta(hours=2)), closes=iso(timedelta(hours=1)))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"user_password": "short"}, "at least 8 characters"),
        (
            {"user_password": PASSWORD, "admin_users": {"boss"}, "admin_password": "not-32-characters"},
            "at least 32 characters",
        ),
    ],
)
def test_short_passwords_are_refused_at_start(settings, message):
    with pytest.raises(ValueError, match=message):
        WorkshopAuthenticator(**settings)


async def test_failed_attempts_are_limited_per_address_but_lock_out_no_one_else(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("twoi2c_hub.authenticators.ratelimit.time.monotonic", lambda: clock[0])
    auth = workshop(max_failures=3, failure_window=60)
    for _ in range(3):
        assert await auth.authenticate(handler("10.0.0.1"), {"username": "ada", "password": "wrong"}) is None
    # this address is now blocked, even with the right password and another name
    with pytest.raises(LoginRefused) as limited:
        await auth.authenticate(handler("10.0.0.1"), {"username": "grace", "password": PASSWORD})
    assert limited.value.status_code == 429
    assert limited.value.headers == {"Retry-After": "61"}
    # guessing at ada's name elsewhere does not lock ada out from her own address
    assert await auth.authenticate(handler("10.9.9.9"), {"username": "ada", "password": PASSWORD})
    assert await auth.authenticate(handler("10.9.9.9"), {"username": "grace", "password": PASSWORD})
    # and the limit lifts once the window has passed
    clock[0] += 61
    assert await auth.authenticate(handler("10.0.0.1"), {"username": "ada", "password": PASSWORD})


async def test_temporary_accounts_give_each_visitor_a_new_name():
    auth = workshop(temporary_accounts=True)
    first = await auth.authenticate(handler(), {"username": "ignored", "password": PASSWORD})
    second = await auth.authenticate(handler(), {"username": "ignored", "password": PASSWORD})
    assert first["name"].startswith("guest-") and second["name"].startswith("guest-")
    assert first["name"] != second["name"]
    assert await auth.authenticate(handler(), {"username": "x", "password": "wrong"}) is None


# --- through a real hub -------------------------------------------------------------------


def workshop_config(tmp_path, **workshop_settings):
    config = demo_config()
    config["auth"] = {
        "provider": "workshop",
        "workshop": {"password_env": "TEST_WORKSHOP_PASSWORD", "group": "attendees", **workshop_settings},
    }
    config["culling"] = {"enabled": False}
    path = tmp_path / "workshop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def log_in(hub, username, password):
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    response = session.post(
        f"{hub.url}/hub/login?next=",
        data={
            "username": username,
            "password": password,
            "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
        },
        allow_redirects=False,
        timeout=30,
    )
    return session, response


@pytest.mark.hub
def test_workshop_hub_login_group_and_rate_limit(hub_factory, tmp_path):
    closes = datetime.now(UTC) + timedelta(hours=3)
    hub = hub_factory(
        workshop_config(tmp_path, closes=closes.isoformat(), max_failures=2),
        "workshop-hub",
        environment={"TEST_WORKSHOP_PASSWORD": PASSWORD},
    )
    login_page = BeautifulSoup(requests.get(f"{hub.url}/hub/login", timeout=30).content, "html.parser")
    assert "Logins to this workshop close at" in login_page.select_one(".twoi2c-workshop-closes").get_text()

    _, response = log_in(hub, "ada", PASSWORD)
    assert response.status_code == 302
    assert hub.user_model("ada")["groups"] == ["attendees"]

    for _ in range(2):
        assert log_in(hub, "eve", "wrong-guess")[1].status_code == 403
    _, response = log_in(hub, "eve", PASSWORD)
    assert response.status_code == 429
    assert response.headers["Retry-After"].isdigit()
    assert "Too many failed logins" in BeautifulSoup(response.content, "html.parser").get_text()


@pytest.mark.hub
def test_workshop_hub_that_has_ended_says_so(hub_factory, tmp_path):
    ended = datetime(2026, 1, 10, 17, 0, tzinfo=UTC)
    hub = hub_factory(
        workshop_config(tmp_path, opens="2026-01-10T09:00:00Z", closes=ended.isoformat()),
        "ended-workshop-hub",
        environment={"TEST_WORKSHOP_PASSWORD": PASSWORD},
    )
    _, response = log_in(hub, "ada", PASSWORD)
    assert response.status_code == 403
    text = " ".join(BeautifulSoup(response.content, "html.parser").get_text().split())
    assert "This workshop ended: logins closed at 2026-01-10T17:00+00:00." in text
    assert hub.user_model("ada") is None


@pytest.mark.hub
def test_workshop_hub_with_temporary_accounts_asks_only_for_the_password(hub_factory, tmp_path):
    hub = hub_factory(
        workshop_config(tmp_path, temporary_accounts=True),
        "temporary-workshop-hub",
        environment={"TEST_WORKSHOP_PASSWORD": PASSWORD},
    )
    page = BeautifulSoup(requests.get(f"{hub.url}/hub/login", timeout=30).content, "html.parser")
    assert page.select_one("#username_input")["type"] == "hidden"
    names = set()
    for _ in range(2):
        session, response = log_in(hub, "guest", PASSWORD)
        assert response.status_code == 302
        names.add(
            session.get(
                f"{hub.url}/hub/api/user",
                timeout=30,
                headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/")},
            ).json()["name"]
        )
    assert len(names) == 2 and all(n.startswith("guest-") for n in names)


@pytest.mark.hub
def test_short_workshop_password_stops_the_hub_at_start(hub_factory, tmp_path):
    with pytest.raises(RuntimeError) as failed:
        hub_factory(workshop_config(tmp_path), "short-password-hub", environment={"TEST_WORKSHOP_PASSWORD": "short"})
    assert "at least 8 characters" in str(failed.value)


# --- under attack -------------------------------------------------------------------------


def proxied(peer, **headers):
    """A request from `peer` carrying forwarding headers."""
    return SimpleNamespace(
        request=SimpleNamespace(
            remote_ip=headers.get("X-Real-Ip", peer),  # what tornado's xheaders would make of it
            connection=SimpleNamespace(context=SimpleNamespace(address=(peer, 40000))),
            headers=headers,
        )
    )


async def test_a_forged_forwarding_header_does_not_give_a_fresh_address():
    auth = workshop(max_failures=3)
    for i in range(3):
        request = proxied("127.0.0.1", **{"X-Real-Ip": f"203.0.113.{i}", "X-Forwarded-For": f"198.51.100.{i}"})
        assert await auth.authenticate(request, {"username": f"eve{i}", "password": "wrong"}) is None
    with pytest.raises(LoginRefused) as limited:
        await auth.authenticate(
            proxied("127.0.0.1", **{"X-Real-Ip": "192.0.2.99"}), {"username": "x", "password": PASSWORD}
        )
    assert limited.value.status_code == 429


async def test_forwarding_headers_count_only_from_a_trusted_proxy():
    auth = workshop(max_failures=2, trusted_proxies=["10.0.0.0/8"])
    for _ in range(2):
        request = proxied("10.0.0.5", **{"X-Forwarded-For": "203.0.113.7, 10.0.0.9"})
        assert await auth.authenticate(request, {"username": "eve", "password": "wrong"}) is None
    # 203.0.113.7 is limited; another client behind the same proxy is not
    with pytest.raises(LoginRefused):
        await auth.authenticate(
            proxied("10.0.0.5", **{"X-Forwarded-For": "203.0.113.7"}), {"username": "a", "password": PASSWORD}
        )
    ok = await auth.authenticate(
        proxied("10.0.0.5", **{"X-Forwarded-For": "203.0.113.8"}), {"username": "b", "password": PASSWORD}
    )
    assert ok["name"] == "b"


async def test_the_hub_wide_budget_stops_guesses_from_many_addresses():
    auth = workshop(max_failures=5, global_max_failures=10)
    for i in range(10):
        assert await auth.authenticate(handler(f"198.51.100.{i}"), {"username": "eve", "password": "wrong"}) is None
    with pytest.raises(LoginRefused) as limited:
        await auth.authenticate(handler("192.0.2.1"), {"username": "ada", "password": PASSWORD})
    assert limited.value.status_code == 429 and int(limited.value.headers["Retry-After"]) > 0


async def test_the_failure_table_stays_bounded():
    auth = workshop(max_failures=5, global_max_failures=10**9)
    auth.limiter.max_tracked = 1000
    for i in range(5000):
        await auth.authenticate(
            handler(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"), {"username": f"u{i}", "password": "x"}
        )
    assert auth.limiter.tracked() <= 1000


@pytest.mark.parametrize("guess", ["pässwörd-ünïcode", "密码密码密码密码", "\udcff" * 9, "x" * 100_000])
async def test_any_guess_is_counted_and_never_a_500(guess):
    auth = workshop(max_failures=1)
    assert await auth.authenticate(handler("10.7.7.7"), {"username": "eve", "password": guess}) is None
    with pytest.raises(LoginRefused):
        await auth.authenticate(handler("10.7.7.7"), {"username": "eve", "password": PASSWORD})


@pytest.mark.parametrize("data", [{"username": "eve"}, {"username": ["a"], "password": PASSWORD}, {"password": None}])
async def test_a_malformed_login_is_a_counted_failure(data):
    auth = workshop(max_failures=1)
    assert await auth.authenticate(handler("10.8.8.8"), data) is None
    assert auth.limiter.check("10.8.8.8", "") is not None


async def test_a_non_ascii_password_works_in_either_unicode_form():
    composed, decomposed = "café-crème-2026", "cafe\u0301-cre\u0300me-2026"
    auth = WorkshopAuthenticator(user_password=composed)
    assert (await auth.authenticate(handler(), {"username": "ada", "password": decomposed}))["name"] == "ada"
    assert await auth.authenticate(handler(), {"username": "ada", "password": "cafe-creme-2026"}) is None


@pytest.mark.hub
def test_rotating_x_real_ip_does_not_sidestep_the_limit_on_a_real_hub(hub_factory, tmp_path):
    hub = hub_factory(
        workshop_config(tmp_path, max_failures=3), "rotating-ip-hub", environment={"TEST_WORKSHOP_PASSWORD": PASSWORD}
    )

    def attempt(password, i):
        session = requests.Session()
        forged = {"X-Real-Ip": f"203.0.113.{i}", "X-Forwarded-For": f"198.51.100.{i}"}
        session.get(f"{hub.url}/hub/login", headers=forged, timeout=30)
        return session.post(
            f"{hub.url}/hub/login?next=",
            data={"username": f"eve{i}", "password": password, "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
            headers=forged,
            allow_redirects=False,
            timeout=30,
        )

    assert [attempt("wrong-guess", i).status_code for i in range(3)] == [403, 403, 403]
    limited = attempt(PASSWORD, 99)
    assert limited.status_code == 429 and limited.headers["Retry-After"].isdigit()
    assert hub.user_model("eve99") is None
