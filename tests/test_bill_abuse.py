"""Hostile cloud bills (issue 22, round two): whatever file `twoi2c-hub bill import` is
given, it imports a bill whose costs are finite amounts on days of the years 1970-8999, or
refuses the file in one line on stderr naming the file, the line and the problem: no
traceback, memory bounded whatever the file's size, and nothing written to the database."""

import csv
import gzip
import io
import json
import math
import resource
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from bill_files import AWS, BILLS, GCP, bill_config
from fuzzing import fuzz
from hypothesis import event, given
from hypothesis import strategies as st
from sqlalchemy import select

from twoi2c_hub.accounting import bills
from twoi2c_hub.accounting.db import make_engine, upgrade
from twoi2c_hub.accounting.models import BillLine
from twoi2c_hub.cli import main

# a suite of hostile inputs, each through the importer or the CLI: `make test`, not `make check`
pytestmark = pytest.mark.slow
AWS_HEADER, AWS_ROW = AWS.splitlines()[:2]  # a1,2026-11-02T00:00:00Z,...,AmazonEC2,BoxUsage:m5.xlarge,0.192,USD
GCP_HEADER, GCP_ROW = GCP.splitlines()[0], GCP.splitlines()[2]  # 0X,Compute Engine,...,6.50,USD,[]
AWS_COLUMNS, GCP_COLUMNS = AWS_HEADER.split(","), GCP_HEADER.split(",")


def aws(*rows: str) -> bytes:
    return "\n".join([AWS_HEADER, *rows, ""]).encode()


def gcp(*rows: str) -> bytes:
    return "\n".join([GCP_HEADER, *rows, ""]).encode()


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory):
    """An accounting database at the latest schema, copied for each test (faster than
    migrating each time)."""
    path = tmp_path_factory.mktemp("bills") / "empty.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def importer(tmp_path, empty_database, capsys):
    """Runs `twoi2c-hub bill import` on the given bytes: (exit status, stdout, stderr, the
    bill lines in the database afterwards)."""
    shutil.copy(empty_database, tmp_path / "usage.sqlite")
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    config = bill_config(tmp_path)

    def run(content: bytes | None, name="bill.csv"):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        status = main(["bill", "import", str(path), "--config", str(config), "--url", url])
        out, err = capsys.readouterr()
        return status, out, err, bill_rows(url)

    run.url = url
    return run


def bill_rows(url: str) -> list[tuple]:
    engine = make_engine(url)
    with engine.connect() as connection:
        query = select(BillLine.source, BillLine.day, BillLine.service, BillLine.cost)
        rows = [tuple(r) for r in connection.execute(query)]
    engine.dispose()
    return rows


def assert_refused(status: int, err: str, rows: list, *fragments: str) -> None:
    assert status != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and len(err) < 1000  # a line to read, never the whole field
    for fragment in fragments:
        assert fragment in err
    assert rows == []


def aws_cost(cost: str) -> str:
    return AWS_ROW.replace(",0.192,", f",{cost},")


def gcp_credits(credits: str) -> str:
    return GCP_ROW.replace(",[]", "," + '"' + credits.replace('"', '""') + '"')


