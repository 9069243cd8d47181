"""Budget alerts reach a real SMTP server (aiosmtpd) and a webhook receiver on loopback,
once per level, however often the cost service looks; the gauges are on /metrics."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml
from aiosmtpd.controller import Controller
from past_spending import spend

from twoi2c_hub.network import free_port
from twoi2c_hub.paths import demo_config

pytestmark = pytest.mark.hub


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
