"""The fleet service on the operator's hub (`fleet_view:`): its pages and API give the
fleet's figures from the fleet's database to the operator groups only, people counted
once across hubs and each community's cost, fee and recovery, recomputed here."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml

from twoi2c_hub import dates
from twoi2c_hub.accounting import fleet_store
from twoi2c_hub.accounting.db import make_engine, session_maker
from twoi2c_hub.accounting.fleet import person_digest
from twoi2c_hub.config.loading import load_config
from twoi2c_hub.paths import demo_config

SECRET = bytes(range(32))


def last_month(today):
    return f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"


@pytest.fixture(scope="module")
def operator_hub(hub_factory, tmp_path_factory):
    """An operator's hub whose fleet has two hubs on one cluster, with people and money
    (the tests only read it)."""
    tmp_path = tmp_path_factory.mktemp("operator")
    database = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    (tmp_path / "fleet.yaml").write_text(
        yaml.safe_dump(
            {
                "fleet": {"name": "Test Operator", "secret_env": "TWOI2C_TEST_FLEET_SECRET", "database_url": database},
                "clusters": [{"name": "east", "monthly_cost": 100}],
                "communities": [
                    {"name": "ocean", "display_name": "Ocean <Lab>", "fee": 40, "budget": 25},
                    {"name": "rocks", "fee": 10, "budget": 100},
                ],
                "hubs": [
                    {"name": "ocean-hub", "community": "ocean", "cluster": "east", "url": "http://127.0.0.1:9",
                     "token_env": "TWOI2C_TEST_OCEAN_TOKEN"},
                    {"name": "rocks-hub", "community": "rocks", "cluster": "east", "url": "http://127.0.0.1:9",
                     "token_env": "TWOI2C_TEST_ROCKS_TOKEN"},
                ],
            }
        )
    )  # fmt: skip
    today = datetime.now(UTC).date()
    yesterday = fleet_store.day_number(today - timedelta(days=1))
    people = {  # hub -> days back from yesterday -> names
        "ocean-hub": {0: ["ann", "ben"], 3: ["ann", "cy"], 10: ["dee"]},
        "rocks-hub": {0: ["ben"], 6: ["eve"], 8: ["fay"]},  # ben uses both hubs
    }
    engine = make_engine(database)
    fleet_store.upgrade(database)
    with session_maker(engine)() as db:
        for hub, days in people.items():
            by_day = {yesterday - back: [person_digest(SECRET, n) for n in names] for back, names in days.items()}
            fleet_store.replace_people(db, hub, yesterday - 40, yesterday, by_day)
        for hub, attributed, fee in (("ocean-hub", 30.0, 0.0), ("rocks-hub", 20.0, 0.0)):
            figures = {"currency": "USD", "attributed_cost": attributed, "fee": fee, "bill": None}
            fleet_store.save_month(db, hub, last_month(today), figures, 0)
            fleet_store.save_month(db, hub, f"{today:%Y-%m}", figures, 0)  # this month so far: the same
        db.commit()
    engine.dispose()
    config = demo_config()
    config["culling"] = {"enabled": False}
    config["fleet_view"] = {"config": "fleet.yaml", "operator_groups": ["researchers"], "collect_interval": 0}
    (tmp_path / "community.yaml").write_text(yaml.safe_dump(config))
    assert load_config(tmp_path / "community.yaml").fleet_view.operator_groups == ["researchers"]
    hub = hub_factory(str(tmp_path / "community.yaml"), "operator")
    hub.wait_for(lambda: requests.get(f"{hub.url}/services/fleet/health", timeout=30).ok, what="the fleet service")
    return hub, people


def test_operators_read_people_counted_once_and_each_communitys_recovery(operator_hub):
    hub, people = operator_hub
    api = f"{hub.url}/services/fleet/api/v1"
    alice = {"Authorization": f"token {(hub.login('alice'), hub.user_token('alice'))[1]}"}  # researchers
    bob = {"Authorization": f"token {(hub.login('bob'), hub.user_token('bob'))[1]}"}
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    window = f"{yesterday.isoformat()}T00:00:00Z,{today.isoformat()}T00:00:00Z"

    def get(path, headers=alice, **params):
        return requests.get(f"{api}/{path}", params=params, headers=headers, timeout=60)

    answer = get("active-users", window=window, aggregate="fleet")
    assert answer.status_code == 200, answer.text

    # recomputed here from the names: the day, the 7 days and the 30 days to yesterday
    def distinct(days):
        return len({n for by_day in people.values() for back, names in by_day.items() if back < days for n in names})

    counts = {"daily": distinct(1), "weekly": distinct(7), "monthly": distinct(30)}
    assert answer.json()["data"] == [{"date": yesterday.isoformat(), "name": "fleet", **counts}]
    assert list(counts.values()) == [2, 4, 6]  # ben once, though on both hubs
    by_hub = get("active-users", window=window, aggregate="hub", format="csv")
    assert by_hub.text.splitlines()[1:] == [f"{yesterday},ocean-hub,2,3,4", f"{yesterday},rocks-hub,1,2,3"]

    recovery = get("recovery", month=last_month(today)).json()
    # the cluster's 100.00: 50.00 attributed, 50.00 shared by attributed cost (30:20)
    parts = ("attributedCost", "sharedCost", "cost", "fee", "recovery")
    assert {r["name"]: tuple(r[p] for p in parts) for r in recovery["data"]} == {
        "ocean": (30.0, 30.0, 60.0, 40.0, 0.6667),
        "rocks": (20.0, 20.0, 40.0, 10.0, 0.25),
        "fleet": (50.0, 50.0, 100.0, 50.0, 0.5),
    }
    hubs = get("hubs").json()["data"]
    assert [(h["name"], h["stale"], h["collected"]) for h in hubs] == [
        ("ocean-hub", True, None),
        ("rocks-hub", True, None),
    ]
    # each hub's people in the 30 days, and the bin operators chart it in
    monthly = {hub: len({n for names in by_day.values() for n in names}) for hub, by_day in people.items()}
    assert {h["name"]: (h["monthlyActiveUsers"], h["sizeBin"]) for h in hubs} == {
        hub: (m, "0-5" if m < 5 else "5-10") for hub, m in monthly.items()
    }
    assert get("recovery", month="2026-13").json()["parameter"] == "month"

    # what an operator alerts on: both hubs stale (never collected), in Prometheus' text
    metrics = requests.get(f"{hub.url}/services/fleet/metrics", headers=alice, timeout=60)
    assert metrics.status_code == 200
    assert 'twoi2c_fleet_hub_stale{hub="ocean-hub"} 1.0' in metrics.text
    assert 'twoi2c_fleet_hub_stale{hub="rocks-hub"} 1.0' in metrics.text
    # and a community past its budget this month: ocean's hub was attributed 30 of its 25
    assert 'twoi2c_fleet_community_over_budget{community="ocean"} 1.0' in metrics.text
    assert 'twoi2c_fleet_community_month_attributed_cost{community="ocean"} 30.0' in metrics.text
    assert 'twoi2c_fleet_community_over_budget{community="rocks"} 0.0' in metrics.text  # 20 of 100

    # not an operator (the hub gives bob no access to the service), and no token: nothing
    for path in ("active-users", "recovery", "hubs"):
        assert get(path, headers=bob).status_code == 403
        assert get(path, headers={}).status_code == 403


def test_every_communitys_statement_for_a_month_in_one_batch(operator_hub):
    hub, _ = operator_hub
    alice = {"Authorization": f"token {(hub.login('alice'), hub.user_token('alice'))[1]}"}
    month = last_month(datetime.now(UTC).date())
    api = f"{hub.url}/services/fleet/api/v1/statements"
    answer = requests.get(api, params={"month": month}, headers=alice, timeout=60).json()["data"]
    parts = ("community", "name", "month", "currency", "attributedCost", "sharedCost", "cost", "fee", "recovery")
    assert [tuple(row[p] for p in parts) for row in answer] == [
        ("ocean", "Ocean <Lab>", month, "USD", 30.0, 30.0, 60.0, 40.0, 0.6667),
        ("rocks", "rocks", month, "USD", 20.0, 20.0, 40.0, 10.0, 0.25),
    ]
    assert [row["hubs"] for row in answer] == [
        [{"name": "ocean-hub", "cluster": "east", "attributedCost": 30.0}],
        [{"name": "rocks-hub", "cluster": "east", "attributedCost": 20.0}],
    ]
    csv = requests.get(api, params={"month": month, "format": "csv"}, headers=alice, timeout=60).text.splitlines()
    assert csv[0] == "community,name,month,currency,hubs,attributedCost,sharedCost,cost,fee,recovery"
    assert csv[1] == f"ocean,Ocean <Lab>,{month},USD,ocean-hub,30.0,30.0,60.0,40.0,0.6667"
    # another month: every community, nothing owed
    empty = requests.get(api, params={"month": "2020-01"}, headers=alice, timeout=60).json()["data"]
    assert [(row["community"], row["cost"], row["fee"], row["hubs"]) for row in empty] == [
        ("ocean", 0.0, 0.0, []),
        ("rocks", 0.0, 0.0, []),
    ]
    page = hub.login("alice").get(f"{hub.url}/services/fleet/statements", params={"month": month}, timeout=60)
    assert page.status_code == 200 and page.text.count('class="twoi2c-statement"') == 2
    assert "Ocean &lt;Lab&gt;: statement for" in page.text and "Ocean <Lab>" not in page.text
    assert hub.login("bob").get(f"{hub.url}/services/fleet/statements", timeout=60).status_code == 403


def test_the_cost_of_whole_months_by_community_hub_and_cluster_adds_the_months_up(operator_hub):
    hub, _ = operator_hub
    alice = {"Authorization": f"token {(hub.login('alice'), hub.user_token('alice'))[1]}"}
    api = f"{hub.url}/services/fleet/api/v1/cost"
    this_month = datetime.now(UTC).date().replace(day=1)
    month_before = (this_month - timedelta(days=1)).replace(day=1)
    two_before = (month_before - timedelta(days=1)).replace(day=1)
    two_months = f"{two_before}T00:00:00Z,{this_month}T00:00:00Z"

    def get(**params):
        answer = requests.get(api, params=params, headers=alice, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    # last month: hubs attributed 30 + 20 of the cluster's 100, the 50 left shared 30:20;
    # the month before: no hub had figures, so the cluster's 100 is nobody's (unallocated)
    bill, attributed = {"ocean": 30.0, "rocks": 20.0}, 100.0
    shared = {c: (bill[c] / sum(bill.values())) * (attributed - sum(bill.values())) for c in bill}
    fees = {"ocean": 40.0, "rocks": 10.0}
    by_community = get(window=two_months, aggregate="community")
    assert by_community["months"] == [f"{two_before:%Y-%m}", f"{month_before:%Y-%m}"]
    parts = ("attributedCost", "sharedCost", "cost", "fee", "recovery")
    expected = {
        c: (bill[c], shared[c], bill[c] + shared[c], fees[c], round(fees[c] / (bill[c] + shared[c]), 4)) for c in bill
    }
    fleet_cost = 2 * attributed  # the two months' bills, whoever took them
    expected["fleet"] = (50.0, fleet_cost - 50.0, fleet_cost, 50.0, round(50.0 / fleet_cost, 4))
    assert {r["name"]: tuple(r[p] for p in parts) for r in by_community["data"]} == expected
    # lastmonth (the default) is the recovery API's month
    recovery = requests.get(
        f"{hub.url}/services/fleet/api/v1/recovery",
        params={"month": f"{month_before:%Y-%m}"},
        headers=alice,
        timeout=60,
    ).json()["data"]
    assert get()["data"] == recovery

    by_hub = get(window=two_months, aggregate="hub")["data"]
    assert by_hub == [
        {"name": "ocean-hub", "community": "ocean", "cluster": "east", "attributedCost": 30.0},
        {"name": "rocks-hub", "community": "rocks", "cluster": "east", "attributedCost": 20.0},
        {"name": "fleet", "community": None, "cluster": None, "attributedCost": 50.0},
    ]
    csv = requests.get(
        api, params={"window": two_months, "aggregate": "cluster", "format": "csv"}, headers=alice, timeout=60
    )
    assert csv.text.splitlines() == [
        "name,bill,attributedCost,sharedCost,unallocated,cost",
        "east,200.0,50.0,150.0,100.0,200.0",
        "fleet,200.0,50.0,150.0,100.0,200.0",
    ]

    # a window the fleet cannot answer (it keeps months), in words; and not for bob
    for window in ("7d", f"{month_before}T00:00:00Z,{month_before + timedelta(days=3)}T00:00:00Z"):
        refused = requests.get(api, params={"window": window}, headers=alice, timeout=60)
        assert refused.status_code == 400 and refused.json()["parameter"] == "window"
        assert "whole months" in refused.json()["message"]
    bob = {"Authorization": f"token {(hub.login('bob'), hub.user_token('bob'))[1]}"}
    assert requests.get(api, headers=bob, timeout=60).status_code == 403


def test_the_overview_page_shows_the_two_numbers_to_operators_only(operator_hub):
    hub, _ = operator_hub
    alice = hub.login("alice")
    page = alice.get(f"{hub.url}/services/fleet/", timeout=60)
    assert page.status_code == 200, page.text[:500]
    text = page.text
    assert f'id="weekly-active-users">{dates.number(4, 0)}</p>' in text
    assert f'id="cost-recovery">{dates.number(50, 1)}&nbsp;%</p>' in text
    assert "Ocean &lt;Lab&gt;" in text and "Ocean <Lab>" not in text  # a name from the config, escaped
    assert "never collected" in text and "stale" in text
    sizes = text.split('id="hub-sizes"')[1].split("</table>")[0]
    assert '<th scope="row">0-5</th><td class="text-end">2</td><td class="small">ocean-hub, rocks-hub</td>' in sizes
    over = text.split('id="over-budget"')[1].split("</div>")[0]
    assert f"Ocean &lt;Lab&gt;: {dates.number(30)} of {dates.number(25)} USD" in over and "rocks" not in over
    # a community's own page: its people week by week (once across its hubs), its months
    assert 'href="/services/fleet/communities/ocean"' in text
    ocean = alice.get(f"{hub.url}/services/fleet/communities/ocean", timeout=60)
    assert ocean.status_code == 200 and '<h1 class="h3" id="community-name">Ocean &lt;Lab&gt;</h1>' in ocean.text
    first_week = ocean.text.split('id="weeks"')[1].split("</tr>")[1]
    people = f'<td class="text-end">{dates.number(3, 0)}</td><td class="text-end">{dates.number(4, 0)}</td>'
    assert people in first_week  # ann ben cy; and dee
    assert (
        dates.number(60) in ocean.text
        and f"{dates.number(66.66, 1)}&nbsp;%" in ocean.text
        and "ocean-hub</a> (east)" in ocean.text
    )
    # a hub's own page, linked from both: its people week by week (ann ben cy; and dee), its months
    assert 'href="/services/fleet/hubs/ocean-hub"' in text and 'href="/services/fleet/hubs/ocean-hub"' in ocean.text
    hub_page = alice.get(f"{hub.url}/services/fleet/hubs/ocean-hub", timeout=60)
    assert hub_page.status_code == 200 and '<h1 class="h3" id="hub-name">ocean-hub</h1>' in hub_page.text
    first_week = hub_page.text.split('id="weeks"')[1].split("</tr>")[1]
    assert people in first_week
    last_months = hub_page.text.split('id="months"')[1]
    month = dates.month(last_month(datetime.now(UTC).date()))
    assert f'<th scope="row">{month}</th><td class="text-end">{dates.number(30)}</td>' in last_months
    assert "Ocean &lt;Lab&gt;" in hub_page.text and "never collected" in hub_page.text
    assert alice.get(f"{hub.url}/services/fleet/hubs/nowhere", timeout=60).status_code == 404
    assert alice.get(f"{hub.url}/services/fleet/communities/nobody", timeout=60).status_code == 404
    bob = hub.login("bob")
    assert bob.get(f"{hub.url}/services/fleet/communities/ocean", timeout=60).status_code == 403
    assert bob.get(f"{hub.url}/services/fleet/hubs/ocean-hub", timeout=60).status_code == 403
    refused = bob.get(f"{hub.url}/services/fleet/", timeout=60)
    assert refused.status_code == 403, refused.text[:300]
    assert "Ocean" not in refused.text


def test_a_fleet_view_whose_fleet_config_is_wrong_stops_the_hub_saying_why(tmp_path, capsys):
    from traitlets.config import Config

    from twoi2c_hub import configure

    (tmp_path / "fleet.yaml").write_text("fleet: {name: x}\n")
    config = demo_config()
    config["fleet_view"] = {"config": "fleet.yaml", "operator_groups": ["staff"]}
    (tmp_path / "community.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit):
        configure(Config(), str(tmp_path / "community.yaml"))
    assert "fleet_view.config:" in capsys.readouterr().err


def test_the_service_token_and_secret_variables_reach_the_fleet_service_only_by_name(tmp_path, monkeypatch):
    from traitlets.config import Config

    from twoi2c_hub import configure

    (tmp_path / "fleet.yaml").write_text(
        yaml.safe_dump(
            {
                "fleet": {"name": "x", "secret_env": "TWOI2C_TEST_SECRET"},
                "clusters": [{"name": "c", "monthly_cost": 1}],
                "communities": [{"name": "a", "fee": 1}],
                "hubs": [{"name": "h", "community": "a", "cluster": "c", "url": "https://h.example.org",
                          "token_env": "TWOI2C_TEST_H_TOKEN"}],
            }
        )
    )  # fmt: skip
    config = demo_config()
    config["fleet_view"] = {"config": "fleet.yaml", "operator_groups": ["staff"]}
    (tmp_path / "community.yaml").write_text(yaml.safe_dump(config))
    token = secrets.token_hex(8)
    monkeypatch.setenv("TWOI2C_TEST_H_TOKEN", token)
    monkeypatch.setenv("TWOI2C_TEST_UNRELATED", "no")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the operator's own, given to every service
    c = Config()
    configure(c, str(tmp_path / "community.yaml"))
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "fleet"]
    # the secret is unset here
    assert service["environment"] == {"TWOI2C_TEST_H_TOKEN": token, "MALLOC_ARENA_MAX": "4"}
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == "fleet-operators"]
    assert role["groups"] == ["staff"] and "custom:fleet:read" in role["scopes"]
    assert "access:services!service=fleet" not in c.JupyterHub.get("extra_user_scopes", set())
