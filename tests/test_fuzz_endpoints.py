"""Every endpoint of the usage and cost services, and the hub's spawn form, fed generated
parameters and bodies on a real hub (issue 22, item 6): the answer is a value or a 4xx
with a short message -- JSON `{"code": 4xx, "message": ...}` for an API, the service's
error page for a page -- never a 500, a traceback, or a message that echoes a whole value.

The routes are read from the services themselves, so a new endpoint is fuzzed without
asking. The example count comes from tests/fuzzing.py (TWOI2C_FUZZ_EXAMPLES).
"""

import json
import re
from pathlib import Path

import budget_hub
import pytest
import requests
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from twoi2c_hub.localhub import tagged_processes
from twoi2c_hub.services.cost.app import CostService
from twoi2c_hub.services.usage.app import UsageService

# what a short message is: one line, and never the whole of a value sent
MAX_MESSAGE = 600
LONG = "x" * 5000

PARAMETERS = ["window", "aggregate", "step", "start", "end", "user", "group", "profile", "limit", "after",
              "format", "metric", "state", "filter", "accumulate", "idle"]  # fmt: skip
ODD_VALUES = ["", "0", "-1", "1e999", "NaN", "inf", "9999-12-31", "0001-01-01", "2026-02-30", "../..", "%00",
              "\x00", "0\n0", "24h offset 9999999w", "user,group,profile", "csv", "json", "'; DROP TABLE sessions;--",
              "<script>alert(1)</script>", "\u202e\u0000\ufeff", LONG,
              "2026-01-01T00:00:00Z,9999-12-31T00:00:00Z"]  # fmt: skip

value = st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=40), st.integers().map(str))
name = st.one_of(st.sampled_from(PARAMETERS), st.text(min_size=1, max_size=12))
query = st.dictionaries(name, value, min_size=1, max_size=5)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def routes(service_class) -> list[str]:
    """The service's paths, with a path parameter filled by a placeholder."""
    return [re.sub(r"\(.*?\)", "{arg}", path) for path, *_ in service_class.routes(None)]


USAGE_PATHS = ["usage/" + path for path in routes(UsageService)]
COST_PATHS = ["cost/" + path for path in routes(CostService)]
PATHS = USAGE_PATHS + COST_PATHS + ["usage/health", "cost/health", "usage/metrics", "cost/metrics"]


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    client = budget_hub.start(hub_factory, tmp_path_factory.mktemp("fuzz-config"), "fuzz-hub")
    client.tokens = {"admin": client.user_token("admin"), "bob": client.user_token("bob"), "nobody": None}
    client.log_start = client.hub.log_file.stat().st_size
    return client


def service_secrets(hub) -> dict[str, str]:
    """The shared tokens the hub gave its services (read from their environments)."""
    found = {}
    for pid in tagged_processes(hub.hub.tag):
        try:
            variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for variable in variables:
            name, _, secret = variable.decode(errors="replace").partition("=")
            if name in ("TWOI2C_USAGE_EVENTS_TOKEN", "TWOI2C_COST_CHECK_TOKEN"):
                found[name] = secret
    return found


def answered_well(response: requests.Response, path: str) -> None:
    where = f"{response.request.method} {response.url[:300]}"
    assert response.status_code < 500, f"{where}: {response.status_code}\n{response.text[:2000]}"
    assert "Traceback" not in response.text, where
    if response.status_code < 400:
        return
    if "/api/" in "/" + path:
        body = response.json()
        assert body["code"] == response.status_code, where
        message = body["message"]
    else:
        assert response.headers["Content-Type"].startswith(("text/html", "application/json")), where
        message = response.text
    assert isinstance(message, str) and message.strip(), where
    assert LONG not in message, f"{where}: the message echoes a whole value"
    if "/api/" in "/" + path:
        assert len(message) <= MAX_MESSAGE and message.isprintable(), f"{where}: {message[:1000]!r}"