HOSTILE = {
    "not-utf8": (
        aws(AWS_ROW, AWS_ROW.replace("BoxUsage", "Box\xa0Usage")).replace(b"\xc2\xa0", b"\xa0"),
        "line 3: not UTF-8",
    ),
    "binary": (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xd8", "line 1: not UTF-8"),
    "compressed": (gzip.compress(AWS.encode()), "line 1: not UTF-8 text (is it compressed?"),
    "nul-bytes": (b"\0" * 5000, "line 1: a NUL byte"),
    "empty": (b"", "line 1: the file is empty"),
    "header-only": (aws(), "no line with a cost"),
    "blank-costs-only": (aws(aws_cost("")), "no line with a cost"),
    "missing-column": (aws(AWS_ROW).replace(b"lineItem/UnblendedCost", b"lineItem/BlendedCost"), "line 1: not an AWS"),
    "duplicate-column": (
        aws(AWS_ROW + ",0.5").replace(b"lineItem/CurrencyCode", b"lineItem/CurrencyCode,lineItem/UnblendedCost", 1),
        "line 1: the column 'lineItem/UnblendedCost' appears twice",
    ),
    "nan-cost": (aws(AWS_ROW, aws_cost("NaN")), "line 3: the cost 'NaN' is not"),
    "inf-cost": (aws(aws_cost("inf")), "line 2: the cost 'inf' is not"),
    "minus-infinity-cost": (aws(aws_cost("-Infinity")), "line 2: the cost '-Infinity' is not"),
    "overflowing-cost": (aws(aws_cost("1e309")), "line 2: the cost '1e309' is not"),
    "absurd-cost": (aws(aws_cost("2e12")), "line 2: the cost '2e12' is not"),
    "absurd-credit": (aws(aws_cost("-2e12")), "line 2: the cost '-2e12' is not"),
    "nan-gcp-cost": (gcp(GCP_ROW.replace(",6.50,", ",nan,")), "line 2: the cost 'nan' is not"),
    "nan-gcp-credit": (gcp(gcp_credits('[{"amount": NaN}]')), "line 2: the credit nan is not"),
    "infinite-gcp-credit": (gcp(gcp_credits('[{"amount": "1e999"}]')), "line 2: the credit '1e999' is not"),
    "deeply-nested-credits": (gcp(gcp_credits("[" * 100_000)), "line 2: the credits '[[[["),
    "year-9999": (aws(AWS_ROW.replace("2026-11-02T00", "9999-12-31T23")), "line 2: the date"),
    "year-9999-behind-utc": (
        aws(AWS_ROW.replace("2026-11-02T00:00:00Z", "9999-12-31T23:00:00-14:00")),
        "line 2: the date",
    ),
    "year-1": (aws(AWS_ROW.replace("2026-11-02T00", "0001-01-01T00")), "line 2: the date"),
    "before-1970": (gcp(GCP_ROW.replace("2026-11-02 01:00:00 UTC", "1969-12-31 23:59:59 UTC", 1)), "line 2: the date"),
    "huge-date": (aws(AWS_ROW.replace("2026-11-02T00:00:00Z", "2026" + "x" * 100_000, 1)), "is not an ISO 8601"),
    "huge-currency": (aws(AWS_ROW.replace(",USD", "," + "E" * 100_000)), "line 2: the currency is 'EEE"),
    "field-over-csv-limit": (aws(AWS_ROW.replace("AmazonEC2", "E" * 200_000)), "line 2: field larger than"),
    "row-over-limit": (aws(AWS_ROW + ",x" * 600_000), "line 2: a row longer than 1,048,576 bytes"),
    "row-over-limit-on-many-lines": (aws('a1,"' + '\n","'.join(["x"] * 300_000) + '"'), "line 2: a row longer"),
    "line-over-limit-without-newline": (aws(AWS_ROW).rstrip(b"\n") + b"E" * 2_000_000, "line 2: a row longer"),
}


@pytest.mark.parametrize("content, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_bill_is_refused_in_one_line_and_writes_nothing(importer, content, message):
    status, _, err, rows = importer(content)
    assert_refused(status, err, rows, "bill.csv: ", message)


def test_a_directory_or_a_missing_file_is_refused_in_one_line(importer, tmp_path):
    (tmp_path / "a-directory").mkdir()
    status, _, err, rows = importer(None, "a-directory")
    assert_refused(status, err, rows, "a-directory", "Is a directory")
    status, _, err, rows = importer(None, "missing.csv")
    assert_refused(status, err, rows, "missing.csv", "No such file")


def test_more_day_and_service_lines_than_the_limit_is_refused(importer):
    days = [(date(2020, 1, 1) + timedelta(days=n)).isoformat() for n in range(1000)]
    services = [f"S{n}" for n in range(bills.MAX_BILL_LINES // 1000 + 1)]
    rows = [
        aws_cost("1").replace("2026-11-02", day).replace("AmazonEC2", service) for day in days for service in services
    ]
    status, _, err, stored = importer(aws(*rows))
    assert_refused(status, err, stored, f"more than {bills.MAX_BILL_LINES:,} day-and-service lines")


def test_a_file_past_the_size_limit_is_refused(importer, monkeypatch):
    monkeypatch.setattr(bills, "MAX_FILE_BYTES", 2000)
    status, _, err, rows = importer(aws(*[AWS_ROW] * 30))
    assert_refused(status, err, rows, "larger than 2,000 bytes")


def test_credits_and_refunds_are_negative_lines_and_still_imported(importer):
    """AWS CUR writes credits, refunds and savings-plan negations as negative costs; the GCP
    export writes its credits negative in `credits`, and some adjustments as a negative cost."""
    status, out, err, rows = importer(aws(AWS_ROW, aws_cost("-0.092").replace("a1,", "a9,")))
    assert status == 0, err
    assert [r[3] for r in rows] == [pytest.approx(0.1)]
    status, out, err, rows = importer((BILLS / "gcp-billing-export.csv").read_bytes())
    assert status == 0, err
    assert sum(r[3] for r in rows if r[0] == "gcp") == pytest.approx(20.0 - 2.5 + 6.5 + 3.0)


def test_a_bom_and_windows_line_ends_are_read(importer):
    status, out, err, rows = importer(b"\xef\xbb\xbf" + (BILLS / "aws-cur.csv").read_bytes().replace(b"\n", b"\r\n"))
    assert status == 0, err
    assert "aws bill, 3 day-and-service lines over 2 days, 14.26 USD" in out


def test_two_services_whose_names_agree_on_the_first_255_characters_are_one_line(importer):
    long_name = "S" * 255
    first, second = (
        aws_cost("1").replace("AmazonEC2", long_name + "a"),
        aws_cost("2").replace("AmazonEC2", long_name + "b"),
    )
    status, out, err, rows = importer(aws(first, second))
    assert status == 0, err
    assert [(r[2], r[3]) for r in rows] == [(long_name, 3.0)]


# --- memory: the command runs in 400 MB of address space whatever the file ------------------

ADDRESS_SPACE = 400 * 2**20


def limited_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.mark.parametrize("source", ["a 300 MB field", "/dev/zero"])
def test_a_huge_field_or_an_endless_file_is_refused_in_bounded_memory(tmp_path, source):
    config = bill_config(tmp_path)
    if source == "/dev/zero":
        path = "/dev/zero"
    else:
        path = tmp_path / "huge.csv"
        with open(path, "wb") as file:
            file.write(aws(AWS_ROW).rstrip(b"\n") + b",")
            for _ in range(300):
                file.write(b"E" * 2**20)
    command = [sys.executable, "-m", "twoi2c_hub.cli", "bill", "import", str(path), "--config", str(config)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=limited_memory)
    finally:
        if source != "/dev/zero":
            path.unlink()  # 300 MB: not left in pytest's temporary directories
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert "a row longer than" in result.stderr or "a NUL byte" in result.stderr
    assert not (tmp_path / "usage.sqlite").exists()


# --- any rows: a bill with finite costs, or one line and nothing written -------------------

printable = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
when = st.one_of(
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)).map(lambda d: d.isoformat() + "Z"),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)).map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC")),
)
# each column: what an export writes (credits and refunds negative), and anything else
VALID = {
    "date": when,
    "amount": st.floats(-1e6, 1e6).map(repr),
    "currency": st.just("USD"),
    "service": st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=300),
    "credits": st.one_of(st.just(""), st.lists(st.fixed_dictionaries({"amount": st.floats(-1e6, 0)})).map(json.dumps)),
}
ANYTHING = {
    "date": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), printable),
    "amount": st.one_of(
        st.floats().map(repr),
        st.floats().map(str),
        st.sampled_from(["NaN", "-inf", "Infinity", "1e309", "-2e12", "", " 3.5 ", "0x10", "1_000"]),
        printable,
    ),
    "currency": printable,
    "service": printable,
    "credits": st.one_of(
        st.lists(st.fixed_dictionaries({"amount": st.floats()}), max_size=3).map(json.dumps), printable
    ),
}
LAST_DAY = (datetime(9000, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days


@st.composite
def exports(draw) -> bytes:
    """An AWS or GCP export of a few rows, one value of which may be anything."""
    source = draw(st.sampled_from(sorted(bills.FORMATS)))
    columns = dict(zip(("date", "amount", "currency", "service"), bills.FORMATS[source], strict=True))
    if source == "gcp":
        columns["credits"] = "credits"
    rows = [{columns[f]: draw(VALID[f]) for f in columns} for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        field = draw(st.sampled_from(sorted(columns)))
        draw(st.sampled_from(rows))[columns[field]] = draw(ANYTHING[field])
    out = io.StringIO()
    writer = csv.DictWriter(out, AWS_COLUMNS if source == "aws" else GCP_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@fuzz(30)
@given(exports())
def test_any_rows_are_a_bill_with_finite_costs_or_one_line_and_nothing_written(importer, content):
    before = bill_rows(importer.url)  # the examples share the database
    status, out, err, rows = importer(content)
    event("imported" if status == 0 else "refused")
    if status == 0:
        assert err == "" and "bill," in out
        assert all(math.isfinite(r[3]) and abs(r[3]) <= 16 * bills.MAX_AMOUNT for r in rows)  # 4 rows, 3 credits
        assert all(0 <= r[1] < LAST_DAY for r in rows)
    else:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "bill.csv: " in err
        assert rows == before
