"""Budget alerts reach a real SMTP server (aiosmtpd) and a webhook receiver on loopback,
once per level, however often the cost service looks; the gauges are on /metrics. The
month-end forecast alert is checked at chosen moments of a month, without a hub."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml
from aiosmtpd.controller import Controller
from cost_figures import PRICING, expected, record_all
from past_spending import spend
from prometheus_client import CollectorRegistry

from twoi2c_hub.accounting.budgets import Budget
from twoi2c_hub.accounting.costs import CostBasis
from twoi2c_hub.accounting.events import ServerStart
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.catalog import INSTANCE_TYPES, GiB
from twoi2c_hub.config.budgets import AlertsSection
from twoi2c_hub.network import free_port
from twoi2c_hub.paths import demo_config
from twoi2c_hub.services.cost.alerts import Alerter


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture(scope="module")
def receivers():
    inbox = Inbox()
    # a fixed server name: its default (socket.getfqdn) waits on DNS, which this machine lacks
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port(), server_hostname="smtp.test")
    smtp.start()
    posts = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            """No access log on the test's output (http.server writes one per request)."""

    web = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    yield inbox, smtp.port, posts, f"http://127.0.0.1:{web.server_port}/hook"
    smtp.stop()
    web.shutdown()


@pytest.fixture(scope="module")
def hub(hub_factory, tmp_path_factory, receivers):
    inbox, smtp_port, posts, hook_url = receivers
    work = tmp_path_factory.mktemp("alerts-config")
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["usage"] = {"reconcile_interval": 1.0, "database_url": f"sqlite:///{work / 'usage.sqlite'}"}
    config["cost"] = {"rollup_interval": 0.5}
    config["budgets"] = {
        "budgets": [{"name": "hub-weekly", "applies_to": "hub", "limit": 2, "period": "7d"}],
        "alerts": {
            "at": [50, 100],
            "email": {
                "to": ["admins@example.org"],
                "from": "hub@example.org",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
            },  # fmt: skip
            "webhook": {"url_env": "TEST_ALERT_WEBHOOK"},
        },
    }
    path = work / "community.yaml"
    path.write_text(yaml.safe_dump(config))
    # the webhook URL is a secret: from the cost service's environment
    extra = f"""
for _s in c.JupyterHub.services:
    if _s["name"] == "cost":
        _s["environment"]["TEST_ALERT_WEBHOOK"] = {hook_url!r}
"""
    client = hub_factory(path, "alerts-hub", extra_config=extra)
    client.database_url = config["usage"]["database_url"]
    client.wait_for(lambda: requests.get(f"{client.url}/services/cost/health", timeout=10).ok, what="cost service")
    return client


def wait_for_rounds(hub, rounds: int) -> None:
    """Until the cost service has done `rounds` whole rounds (roll up, stop, alert) begun
    after this call: /health says when the latest round began, and a round is done when
    the next one begins (an alert is in the inbox before its round ends)."""
    began = []

    def done() -> bool:
        at = requests.get(f"{hub.url}/services/cost/health", timeout=10).json()["last_rolled_up"]
        if not began or at != began[-1]:
            began.append(at)
        return len(began) >= rounds + 2  # the round going on at the call, `rounds`, the next

    hub.wait_for(done, what=f"{rounds} more rounds of the cost service (last_rolled_up on its /health)")


def test_each_level_is_sent_once_by_email_and_webhook(hub, receivers):
    inbox, _, posts, _ = receivers
    spend(hub, "bob", 1.2)  # 60 % of the hub's 2 USD
    hub.wait_for(lambda: inbox.messages and posts, what="the 50 % alert")
    (to, content), (post,) = inbox.messages[0], posts
    assert to == ["admins@example.org"]
    assert "Subject: [Demo Community Hub] the hub's budget hub-weekly has reached 50 %" in content
    assert re.search(r"hub-weekly: 1\.20 USD of 2\.00 USD used \(60 %\) in the last 7 days", post["text"])

    spend(hub, "alice", 1.0, groups=("researchers",))  # 110 %
    hub.wait_for(lambda: len(inbox.messages) == 2 and len(posts) == 2, what="the 100 % alert")
    assert "reached 100 %" in posts[1]["text"]
    wait_for_rounds(hub, 3)  # the service looked again, three times: nothing is sent twice
    assert len(inbox.messages) == 2 and len(posts) == 2

    admin = hub.user_token("admin")
    metrics = requests.get(f"{hub.url}/services/cost/metrics", headers={"Authorization": f"token {admin}"}, timeout=30)
    assert metrics.status_code == 200, metrics.text
    spent = re.search(r'^twoi2c_budget_spend\{budget="hub-weekly",subject=""\} (\S+)$', metrics.text, re.M)
    assert float(spent.group(1)) == pytest.approx(2.2, abs=0.01)
    assert re.search(r'^twoi2c_budget_limit\{budget="hub-weekly",subject=""\} 2\.0$', metrics.text, re.M)


