"""Attacks of the second round (issue 22) on the services' APIs, launch links and dates,
each of which worked once: they must fail now.

- a change sent with the service's login cookie but without the XSRF token (what another
  site's form makes an admin's browser send) is refused, on every state-changing endpoint;
- a launch link's values are refused by the same rules in a link (GET) and in the posted
  form: no `..` path segment (also percent-encoded), https repositories only, length
  limits, no control characters; a refusal is said on the spawn page and nothing starts;
- a period or window reaching past the dates a report may ask for (year 9999) is a 400
  with a clear message, never a 500.
"""

import importlib
import inspect
import pkgutil
from datetime import UTC, date, datetime

import budget_hub
import pytest
import requests
from bs4 import BeautifulSoup
from fuzzing import fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from tornado import web

import twoi2c_hub.services
from twoi2c_hub.accounting import opencost, windows
from twoi2c_hub.catalog import ProfileError, launch
from twoi2c_hub.services.framework import params
from twoi2c_hub.services.framework.charts import chart_series
from twoi2c_hub.services.framework.handlers import XSRF_NEEDED

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# --- every state-changing endpoint, and how it is tested ------------------------------------

# (handler class, service, path, how a browser's cookie alone is refused)
STATE_CHANGING = {
    "twoi2c_hub.services.cost.budgethandlers.LedgerAPI": ("cost", "api/v1/ledger", "xsrf"),
    "twoi2c_hub.services.cost.handlers.LedgerForm": ("cost", "admin/ledger", "xsrf"),
    "twoi2c_hub.services.cost.running.RunningPage": ("cost", "admin/running", "xsrf"),
    # posts from the hub's side: only the service's shared token, never the cookie
    "twoi2c_hub.services.cost.budgethandlers.BudgetCheckAPI": ("cost", "api/v1/budgets/check", "token"),
    "twoi2c_hub.services.usage.apihandlers.EventsAPI": ("usage", "api/v1/events", "token"),
    # a question, not a change, but a post from the hub's side all the same (the spawn page)
    "twoi2c_hub.services.usage.apihandlers.RecentUseAPI": ("usage", "api/v1/recent-use", "token"),
}


def state_changing_handlers() -> set[str]:
    """Every handler class of our services with its own POST, PUT, DELETE or PATCH."""
    found = set()
    for module_info in pkgutil.walk_packages(twoi2c_hub.services.__path__, "twoi2c_hub.services."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, web.RequestHandler):
                continue
            if any(method in cls.__dict__ for method in ("post", "put", "delete", "patch")):
                found.add(f"{cls.__module__}.{name}")
    return found


def test_every_state_changing_endpoint_of_the_services_is_tested_here():
    assert state_changing_handlers() == set(STATE_CHANGING)


# --- dates and windows, at the framework level ----------------------------------------------

ISO_DAYS = st.dates(min_value=date.min, max_value=date.max).map(date.isoformat)
DAY_TEXT = st.one_of(st.none(), ISO_DAYS, st.text(max_size=20), st.from_regex(r"\d{4}-\d{2}-\d{2}", fullmatch=True))


@fuzz(300)
@given(start=DAY_TEXT, end=DAY_TEXT, today=st.dates(min_value=date(1971, 1, 1), max_value=date(8999, 12, 31)))
def test_any_period_of_a_page_is_a_window_inside_the_years_or_a_400(start, end, today):
    try:
        window, shown_start, shown_end = params.period(start, end, today)
    except params.BadParameter as e:
        assert e.status_code == 400 and e.parameter in ("start", "end", "start/end")
        assert len(e.message) < 200
        return
    assert windows.to_ms(windows.EARLIEST) <= window.start_ms < window.end_ms <= windows.to_ms(windows.LATEST)
    assert date.fromisoformat(shown_start) <= date.fromisoformat(shown_end)
    # what a page then does with it: a chart's buckets and the window's ends as text
    step = opencost.auto_step(*window)
    chart = chart_series([], "total_cost", window, step)
    assert 1 <= len(chart["x"]) <= opencost.MAX_STEPS + 1
    assert opencost.iso(window.start_ms) < opencost.iso(window.end_ms)


