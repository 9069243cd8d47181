"""Home storage cost: home directories measured on this machine or read from a
Prometheus-style metric, charged per day at the month's GiB-month price, recomputed here."""

import asyncio
import json
import threading
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from twoi2c_hub.accounting.costs import CostBasis
from twoi2c_hub.accounting.events import GroupsChanged
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.accounting.recording import record
from twoi2c_hub.accounting.storage import STORAGE_PROFILE, record_home_sizes, storage_cost
from twoi2c_hub.catalog import INSTANCE_TYPES, PriceTable, Pricing
from twoi2c_hub.services.cost.storage import measure_local, measure_prometheus

GiB = 1024**3
NOV = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
PRICES = Pricing("USD", (PriceTable(date(2026, 1, 1), cpu_core_hour=0.03, home_gib_month=0.30),))


def test_local_homes_are_measured_on_disk_and_named_by_their_person(tmp_path):
    (tmp_path / "alice-40example").mkdir()
    (tmp_path / "alice-40example" / "data.bin").write_bytes(b"x" * 3_000_000)
    (tmp_path / "bob" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "bob" / "deep" / "er" / "notes.txt").write_bytes(b"y" * 10_000)
    (tmp_path / "not-a-home.txt").write_text("skipped")
    sizes = measure_local(str(tmp_path))
    assert set(sizes) == {"alice@example", "bob"}
    assert 3_000_000 <= sizes["alice@example"] < 3_000_000 + 64 * 1024
    assert 10_000 <= sizes["bob"] < 10_000 + 64 * 1024


def test_sizes_from_a_prometheus_query():
    asked = []

    class Prometheus(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"directory": "alice-40example"}, "value": [1795000000, "5368709120"]},
                {"metric": {"directory": "bob"}, "value": [1795000000, "1073741824"]},
            ]}}  # fmt: skip
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            """No access log on the test's output (http.server writes one per request)."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Prometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        query = "max by (directory) (dirsize_total_size_bytes)"
        sizes = asyncio.run(measure_prometheus(f"http://127.0.0.1:{server.server_port}", query, "directory"))
    finally:
        server.shutdown()
    assert sizes == {"alice@example": 5 * GiB, "bob": GiB}
    assert asked == ["/api/v1/query?query=max+by+%28directory%29+%28dirsize_total_size_bytes%29"]


def test_storage_is_charged_per_day_by_person_group_and_profile(db):
    # ann: 10 GiB on Nov 3 and (largest measure of the day) 20 GiB on Nov 4; in two groups from Nov 4
    record_home_sizes(db, {"ann": 10 * GiB, "ben": 2 * GiB}, NOV + 2 * DAY_MS + HOUR_MS)
    record_home_sizes(db, {"ann": 20 * GiB}, NOV + 3 * DAY_MS + HOUR_MS)
    record_home_sizes(db, {"ann": 5 * GiB}, NOV + 3 * DAY_MS + 2 * HOUR_MS)  # smaller: the day keeps 20
    record(db, [GroupsChanged("ann", NOV + 3 * DAY_MS, groups=frozenset({"a", "b"}))])
    db.commit()
    basis = CostBasis(PRICES, INSTANCE_TYPES, group_rule="split")
    day_price = 0.30 / 30  # November has 30 days
    month = storage_cost(db, basis, NOV, NOV + 30 * DAY_MS, "user")
    assert month == pytest.approx({"ann": (10 + 20) * day_price, "ben": 2 * day_price})
    # half of Nov 4 only
    half = storage_cost(db, basis, NOV + 3 * DAY_MS + 12 * HOUR_MS, NOV + 4 * DAY_MS, "user")
    assert half == pytest.approx({"ann": 20 * day_price / 2})
    by_group = storage_cost(db, basis, NOV, NOV + 30 * DAY_MS, "group")
    # Nov 3: ann in no group; Nov 4: split between a and b
    assert by_group == pytest.approx({"": (10 + 2) * day_price, "a": 10 * day_price, "b": 10 * day_price})
    assert storage_cost(db, basis, NOV, NOV + 30 * DAY_MS, "profile") == pytest.approx(
        {STORAGE_PROFILE: 32 * day_price}
    )


def test_the_cost_report_adds_storage_to_the_total(db):
    from twoi2c_hub.accounting.cost_reports import cost_allocation

    record_home_sizes(db, {"ann": 3 * GiB}, NOV + HOUR_MS)
    basis = CostBasis(PRICES, INSTANCE_TYPES)
    (row,) = cost_allocation(db, basis, NOV, NOV + DAY_MS, "user", NOV + 40 * DAY_MS)
    assert row["name"] == "ann" and row["pv_cost"] == pytest.approx(3 * 0.30 / 30)
    assert row["total_cost"] == pytest.approx(row["cpu_cost"] + row["ram_cost"] + row["gpu_cost"] + row["pv_cost"])