def test_the_admin_page_charts_spending_against_the_hub_budget(hub):
    from bs4 import BeautifulSoup

    admin = hub.login("admin")
    page = BeautifulSoup(admin.get(f"{hub.url}/services/cost/admin", timeout=30).content, "html.parser")
    (chart,) = page.select(".twoi2c-budget-chart")
    data = json.loads(page.select_one(f"#{chart['id']}-data").get_text())
    assert data["limit"] == 2.0 and len(data["days"]) >= 7  # a rolling week, day by day
    assert data["forecast"] is None  # forecasts are for calendar months
    assert "hub-weekly" in page.select_one("figure figcaption").get_text()


# --- the month-end forecast alert, at chosen moments (no hub: the tests above have one) ----

MONTH_START = 20_758 * DAY_MS  # 2026-11-01T00:00Z; the T4 costs 0.56 an hour to Nov 3, then 0.545


class CostService:
    """What the alerter reads of the cost service."""

    currency = "USD"
    basis = CostBasis(PRICING, INSTANCE_TYPES)
    budgets = [Budget("hub-monthly", "hub", (), limit=50.0)]


def gpu_evening(day: int, hours: float) -> tuple[ServerStart, int]:
    """bob's T4 server from 18:00 on November's `day`, for `hours`."""
    start = MONTH_START + (day - 1) * DAY_MS + 18 * HOUR_MS
    server = ServerStart(username="bob", server_name="", started_ms=start, profile="gpu", cpu_guarantee=3.5,
                         mem_guarantee_bytes=14 * GiB, gpu_count=1, gpu_type="nvidia-tesla-t4",
                         groups=["students"])  # fmt: skip
    return server, start + int(hours * HOUR_MS)


def test_a_big_first_day_does_not_spend_the_months_forecast_alert(db):
    """5 GPU hours on Nov 1 would read as 84 USD for November (old: the alert, gone for the
    month on the 1st); bob then keeps to 4 hours an evening, which does end past the 50 USD
    limit: the one forecast alert comes when that is what the days so far say."""
    sessions = [gpu_evening(1, 5)] + [gpu_evening(day, 4) for day in range(2, 10)]
    record_all(db, sessions)
    registry = CollectorRegistry()
    alerter = Alerter(CostService(), AlertsSection(at=[90, 100]), registry)

    def forecast_gauge():
        return registry.get_sample_value("twoi2c_budget_forecast", {"budget": "hub-monthly", "subject": ""})

    for now in (MONTH_START + 23 * HOUR_MS, MONTH_START + DAY_MS + 23 * HOUR_MS, MONTH_START + 3 * DAY_MS - 1):
        assert alerter.due(db, now) == [], f"day {now // DAY_MS - MONTH_START // DAY_MS + 1}"
        assert forecast_gauge() is None  # no figure on /metrics either

    now = MONTH_START + 8 * DAY_MS + 12 * HOUR_MS  # Nov 9, 12:00: evenings 1 to 8 spent
    spent = sum(expected(sessions, MONTH_START, now, "user", now=now)["bob"])
    at_end = spent / 8.5 * 30
    assert spent < 45 < 50 < at_end  # under every level, over the limit by the month's end
    ((key, text),) = alerter.due(db, now)
    assert key == ("hub-monthly", "", MONTH_START, "forecast")
    assert text == (
        "the hub's budget hub-monthly is on course to pass its limit of 50.00 USD this month: a rough forecast "
        f"from the first 8 of the month's 30 days: {at_end:.2f} USD by its end at this rate. hub-monthly: "
        f"{spent:.2f} USD of 50.00 USD used ({spent / 50 * 100:.0f} %); resets on 2026-12-01."
    )
    assert forecast_gauge() == pytest.approx(at_end)
    for later in (now + HOUR_MS, now + 5 * DAY_MS):  # once a month, however often it looks
        assert [k for k, _ in alerter.due(db, later) if k[3] == "forecast"] == []