@fuzz(300)
@given(
    value=st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda a, b: f"{a.isoformat()}T00:00:00Z,{b.isoformat()}T00:00:00Z",
            st.dates(min_value=date.min, max_value=date.max),
            st.dates(min_value=date.min, max_value=date.max),
        ),
        st.builds(
            lambda a, b: f"{a.isoformat()}+23:59,{b.isoformat()}-23:59",
            st.datetimes(min_value=datetime.min, max_value=datetime.max),
            st.datetimes(min_value=datetime.min, max_value=datetime.max),
        ),
        st.builds(lambda n, u: f"{n}{u}", st.integers(0, 9_999_999), st.sampled_from("mhdw")),
        st.builds(lambda a, b: f"{a},{b}", st.integers(0, 10**12 - 1), st.integers(0, 10**12 - 1)),
    )
)
def test_any_window_of_an_api_is_a_window_inside_the_years_or_a_400(value):
    try:
        window = params.window("window", value, NOW, "7d")
    except params.BadParameter as e:
        assert e.status_code == 400 and e.parameter == "window"
        return
    assert windows.to_ms(windows.EARLIEST) <= window.start_ms < window.end_ms <= windows.to_ms(windows.LATEST)
    params.check_steps(window, "1mo")
    opencost.iso(window.end_ms)


@pytest.mark.parametrize(
    "start, end, words",
    [
        ("2026-01-01", "9999-12-31", "end: 9999-12-31 is outside the dates a report may ask for"),
        ("0001-01-01", "2026-01-01", "start: 0001-01-01 is outside the dates a report may ask for"),
        ("9000-01-01", "9000-01-02", "start: 9000-01-01 is outside"),
        ("2026-02-30", "2026-03-01", "start: '2026-02-30' is not a date"),
        ("2026-03-01", "2026-02-01", "its end must be after its start"),
        ("1970-01-01", "2026-01-01", "at most 3660 days"),
    ],
)
def test_a_period_outside_the_years_is_refused_before_any_date_arithmetic(start, end, words):
    with pytest.raises(params.BadParameter) as refused:
        params.period(start, end, date(2026, 11, 26))
    assert words in refused.value.message


def test_the_last_day_a_period_may_end_on_is_a_window():
    window, _, end = params.period("8999-12-01", "8999-12-31", date(2026, 11, 26))
    assert end == "8999-12-31" and window.end_ms == windows.to_ms(windows.LATEST)


# --- launch-link values, at the catalog level -------------------------------------------------

REPO = "https://github.com/example/course"
REFUSED_LINKS = [
    ({"repo": REPO, "urlpath": "lab/tree/../../../hub/admin"}, "urlpath must not contain a '..' path segment"),
    ({"repo": REPO, "urlpath": "lab/tree/course/.."}, "urlpath must not contain a '..' path segment"),
    ({"repo": REPO, "urlpath": "lab/tree/%2e%2e/%2E%2E/etc"}, "urlpath must not contain a '..' path segment"),
    ({"repo": REPO, "urlpath": "lab/tree/%252e%252e/x"}, "urlpath must not contain a '..' path segment"),
    ({"repo": REPO, "urlpath": "lab/tree/..%2fx"}, "urlpath must not contain a '..' path segment"),
    ({"repo": REPO, "urlpath": "lab?path=../x"}, "urlpath must not contain a '..' path segment"),
    ({"repo": REPO, "urlpath": "lab/tree/a%0Ab"}, "urlpath must not contain control characters"),
    ({"repo": REPO, "urlpath": "lab/tree/a%00"}, "urlpath must not contain control characters"),
    ({"repo": REPO, "urlpath": "lab/" + "a" * 300}, "urlpath must be at most 300 characters"),
    ({"repo": "https://github.com/example/../other"}, "repo must not contain a '..' path segment"),
    ({"repo": "https://github.com/example/%2E%2E/other"}, "repo must not contain a '..' path segment"),
    ({"repo": "http://github.com/example/course"}, "repo must be an https:// address"),
    ({"repo": "file:///etc/passwd"}, "repo must be an https:// address"),
    ({"repo": "javascript:alert(1)"}, "repo must be an https:// address"),
    ({"repo": "https://github.com/example/course\n"}, "repo must be an https:// address"),
    ({"repo": "https://github.com/" + "a" * 500}, "repo must be at most 500 characters"),
    ({"repo": REPO, "branch": "main/../other"}, "branch must not contain '..'"),
    ({"repo": REPO, "branch": "b" * 101}, "branch must be at most 100 characters"),
    ({"repo": REPO, "branch": "-upload-pack=x"}, "branch must be a branch name"),
    ({"urlpath": "lab/tree/course"}, "a branch or path was given without a repo"),
]