def get(hub, path: str, params: dict, who: str, arg: str = "2026-11") -> requests.Response:
    token = hub.tokens[who]
    headers = {"Authorization": f"token {token}"} if token else {}
    url = f"{hub.url}/services/{path.replace('{arg}', requests.utils.quote(arg, safe=''))}"
    return requests.get(url, params=params, headers=headers, timeout=60, allow_redirects=False)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.hub
def test_every_parameter_of_an_endpoint_at_each_odd_value_is_answered_or_refused_in_a_short_4xx(hub, path):
    """The sweep that always runs: each odd value in every parameter (and the path's own)."""
    queries = [dict.fromkeys(PARAMETERS, odd) for odd in ODD_VALUES if odd != LONG]
    # a long value one parameter at a time: a request's headers past 64 KiB are cut off by
    # tornado (the proxy's and the hub's server) before any of our code, see docs/security.md
    queries += [dict.fromkeys(PARAMETERS[:8], LONG), dict.fromkeys(PARAMETERS[8:], LONG)]
    for number, params in enumerate(queries):  # as an admin and as a student, in turn
        who = ("admin", "bob")[number % 2]
        answered_well(get(hub, path, params, who, next(iter(params.values())) or "-"), path)


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(
    params=query,
    who=st.sampled_from(["admin", "bob", "nobody"]),
    arg=st.one_of(st.sampled_from(["2026-11", "9999-12", "2026-13", "..", LONG[:300]]), st.text(min_size=1)),
)
@pytest.mark.hub
def test_fuzz_any_query_to_an_endpoint_is_answered_or_refused_in_a_short_4xx(hub, path, params, who, arg):
    answered_well(get(hub, path, params, who, arg), path)


def event(kind):
    fields = {"type": st.just(kind), "username": value, "server_name": value, "started": json_value,
              "stopped": json_value, "reason": value, "groups": json_value, "server": json_value}  # fmt: skip
    return st.fixed_dictionaries({}, optional=fields)


def shaped_server():
    keys = ["cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit", "gpu_count", "gpu_type", "instance_type"]
    numbers = st.one_of(st.floats(), st.integers(), st.sampled_from([float("nan"), float("inf"), -1, 10**400]))
    return st.fixed_dictionaries({}, optional={k: st.one_of(numbers, json_value) for k in keys})


budget_check = st.fixed_dictionaries(
    {}, optional={"username": value, "groups": json_value, "server": st.one_of(shaped_server(), json_value)}
)


def raw_json(body) -> bytes:
    # Python's own JSON, which writes NaN and Infinity as a careless client would
    return json.dumps(body).encode()


@FUZZ
@given(
    target=st.sampled_from(["usage/api/v1/events", "usage/api/v1/recent-use", "cost/api/v1/budgets/check"]),
    body=st.one_of(
        st.builds(raw_json, st.one_of(event("start"), event("stop"), event("groups"), budget_check)),
        st.builds(raw_json, st.lists(st.one_of(event("start"), event("stop")), max_size=3)),
        st.builds(raw_json, json_value),
        st.binary(max_size=200),
    ),
)
@pytest.mark.hub
def test_fuzz_any_body_the_hubs_own_posts_may_carry_is_recorded_or_refused_in_a_short_4xx(hub, target, body):
    secrets = service_secrets(hub)
    token = secrets["TWOI2C_USAGE_EVENTS_TOKEN" if target.startswith("usage") else "TWOI2C_COST_CHECK_TOKEN"]
    response = requests.post(
        f"{hub.url}/services/{target}", data=body, headers={"Authorization": f"token {token}"}, timeout=60
    )
    answered_well(response, target)


ledger_form = st.fixed_dictionaries(
    {}, optional={k: value for k in ("budget", "subject", "kind", "amount", "until", "reason", "currency")}
)


@FUZZ
@given(form=ledger_form, as_json=st.booleans())
@pytest.mark.hub
def test_fuzz_any_ledger_entry_an_admin_posts_is_written_or_refused_in_a_short_4xx(hub, form, as_json):
    headers = {"Authorization": f"token {hub.tokens['admin']}"}
    url = f"{hub.url}/services/cost/api/v1/ledger"
    response = (
        requests.post(url, json=form, headers=headers, timeout=60)
        if as_json
        else requests.post(url, data=form, headers=headers, timeout=60)
    )
    answered_well(response, "cost/api/v1/ledger")


