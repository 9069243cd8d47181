"""The cost service with a real hub, real servers and the real usage and cost services:
what a session cost, recomputed here from the recorded session and the demo's prices,
and who may read what."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml
from bs4 import BeautifulSoup
from past_spending import A_DAYS_SESSIONS, in_rollups, record_a_day

from twoi2c_hub.catalog import GiB
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub


def cost_config(tmp_path):
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{tmp_path / 'usage.sqlite'}"}
    config["cost"] = {"rollup_interval": 1.0}
    path = tmp_path / "cost-community.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    path = cost_config(tmp_path_factory.mktemp("cost-config"))
    client = hub_factory(path, "cost-hub")
    client.config = load_config(path)
    client.database_url = client.config.usage.database_url
    client.wait_for(lambda: get(client, "/health").status_code == 200, what="the cost service")
    return client


def get(hub, path, token=None, **params) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    url = f"{hub.url}/services/cost" + (path if path.startswith("/") else f"/api/v1/{path}")
    return requests.get(url, params=params, headers=headers, timeout=30)


def price_per_hour(hub, session) -> float:
    """The session's price per hour from the demo's price table, worked out here: the demo
    charges a node share's share of the node, the node's price split as OpenCost does."""
    table = hub.config.pricing.prices[0]
    node = session["instance_type"]
    assert node == "n2-highmem-4"
    from twoi2c_hub.catalog import INSTANCE_TYPES, user_capacity

    _, offered = user_capacity(INSTANCE_TYPES[node])
    share = session["mem_guarantee_bytes"] / offered
    return share * table.instances[node].on_demand


def test_a_persons_session_costs_its_hours_at_the_price_in_force(hub):
    alice_token, bob_token, admin_token = (hub.user_token(n) for n in ("alice", "bob", "admin"))
    for name in ("alice", "bob", "admin"):
        hub.login(name)  # the demo authenticator gives groups at login
    options = {"profile": "cpu", "resources": "mem_14_gib"}
    response = hub.api("POST", "/users/alice/server", token=alice_token, json={"user_options": options})
    assert response.status_code in (201, 202), response.text
    hub.wait_for(lambda: (hub.server("alice") or {}).get("ready"), timeout=90, what="alice's server")
    hub.stop_server("alice")

    def closed_session():
        response = requests.get(
            f"{hub.url}/services/usage/api/v1/sessions",
            params={"user": "alice"},
            headers={"Authorization": f"token {alice_token}"},
            timeout=30,
        )
        return [s for s in response.json()["data"] if s["stopped"]] if response.ok else None

    (session,) = hub.wait_for(closed_session, what="alice's session to be recorded")
    started = datetime.fromisoformat(session["started"].replace("Z", "+00:00"))
    stopped = datetime.fromisoformat(session["stopped"].replace("Z", "+00:00"))
    hours = (stopped - started).total_seconds() / 3600
    wanted = hours * price_per_hour(hub, session)
    assert wanted > 0

    answer = get(hub, "cost", alice_token, window="today", aggregate="user")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["currency"] == "USD"
    (step,) = body["data"]
    assert set(step) == {"alice"}  # a person reads only their own
    row = step["alice"]
    assert row["totalCost"] == pytest.approx(wanted, rel=1e-3)
    assert row["cpuCost"] + row["ramCost"] + row["gpuCost"] == pytest.approx(row["totalCost"], rel=1e-6)
    assert row["ramByteHours"] == pytest.approx(hours * session["mem_guarantee_bytes"], rel=1e-3)
    assert session["mem_guarantee_bytes"] > 13 * GiB

    # the same from the rollups once the service has rolled the session up
    hub.wait_for(lambda: get(hub, "/health").json().get("last_rolled_up"), what="a cost rollup")
    today = datetime.now(UTC).date().isoformat()
    rolled = get(hub, "cost", alice_token, window=f"{today}T00:00:00Z,{today}T23:59:59Z")
    assert rolled.json()["data"][0]["alice"]["totalCost"] == pytest.approx(wanted, rel=1e-3)

    # bob may not read alice's; the community admins (researchers) and hub admins read everyone's
    assert get(hub, "cost", bob_token, user="alice").status_code == 403
    assert get(hub, "cost", None).status_code == 403
    everyone = get(hub, "cost", admin_token, window="today", aggregate="group")
    assert everyone.status_code == 200
    assert everyone.json()["groupRule"] == "split"
    assert everyone.json()["data"][0]["researchers"]["totalCost"] == pytest.approx(wanted, rel=1e-3)

    # CSV: the same figures, one line per name
    text = get(hub, "cost", admin_token, window="today", aggregate="user", format="csv").text
    lines = list(csv.DictReader(io.StringIO(text)))
    assert float(next(line for line in lines if line["name"] == "alice")["totalCost"]) == pytest.approx(
        wanted, rel=1e-3
    )


def test_bad_parameters_are_400s_naming_the_parameter(hub):
    token = hub.user_token("alice")
    for params, parameter in [({"window": "yesterday-ish"}, "window"), ({"aggregate": "x"}, "aggregate")]:
        response = get(hub, "cost", token, **params)
        assert response.status_code == 400
        assert response.json()["parameter"] == parameter


def test_statements_are_for_admins_and_name_a_bad_month(hub):
    month = datetime.now(UTC).strftime("%Y-%m")
    admin, bob = hub.user_token("admin"), hub.user_token("bob")
    answer = get(hub, f"statements/{month}", admin)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["month"] == month and data["total"] == pytest.approx(data["cloud_cost"] + data["fee"])
    assert get(hub, f"statements/{month}", bob).status_code == 403
    bad = get(hub, "statements/2026-13", admin)
    assert bad.status_code == 400 and bad.json()["parameter"] == "month"
    csv_text = get(hub, f"statements/{month}", admin, format="csv").text
    assert csv_text.splitlines()[0].startswith("month,currency,bill,attributed")


# the columns of a cost table's total row, after its first cell
COST_COLUMNS = ["total_cost", "server_hours", "gpu_hours", "cpu_cost", "ram_cost", "gpu_cost"]  # the total first


def table_figures(page, table_id, columns):
    """The figures (data-value) of each body row, and of the total row, by column."""
    rows = [
        {c: float(td["data-value"]) for c, td in zip(columns, tr.select("td")[1:], strict=True)}
        for tr in page.select(f"#{table_id} tbody tr")
    ]
    (total,) = page.select(f"#{table_id} tfoot tr")
    return rows, {c: float(td["data-value"]) for c, td in zip(columns, total.select("td"), strict=True)}, total


def test_the_cost_tables_end_with_a_total_row_each_session_counted_once(hub):
    day = datetime.now(UTC).date() - timedelta(days=5)
    record_a_day(hub.database_url, day)
    hub.wait_for(lambda: in_rollups(hub.database_url, day), what="the sessions in the rollups")
    prices = hub.config.pricing.prices[0]
    cost = {
        i: h * (c * prices.cpu_core_hour + g * prices.memory_gib_hour)
        for i, (*_, h, c, g) in enumerate(A_DAYS_SESSIONS)
    }
    all_hours, all_cost = sum(s[3] for s in A_DAYS_SESSIONS), sum(cost.values())

    admin = hub.login("admin")
    for aggregate in ("user", "profile", "group"):
        params = {"aggregate": aggregate, "start": day.isoformat(), "end": day.isoformat()}
        page = BeautifulSoup(
            admin.get(f"{hub.url}/services/cost/admin", params=params, timeout=30).content, "html.parser"
        )
        rows, total, row = table_figures(page, "cost-totals", COST_COLUMNS)
        assert "Total" in row.select_one("th[scope=row]").get_text()
        # every session once, whatever the rows are
        assert total["server_hours"] == pytest.approx(all_hours) and total["gpu_hours"] == 0
        assert total["total_cost"] == pytest.approx(all_cost, rel=1e-6)
        assert total["cpu_cost"] + total["ram_cost"] == pytest.approx(all_cost, rel=1e-6)
        hours_in_rows = sum(r["server_hours"] for r in rows)
        if aggregate == "group":  # ben's 3 hours are in students' row and researchers'
            assert hours_in_rows == pytest.approx(all_hours + 3.0)
            assert "each session once" in row.get_text()
        else:  # each session in one row: the total is the rows' sum, column by column
            assert {c: pytest.approx(sum(r[c] for r in rows)) for c in COST_COLUMNS} == total
            assert row.select_one(".twoi2c-total-note") is None
        # the demo splits a person's cost between their groups: the money adds up by any rows
        assert sum(r["total_cost"] for r in rows) == pytest.approx(all_cost, rel=1e-6)

    # bob's own page: his two profiles and their total
    bob = hub.login("bob")
    params = {"start": day.isoformat(), "end": day.isoformat()}
    page = BeautifulSoup(bob.get(f"{hub.url}/services/cost/", params=params, timeout=30).content, "html.parser")
    columns = ["total_cost", "server_hours", "cpu_cost", "ram_cost", "gpu_cost"]
    rows, total, _ = table_figures(page, "cost-totals", columns)
    assert len(rows) == 2
    assert total["server_hours"] == pytest.approx(2.0)
    assert total["total_cost"] == pytest.approx(cost[3] + cost[4], rel=1e-6)
    assert {c: pytest.approx(sum(r[c] for r in rows)) for c in columns} == total