@pytest.mark.parametrize("values, words", REFUSED_LINKS)
def test_each_hostile_launch_link_value_is_refused_with_its_reason(values, words):
    with pytest.raises(ProfileError) as refused:
        launch.git_pull_from(values)
    assert words in refused.value.message
    assert len(refused.value.message) < 200  # one line, never the whole value


def test_the_launch_links_people_use_still_pass():
    for values in (
        {"repo": REPO, "branch": "main", "urlpath": "lab/tree/course/intro.ipynb"},
        {"repo": "https://gitlab.example.org:8443/group/sub/repo.git", "branch": "release/2026.1"},
        {"repo": REPO, "urlpath": "lab/tree/course/week..1/notes..ipynb"},  # dots inside a name
        {"repo": REPO, "urlpath": "voila/render/app.ipynb?voila-theme=dark"},
    ):
        assert launch.git_pull_from(values) == values


@fuzz(300)
@given(
    key=st.sampled_from(launch.KEYS),
    value=st.one_of(
        st.text(max_size=600),
        st.lists(
            st.sampled_from(["a", "..", ".", "%2e", "%2E", "%25", "2e", "/", "?", "=", "&", "%0a"]), max_size=12
        ).map("".join),
    ),
)
@example(key="branch", value="000000" + "\x1f" * 4 + "\U00018cd6" * 20)  # found: escapes made the message long
def test_an_accepted_launch_link_value_has_no_dot_dot_segment_control_character_or_excess(key, value):
    values = {"repo": REPO, key: value} if key != "repo" else {"repo": value}
    try:
        accepted = launch.git_pull_from(values)
    except ProfileError as e:
        assert len(e.message) < 200
        return
    if accepted is None:
        return
    got = accepted.get(key)
    if got is None:
        return
    assert len(got) <= launch.MAX_LENGTHS[key]
    text = got
    for _ in range(5):
        assert not any(ord(c) < 32 or ord(c) == 127 for c in text)
        if key != "branch":
            assert ".." not in text.replace("?", "/").replace("&", "/").replace("=", "/").split("/")
        else:
            assert ".." not in text
        text = requests.utils.unquote(text)
    assert key != "repo" or got.startswith("https://")


def test_a_selection_value_no_catalog_could_mean_is_refused_before_the_catalog_is_searched():
    with pytest.raises(ProfileError, match="longer than 1000 characters"):
        launch.check_selection({"profile": "x" * 100_000})
    with pytest.raises(ProfileError, match="contains a control character"):
        launch.check_selection({"profile": "cpu\r\nSet-Cookie: x"})
    launch.check_selection({"profile": "cpu", "image": "scipy", "git_pull": {"repo": REPO}})


# --- a real hub -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    client = budget_hub.start(hub_factory, tmp_path_factory.mktemp("abuse-two-config"), "abuse-two-hub")
    return client


def service_session(hub, username: str, service: str) -> tuple[requests.Session, str]:
    """A browser of `username`, logged in to the hub and to `service` (its OAuth cookie),
    and the service's XSRF token, as its page gives it."""
    session = hub.login(username)
    page = session.get(f"{hub.url}/services/{service}/", timeout=30)
    assert page.status_code == 200, page.text
    xsrf = session.cookies.get("_xsrf", path=f"/services/{service}/")
    assert xsrf
    return session, xsrf


