"""Running now (`/services/cost/admin/running`): every running server, who runs what since
when, idle for how long and its cost so far, recomputed here from the recorded session and
the demo's prices; hub admins stop a server from it, community admins only read it."""

import time
from datetime import datetime

import pytest
import requests
import yaml
from bs4 import BeautifulSoup

from twoi2c_hub.catalog import INSTANCE_TYPES, user_capacity
from twoi2c_hub.config import load_config
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("running-now")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{folder / 'usage.sqlite'}"}
    (folder / "community.yaml").write_text(yaml.safe_dump(config))
    client = hub_factory(folder / "community.yaml", "running-now")
    client.config = load_config(folder / "community.yaml")
    client.wait_for(lambda: requests.get(f"{client.url}/services/cost/health", timeout=30).ok, what="the cost service")
    return client


def page_rows(session, url):
    soup = BeautifulSoup(session.get(url, timeout=30).content, "html.parser")
    return soup, {row.select_one("th").get_text(): row for row in soup.select("#running tbody tr")}


def test_admins_see_what_runs_and_what_it_cost_so_far_and_hub_admins_stop_it(hub):
    url = f"{hub.url}/services/cost/admin/running"
    alice_token = hub.user_token("alice")
    hub.login("alice")
    options = {"profile": "cpu", "resources": "mem_14_gib"}
    response = hub.api("POST", "/users/alice/server", token=alice_token, json={"user_options": options})
    assert response.status_code in (201, 202), response.text
    hub.wait_for(lambda: (hub.server("alice") or {}).get("ready"), timeout=90, what="alice's server")

    def recorded():
        answer = requests.get(
            f"{hub.url}/services/usage/api/v1/sessions",
            params={"user": "alice"},
            headers={"Authorization": f"token {alice_token}"},
            timeout=30,
        )
        return [s for s in answer.json()["data"] if not s["stopped"]] if answer.ok else None

    (session,) = hub.wait_for(recorded, what="alice's running session")
    # its price per hour worked out here: its share of the node's price, as the demo charges
    node = session["instance_type"]
    _, offered = user_capacity(INSTANCE_TYPES[node])
    hourly = session["mem_guarantee_bytes"] / offered * hub.config.pricing.prices[0].instances[node].on_demand
    started = datetime.fromisoformat(session["started"].replace("Z", "+00:00")).timestamp()

    admin = hub.login("admin")  # a hub admin
    before = time.time()
    soup, rows = page_rows(admin, url)
    after = time.time()
    row = rows["alice"]
    cells = [td.get_text(" ", strip=True) for td in row.select("td")]
    assert cells[0] == "cpu"
    assert cells[4] == f"{hourly:,.2f}"
    so_far = float(cells[5].replace(",", ""))
    assert (
        round(hourly * (before - started) / 3600, 2) - 0.01
        <= so_far
        <= round(hourly * (after - started) / 3600, 2) + 0.01
    )
    assert cells[3].endswith("min") and cells[3] != "unknown"  # idle: the hub's last activity
    total = soup.select_one("#running tfoot").get_text(" ", strip=True)
    assert total.startswith("1 running") and f"{hourly:,.2f}" in total

    # a community admin (researchers) who is not a hub admin reads it, and may not stop
    researcher = hub.login("alice")
    soup, rows = page_rows(researcher, url)
    assert "alice" in rows and not soup.select("#running form")
    # with a good XSRF token (the service's cookie, as a form of the service would send it)
    token = next(c.value for c in researcher.cookies if c.name == "_xsrf" and c.path == "/services/cost/")
    refused = researcher.post(url, data={"_xsrf": token, "username": "alice", "server_name": ""}, timeout=30)
    assert refused.status_code == 403 and "Only the hub&#39;s admins may stop" in refused.text.replace("'", "&#39;")
    assert hub.server("alice") is not None
    assert hub.login("bob").get(url, timeout=30).status_code == 403  # a student: not at all

    # the hub admin stops it: the form's XSRF token, then the hub stops the server
    soup, rows = page_rows(admin, url)
    form = rows["alice"].select_one("form")
    fields = {i["name"]: i.get("value", "") for i in form.select("input[type=hidden]")}
    assert admin.post(url, data={**fields, "username": "nobody"}, timeout=30).status_code == 404
    stopped = admin.post(url, data=fields, timeout=30)
    assert stopped.status_code == 200 and "alice's server is stopping" in stopped.text
    hub.wait_for(lambda: hub.server("alice") is None, timeout=60, what="alice's server to stop")
    hub.wait_for(lambda: not recorded(), what="the stop to be recorded")
    assert "No server is running." in admin.get(url, timeout=30).text
