"""Cloud bills (AWS CUR and GCP billing export CSVs) and the monthly statement, on SQLite and
PostgreSQL: the parts add up to the bill, the fee is the configured one, and bad files are
refused with the line that is wrong."""

import io
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from bill_files import AWS, GCP, bill_config
from cost_figures import PRICING, expected, record_all

from twoi2c_hub.accounting.bills import BillError, Fee, read_bill, statement, store_bill
from twoi2c_hub.accounting.costs import CostBasis
from twoi2c_hub.accounting.events import ServerStart
from twoi2c_hub.accounting.models import DAY_MS, HOUR_MS
from twoi2c_hub.catalog import INSTANCE_TYPES, GiB

BASIS = CostBasis(PRICING, INSTANCE_TYPES)
NOVEMBER = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
DECEMBER = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)


def test_an_aws_cost_and_usage_report_is_summed_per_day_and_service():
    source, totals = read_bill(io.BytesIO(AWS.encode()), "USD")
    day = NOVEMBER // DAY_MS
    assert source == "aws"
    assert totals == pytest.approx(
        {(day + 1, "AmazonEC2"): 0.384, (day + 1, "AmazonEFS"): 1.25, (day + 14, "AmazonEC2"): 12.624}
    )


def test_a_gcp_billing_export_adds_its_credits():
    source, totals = read_bill(io.BytesIO(GCP.encode()), "USD")
    day = NOVEMBER // DAY_MS
    assert source == "gcp"
    assert totals == pytest.approx({(day + 1, "Compute Engine"): 20.0 - 2.5 + 6.5, (day + 19, "Cloud Filestore"): 3.0})


@pytest.mark.parametrize(
    "text, message",
    [
        ("date,amount\n2026-11-01,3\n", "not an AWS CUR or GCP billing export"),
        (AWS.replace("0.192,USD", "0.192,EUR", 1), "line 2: the currency is 'EUR', the prices' is 'USD'"),
        (
            GCP.replace("2026-11-20 00:00:00 UTC", "yesterday"),
            "line 4: the date 'yesterday' is not an ISO 8601 date and time",
        ),
        (GCP.replace(",6.50,", ",six,"), "line 3: the cost 'six' is not an amount from -1e+12 to 1e+12"),
    ],
    ids=["unknown-columns", "currency", "date", "number"],
)
def test_a_bad_bill_is_refused_with_the_line(text, message):
    with pytest.raises(BillError, match=re.escape(message)):
        read_bill(io.BytesIO(text.encode()), "USD")


def gpu(user, start, hours):
    s = ServerStart(user, "", start, profile="gpu", cpu_guarantee=3.5, mem_guarantee_bytes=14 * GiB, gpu_count=1,
                    gpu_type="nvidia-tesla-t4", groups=["students"])  # fmt: skip
    return s, start + hours * HOUR_MS


def test_the_statement_puts_the_bill_beside_the_attributed_cost_and_the_fee(db):
    sessions = [gpu("bob", NOVEMBER + DAY_MS, 6), gpu("ann", NOVEMBER + 9 * DAY_MS, 8)]
    record_all(db, sessions)
    now = DECEMBER + DAY_MS
    attributed = sum(sum(v) for v in expected(sessions, NOVEMBER, DECEMBER, "user", now=now).values())
    fee = Fee(monthly=100.0, percent=10.0)

    without_bill = statement(db, BASIS, 2026, 11, fee, now)
    assert without_bill["bill"] is None and without_bill["cost_recovery"] is None
    assert without_bill["cloud_cost"] == pytest.approx(attributed)
    assert without_bill["fee"] == pytest.approx(100 + 0.1 * attributed)

    source, totals = read_bill(io.BytesIO(GCP.encode()), "USD")
    store_bill(db, source, totals, "USD", now)
    bill = 20.0 - 2.5 + 6.5 + 3.0
    s = statement(db, BASIS, 2026, 11, fee, now)
    assert s["bill"] == pytest.approx(bill)
    assert s["attributed"] == pytest.approx(attributed)
    assert s["attributed"] + s["unattributed"] == pytest.approx(s["bill"])  # the parts add up to the bill
    assert s["fee"] == pytest.approx(100 + 0.1 * bill)
    assert s["total"] == pytest.approx(bill + s["fee"])
    assert s["cost_recovery"] == pytest.approx(attributed / bill)
    assert s["bill_by_service"] == pytest.approx({"Compute Engine": 24.0, "Cloud Filestore": 3.0})
    assert sum(s["by_group"].values()) == pytest.approx(attributed)

    # importing the same days again replaces them: nothing is counted twice
    store_bill(db, source, totals, "USD", now)
    assert statement(db, BASIS, 2026, 11, fee, now)["bill"] == pytest.approx(bill)
    assert statement(db, BASIS, 2026, 10, fee, now)["bill"] is None


@pytest.mark.slow
def test_the_bill_import_command(tmp_path):
    bill = tmp_path / "cur.csv"
    bill.write_text(AWS)
    config = bill_config(tmp_path)
    command = [sys.executable, "-m", "twoi2c_hub.cli", "bill", "import", str(bill), "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "aws bill, 3 day-and-service lines over 2 days, 14.26 USD" in result.stdout
    bill.write_text(AWS.replace("USD", "EUR"))
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "line 2: the currency is 'EUR', the prices' is 'USD'" in result.stderr