def ledger(hub, token: str) -> list[dict]:
    response = requests.get(
        f"{hub.url}/services/cost/api/v1/ledger", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def top_up(reason: str) -> dict:
    return {"budget": "students-weekly", "subject": "bob", "kind": "topup", "amount": "5", "reason": reason}


CROSS_SITE = {"Origin": "https://evil.example", "Referer": "https://evil.example/", "Sec-Fetch-Site": "cross-site",
              "Sec-Fetch-Mode": "navigate"}  # fmt: skip


@pytest.mark.parametrize(
    "how",
    ["cookie only", "cookie from another site", "cookie and a wrong token", "cookie and an invalid API token"],
)
@pytest.mark.hub
def test_a_top_up_with_the_cookie_but_without_the_xsrf_token_is_refused_and_writes_nothing(hub, how):
    alice, _ = service_session(hub, "alice", "cost")  # researchers: the community admins
    token = hub.user_token("alice")
    reason = f"forged: {how}"
    url = f"{hub.url}/services/cost/api/v1/ledger"
    kwargs = {"data": top_up(reason), "timeout": 30, "allow_redirects": False}
    if how == "cookie from another site":
        kwargs["headers"] = CROSS_SITE
    elif how == "cookie and a wrong token":
        kwargs["data"]["_xsrf"] = "2|not|the|token"
    elif how == "cookie and an invalid API token":
        url += "?token=not-a-token"  # hub OAuth falls back to the cookie: it counts as the cookie
    response = alice.post(url, **kwargs)
    assert response.status_code == 403, response.text
    assert response.json() == {"code": 403, "message": XSRF_NEEDED}
    assert reason not in [e["reason"] for e in ledger(hub, token)]


@pytest.mark.hub
def test_a_top_up_with_the_xsrf_token_or_an_api_token_is_written(hub):
    alice, xsrf = service_session(hub, "alice", "cost")
    token = hub.user_token("alice")
    url = f"{hub.url}/services/cost/api/v1/ledger"
    as_field = alice.post(url, data={**top_up("with the form field"), "_xsrf": xsrf}, timeout=30)
    as_header = alice.post(url, data=top_up("with the header"), headers={"X-XSRFToken": xsrf}, timeout=30)
    by_token = requests.post(
        url, data=top_up("with an API token"), headers={"Authorization": f"token {token}"}, timeout=30
    )
    for response in (as_field, as_header, by_token):
        assert response.status_code == 201, response.text
    reasons = [e["reason"] for e in ledger(hub, token)]
    assert {"with the form field", "with the header", "with an API token"} <= set(reasons)
    # the person's rights are still checked: bob's token is not an admin's
    bob_token = hub.user_token("bob")
    refused = requests.post(url, data=top_up("bob"), headers={"Authorization": f"token {bob_token}"}, timeout=30)
    assert refused.status_code == 403 and "Only hub admins" in refused.json()["message"]


@pytest.mark.hub
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_changing_methods_need_the_xsrf_token_before_anything_else(hub, method):
    alice, xsrf = service_session(hub, "alice", "cost")
    url = f"{hub.url}/services/cost/api/v1/ledger"
    refused = alice.request(method, url, data=top_up("other method"), timeout=30)
    assert refused.status_code == 403 and refused.json()["message"] == XSRF_NEEDED
    # with it: the method simply is not there
    assert (
        alice.request(method, url, data=top_up("other method"), headers={"X-XSRFToken": xsrf}, timeout=30).status_code
        == 405
    )


@pytest.mark.hub
def test_the_admin_pages_top_up_form_needs_its_xsrf_token(hub):
    alice, xsrf = service_session(hub, "alice", "cost")
    token = hub.user_token("alice")
    url = f"{hub.url}/services/cost/admin/ledger"
    forged = alice.post(url, data=top_up("forged form"), headers=CROSS_SITE, timeout=30)
    assert forged.status_code == 403 and "needs the XSRF token" in forged.text  # the service's error page
    assert "forged form" not in [e["reason"] for e in ledger(hub, token)]
    given = alice.post(url, data={**top_up("the admin's form"), "_xsrf": xsrf}, timeout=30)
    assert given.status_code == 200  # back on the admin page
    assert "the admin's form" in [e["reason"] for e in ledger(hub, token)]


@pytest.mark.hub
@pytest.mark.parametrize("endpoint", [k for k, v in STATE_CHANGING.items() if v[2] == "token"])
def test_the_hubs_own_posts_never_take_the_cookie_even_with_its_xsrf_token(hub, endpoint):
    service, path, _ = STATE_CHANGING[endpoint]
    admin, xsrf = service_session(hub, "admin", service)
    body = {"username": "bob", "groups": []} if "check" in path else {"type": "stop", "username": "bob"}
    response = admin.post(f"{hub.url}/services/{service}/{path}", json=body, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert response.status_code == 403 and "needs the service's token" in response.json()["message"]


# --- dates on real pages and APIs -----------------------------------------------------------


@pytest.mark.hub
@pytest.mark.parametrize("page", ["usage/", "usage/admin", "cost/", "cost/admin"])
def test_a_period_ending_in_year_9999_is_a_400_page_that_says_why(hub, page):
    admin = hub.login("admin")
    response = admin.get(f"{hub.url}/services/{page}", params={"start": "2026-01-01", "end": "9999-12-31"}, timeout=30)
    assert response.status_code == 400, response.text[-2000:]
    assert "text/html" in response.headers["Content-Type"]
    assert "end: 9999-12-31 is outside the dates a report may ask for (1970-01-01 to 8999-12-31)" in response.text


@pytest.mark.parametrize(
    "path, window",
    [
        ("usage/api/v1/allocation", "2026-01-01T00:00:00Z,9999-12-31T00:00:00Z"),
        ("usage/api/v1/allocation", "2026-01-01T00:00:00Z,9999-12-31T23:59:00-23:59"),
        ("usage/api/v1/sessions", "0001-01-01T00:00:00+01:00,2026-01-01T00:00:00Z"),
        ("usage/api/v1/active-users", "9999999w"),
        ("cost/api/v1/cost", "253402300799,253402300800"),
        ("cost/api/v1/cost", "24h offset 9999999w"),
    ],
)
@pytest.mark.hub
def test_a_window_past_the_years_is_a_400_in_the_json_error_shape(hub, path, window):
    token = hub.user_token("admin")
    response = requests.get(
        f"{hub.url}/services/{path}", params={"window": window}, headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and body["parameter"] == "window" and "window:" in body["message"]


@pytest.mark.hub
def test_an_extension_until_year_9999_is_a_400_and_writes_nothing(hub):
    hub.login("alice")  # her groups (the community admins) are the hub's from her login on
    token = hub.user_token("alice")
    data = {"budget": "students-weekly", "subject": "bob", "kind": "extension", "until": "9999-12-31",
            "reason": "forever"}  # fmt: skip
    response = requests.post(
        f"{hub.url}/services/cost/api/v1/ledger", data=data, headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == "until" and "outside the dates" in response.json()["message"]
    assert "forever" not in [e["reason"] for e in ledger(hub, token)]


# --- launch links on the real spawn page ------------------------------------------------------

FORM_REFUSALS = [
    ({"git-pull-repo": REPO, "git-pull-urlpath": "lab/tree/../../../hub/admin"}, "must not contain a '..' path"),
    ({"git-pull-repo": REPO, "git-pull-urlpath": "lab/tree/%2e%2e/%2e%2e/x"}, "must not contain a '..' path"),
    ({"git-pull-repo": "https://github.com/example/%2e%2e/x"}, "must not contain a '..' path"),
    ({"git-pull-repo": "http://github.com/example/course"}, "repo must be an https:// address"),
    ({"git-pull-repo": REPO, "git-pull-urlpath": "lab/tree/x%0d%0aSet-Cookie=a"}, "must not contain control"),
    ({"git-pull-repo": "https://github.com/" + "a" * 600}, "repo must be at most 500 characters"),
    ({"profile": "cpu" + "x" * 5000}, "longer than 1000 characters"),
]


@pytest.mark.hub
@pytest.mark.parametrize("fields, words", FORM_REFUSALS)
def test_a_posted_spawn_form_with_a_hostile_launch_value_is_refused_on_the_page_and_starts_nothing(hub, fields, words):
    bob = hub.login("bob")
    data = {"_xsrf": hub.xsrf(bob), "profile": "cpu", **fields}
    try:
        response = bob.post(f"{hub.url}/hub/spawn/bob", data=data, allow_redirects=False, timeout=60)
        assert response.status_code == 400, response.status_code
        refusal = BeautifulSoup(response.content, "html.parser").select_one(".twoi2c-refusal")
        assert refusal is not None and words in " ".join(refusal.get_text().split())
        assert hub.server("bob") is None
    finally:
        if hub.server("bob") is not None:  # before the fix, it started
            hub.stop_server("bob")


@pytest.mark.hub
@pytest.mark.parametrize("fields, words", FORM_REFUSALS[:6])
def test_the_same_values_in_a_link_are_said_on_the_form_and_never_sent(hub, fields, words):
    bob = hub.login("bob")
    link = {"profile": "cpu", **{k.removeprefix("git-pull-"): v for k, v in fields.items()}}
    response = bob.get(f"{hub.url}/hub/spawn/bob", params=link, timeout=30)
    assert response.status_code == 200 and hub.server("bob") is None
    page = BeautifulSoup(response.content, "html.parser")
    assert words in " ".join(page.select_one(".twoi2c-git-pull").get_text().split())
    assert not page.select("input[name^=git-pull-]")


@pytest.mark.hub
def test_through_the_rest_api_the_same_values_are_a_400(hub):
    token = hub.user_token("bob")
    options = {"profile": "cpu", "git_pull": {"repo": REPO, "urlpath": "lab/tree/%2E%2E/%2E%2E/etc"}}
    try:
        refused = hub.api("POST", "/users/bob/server", token=token, json={"user_options": options})
        assert refused.status_code == 400 and "must not contain a '..' path segment" in refused.json()["message"]
        assert hub.server("bob") is None
    finally:
        if hub.server("bob") is not None:
            hub.stop_server("bob")