spawn_form = st.fixed_dictionaries(
    {"profile": st.one_of(st.text(max_size=30), st.sampled_from(ODD_VALUES)).filter(lambda p: p.strip() not in (
        "", "cpu", "gpu", "r", "small", "default"))},
    optional={k: value for k in ("image", "resources", "interface", "git-pull-repo", "git-pull-branch",
                                 "git-pull-urlpath", "profile-option-image", "profile-option-resources")},
)  # fmt: skip


@FUZZ
@given(form=spawn_form)
@pytest.mark.hub
def test_fuzz_a_forged_spawn_form_is_refused_on_the_page_and_starts_nothing(hub, form):
    bob = hub.__dict__.setdefault("bob_session", hub.login("bob"))
    response = bob.post(
        f"{hub.url}/hub/spawn/bob", data={**form, "_xsrf": hub.xsrf(bob)}, timeout=60, allow_redirects=False
    )
    assert response.status_code < 500, response.text[-2000:]
    assert "Traceback" not in response.text
    if response.status_code in (302, 303):  # a choice that happened to be real: let it go
        hub.wait_for(lambda: (hub.server("bob") or {}).get("ready"), timeout=120, what="bob's server")
        hub.stop_server("bob")


@pytest.mark.hub
def test_the_fuzzing_left_no_traceback_in_the_logs(hub):
    """Run last in this file (pytest keeps file order unless shuffled; shuffled, it checks what ran before)."""
    with open(hub.hub.log_file, "rb") as log:
        log.seek(hub.log_start)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written, written[written.index("Traceback") - 2000 :][:6000]


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), -1.0, 1e300])
@pytest.mark.hub
def test_a_budget_check_for_a_server_of_no_real_size_is_a_400_naming_it(hub, amount):
    """Found by the fuzzing: a NaN memory passed every bound (NaN compares false) and was priced."""
    token = service_secrets(hub)["TWOI2C_COST_CHECK_TOKEN"]
    body = {"username": "bob", "groups": ["students"], "server": {"cpu_guarantee": 1, "mem_guarantee": amount}}
    response = requests.post(
        f"{hub.url}/services/cost/api/v1/budgets/check", data=raw_json(body),
        headers={"Authorization": f"token {token}"}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == "server" and "is not a resource amount" in response.json()["message"]


@FUZZ
@given(options=st.one_of(json_value, st.fixed_dictionaries({}, optional={"profile": value, "image": value,
                                                                        "git_pull": json_value})))  # fmt: skip
@pytest.mark.hub
def test_fuzz_any_user_options_through_the_rest_api_are_refused_in_a_short_4xx_and_start_nothing(hub, options):
    if isinstance(options, dict) and str(options.get("profile", "")).strip() in ("", "cpu", "gpu"):
        options["profile"] = "no such profile"  # a real choice would start a server: not what is fuzzed
    token = hub.__dict__.setdefault("bob_token", hub.user_token("bob"))
    response = requests.post(  # as Python writes JSON: NaN and Infinity included
        f"{hub.url}/hub/api/users/bob/server", data=raw_json(options), timeout=60,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code < 500, response.text[-2000:]
    if response.status_code >= 400:
        assert response.json()["status"] == response.status_code and len(response.json()["message"]) <= MAX_MESSAGE
    else:  # JupyterHub takes a body that is not an object as no options at all: the default starts
        hub.wait_for(lambda: (hub.server("bob") or {}).get("ready"), timeout=120, what="bob's server")
        hub.stop_server("bob")


@FUZZ
@given(username=value, password=value)
@pytest.mark.hub
def test_fuzz_any_login_form_is_a_login_or_a_refusal_never_an_error(hub, username, password):
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    response = session.post(
        f"{hub.url}/hub/login?next=",
        data={"username": username, "password": password, "_xsrf": hub.xsrf(session)},
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code in (200, 302, 403), response.text[-2000:]
    assert "Traceback" not in response.text
