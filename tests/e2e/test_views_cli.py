"""The read-model commands as a user runs them: `project`, `replay`, `holds`, `analytics
cancellations`, `order status`, `views sql`; text, --json and --csv; a chart; and every
mistake as one line and an exit code (2: the command line was wrong; 1: an error)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections import PROJECTORS
from projections.cancellations import DIMENSIONS
from tests import builders as b
from tests.conftest import postgres_answers
from tests.e2e.test_cli import assert_one_line_error, orderlog, write_lines
from tests.read_models import fresh_postgres_database

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def history() -> list[dict[str, Any]]:
    """Three SKUs: A counted 5 then 2 dispatched; B counted 1 and 3 held (oversold); C never counted."""
    so4 = b.submitted("SO-4", lines=[("SKU-C", 1, 900)], customer_id="C-3", at="2026-03-02T12:00:00Z")
    so4["data"]["channel"] = "app"
    so2 = b.submitted("SO-2", lines=[("SKU-A", 1, 500)], customer_id="C-2", at="2026-03-01T11:00:00Z")
    so2["data"]["channel"] = "app"
    return [
        b.stock_counted("SKU-A", 5, at="2026-03-01T08:00:00Z"),
        b.stock_counted("SKU-B", 1, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-A", 2, 500), ("SKU-B", 3, 500)], event_id="so1", at="2026-03-01T10:00:00Z"),
        b.paid("SO-1", 2500, event_id="so1-paid", at="2026-03-01T10:10:00Z"),
        so2,
        b.cancelled("SO-2", "CHANGED_MIND", "customer", at="2026-03-01T11:20:00Z"),
        b.dispatched("SO-1", [("SKU-A", 2)], event_id="so1-sent", at="2026-03-02T09:00:00Z"),
        b.submitted("SO-3", lines=[("SKU-B", 1, 500)], at="2026-03-02T10:00:00Z"),
        so4,
        b.paid("SO-4", 900, "P-4", at="2026-03-02T12:05:00Z"),  # every open order paid: nothing times out
        b.cancelled("SO-3", "OUT_OF_STOCK", "merchant", at="2026-03-03T10:00:00Z"),
    ]


HOLDS = {
    "skus": [
        {
            "sku": "SKU-B",
            "held": 3,
            "on_hand": 1,
            "available": -2,
            "counted": 1,
            "counted_at": "2026-03-01T08:00:00.000Z",
            "dispatched_since_count": 0,
        },
        {
            "sku": "SKU-A",
            "held": 0,
            "on_hand": 3,
            "available": 3,
            "counted": 5,
            "counted_at": "2026-03-01T08:00:00.000Z",
            "dispatched_since_count": 2,
        },
        {
            "sku": "SKU-C",
            "held": 1,
            "on_hand": None,
            "available": None,
            "counted": None,
            "counted_at": None,
            "dispatched_since_count": 0,
        },
    ],
    "orders": [],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the history above and its views, projected by `orderlog project --once`."""
    directory = tmp_path_factory.mktemp("views-cli")
    published = orderlog("publish", str(write_lines(directory / "history.jsonl", *history())), cwd=directory)
    assert published.returncode == 0, published.stderr
    projected = orderlog("project", "--once", cwd=directory)
    assert projected.returncode == 0, projected.stderr
    return directory


@pytest.fixture
def store(built: Path, tmp_path: Path) -> Path:
    """A copy of the built store and views, for a test that changes them."""
    copy = tmp_path / "store"
    shutil.copytree(built, copy)
    return copy


def ok(*args: str, cwd: Path) -> str:
    result = orderlog(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------ project and replay


def test_project_reports_every_projector_with_its_watermark_and_lag(store: Path) -> None:
    write_lines(store / "more.jsonl", b.submitted("SO-5", at="2026-03-04T10:00:00Z"))
    assert orderlog("publish", "more.jsonl", cwd=store).returncode == 0

    reports = ok("project", "--once", cwd=store).splitlines()
    assert reports[: len(PROJECTORS)] == [
        f"{name}: 1 record(s) folded, watermark 2026-03-04T10:00:00.000Z, lag 0" for name in PROJECTORS
    ]
    assert ok("project", "status", cwd=store).splitlines() == [
        "status: 0 record(s) folded, watermark 2026-03-04T10:00:00.000Z, lag 0"
    ]


def test_project_only_the_projectors_named(tmp_path: Path) -> None:
    assert orderlog("publish", str(write_lines(tmp_path / "h.jsonl", *history())), cwd=tmp_path).returncode == 0
    assert ok("project", "holds", cwd=tmp_path).splitlines() == [
        "holds: 11 record(s) folded, watermark 2026-03-03T10:00:00.000Z, lag 0"
    ]
    assert json.loads(ok("holds", "--json", cwd=tmp_path)) == HOLDS
    assert_one_line_error(
        orderlog("order", "status", "SO-1", cwd=tmp_path),
        "the status view has not been built",
        "run `orderlog project status`",
    )
    assert_one_line_error(
        orderlog("analytics", "cancellations", cwd=tmp_path),
        "the cancellations view has not been built",
    )


def test_replay_rebuilds_the_same_views_and_says_they_are_live(store: Path) -> None:
    before = ok("holds", "--json", cwd=store)
    assert ok("replay", cwd=store).splitlines()[-1] == "rebuilt views in orderlog.views.db: now live"
    assert ok("holds", "--json", cwd=store) == before
    generations = json.loads(
        ok(
            "views",
            "sql",
            "SELECT * FROM view_generations WHERE projector IN ('holds', 'cancellations', 'status') "
            "ORDER BY projector, generation",
            "--json",
            cwd=store,
        )
    )
    assert [(row["projector"], row["generation"], row["live"]) for row in generations] == [
        ("cancellations", 1, -1),
        ("cancellations", 2, 1),
        ("holds", 1, -1),
        ("holds", 2, 1),
        ("status", 1, -1),
        ("status", 2, 1),
    ]


def test_replay_until_builds_the_views_as_they_stood_then_beside_the_live_ones(store: Path) -> None:
    output = ok("replay", "--until", "2026-03-01T12:00:00Z", cwd=store)
    past = store / "orderlog.views-until-20260301T120000000Z.db"
    assert output.splitlines()[-1] == f"rebuilt views in {past.name}: now live"

    then = json.loads(ok("--views", str(past), "holds", "--json", cwd=store))
    assert [(row["sku"], row["held"], row["on_hand"], row["available"]) for row in then["skus"]] == [
        ("SKU-B", 3, 1, -2),
        ("SKU-A", 2, 5, 3),  # SO-1's two units not dispatched yet; SO-2's hold released at 11:20
    ]
    status_then = json.loads(ok("--views", str(past), "order", "status", "SO-1", "--json", cwd=store))
    assert status_then["status"] == "PENDING_SHIPMENT"
    analytics_then = json.loads(ok("--views", str(past), "analytics", "cancellations", "--json", cwd=store))
    assert (analytics_then["submitted"], analytics_then["cancelled"]) == (2, 1)
    assert json.loads(ok("holds", "--json", cwd=store)) == HOLDS  # the live views are untouched


# ------------------------------------------------------------ holds


def test_holds_as_text_lists_oversold_skus_first(built: Path) -> None:
    lines = ok("holds", cwd=built).splitlines()
    assert lines[0].split() == [
        "sku",
        "held",
        "on_hand",
        "available",
        "counted",
        "counted_at",
        "dispatched_since_count",
    ]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["SKU-B", "3", "1", "-2"],
        ["SKU-A", "0", "3", "3"],
        ["SKU-C", "1", "-", "-"],
    ]


def test_holds_as_json_and_csv(built: Path) -> None:
    assert json.loads(ok("holds", "--json", cwd=built)) == HOLDS
    assert rows_of(ok("holds", "--csv", cwd=built)) == [
        {name: "" if value is None else str(value) for name, value in row.items()} for row in HOLDS["skus"]
    ]


def test_holds_of_one_sku_name_the_orders_holding_it(built: Path) -> None:
    found = json.loads(ok("holds", "--sku", "SKU-B", "--json", cwd=built))
    assert found == {
        "skus": [HOLDS["skus"][0]],
        "orders": [{"order_id": "SO-1", "sku": "SKU-B", "ordered": 3, "held": 3, "dispatched": 0, "released": 0}],
    }
    text = ok("holds", "--sku", "SKU-B", cwd=built)
    assert "order_id" in text and "SO-1" in text


def test_holds_of_one_order(built: Path) -> None:
    found = json.loads(ok("holds", "--order", "SO-1", "--json", cwd=built))
    assert [row["sku"] for row in found["skus"]] == ["SKU-B", "SKU-A"]
    assert found["orders"] == [
        {"order_id": "SO-1", "sku": "SKU-A", "ordered": 2, "held": 0, "dispatched": 2, "released": 0},
        {"order_id": "SO-1", "sku": "SKU-B", "ordered": 3, "held": 3, "dispatched": 0, "released": 0},
    ]
    assert rows_of(ok("holds", "--order", "SO-1", "--csv", cwd=built)) == [
        {name: str(value) for name, value in row.items()} for row in found["orders"]
    ]
    assert ok("holds", "--sku", "SKU-NONE", cwd=built).strip() == "no SKU has a hold or a count yet"


# ------------------------------------------------------------ cancellation analytics


def test_cancellations_as_text_headline_and_groups(built: Path) -> None:
    text = ok("analytics", "cancellations", cwd=built)
    headline = dict(line.split(None, 1) for line in text.splitlines()[:3])
    assert headline == {"since": "-", "until": "-", "submitted": "4"}
    assert "cancellation_rate     0.5" in text
    assert "CNY  CNY 10.00" in text  # SO-2 (5.00) and SO-3 (5.00)
    groups = text.split("by reason:\n", 1)[1].splitlines()
    assert groups[0].split() == ["reason", "cancelled", "share", "submitted", "rate"]
    assert [line.split() for line in groups[1:]] == [
        ["CHANGED_MIND", "1", "0.5", "-", "0.25"],
        ["OUT_OF_STOCK", "1", "0.5", "-", "0.25"],
    ]


def test_cancellations_as_json_for_every_dimension(built: Path) -> None:
    expected_groups = {
        "reason": ["CHANGED_MIND", "OUT_OF_STOCK"],
        "category": ["customer", "merchant"],
        "channel": ["app", "web"],
        "sku": ["SKU-A", "SKU-B"],
        "day": ["2026-03-01", "2026-03-03"],
        "stage": ["before_payment"],
    }
    assert set(expected_groups) == set(DIMENSIONS)
    for by, keys in expected_groups.items():
        found = json.loads(ok("analytics", "cancellations", "--by", by, "--json", cwd=built))
        assert (found["by"], found["submitted"], found["cancelled"], found["cancellation_rate"]) == (by, 4, 2, 0.5)
        assert [group[by] for group in found["groups"]] == keys, by
        assert found["time_to_cancel"] == {"< 1 h": 1, "1-24 h": 0, "1-3 d": 1, "> 3 d": 0}
        assert found["cancelled_value"] == {"CNY": 1000}


def test_cancellations_as_csv_are_the_groups(built: Path) -> None:
    assert rows_of(ok("analytics", "cancellations", "--by", "channel", "--csv", cwd=built)) == [
        {"channel": "app", "cancelled": "1", "share": "0.5", "submitted": "2", "rate": "0.5"},
        {"channel": "web", "cancelled": "1", "share": "0.5", "submitted": "2", "rate": "0.5"},
    ]


def test_cancellations_window_in_event_time(built: Path) -> None:
    found = json.loads(
        ok(
            "analytics",
            "cancellations",
            "--since",
            "2026-03-01T11:20:00Z",  # SO-2's cancellation: in
            "--until",
            "2026-03-03T10:00:00+00:00",  # SO-3's cancellation: out
            "--json",
            cwd=built,
        )
    )
    assert (found["since"], found["until"]) == ("2026-03-01T11:20:00.000Z", "2026-03-03T10:00:00.000Z")
    assert (found["submitted"], found["cancelled"]) == (2, 1)  # SO-3 and SO-4; SO-2
    assert [group["reason"] for group in found["groups"]] == ["CHANGED_MIND"]


@pytest.mark.parametrize(
    ("since", "until"),
    [("2026-03-03T00:00:00Z", "2026-03-01T00:00:00Z"), ("2026-03-01T08:00:00+08:00", "2026-03-01T00:00:00Z")],
    ids=["swapped", "the same moment in two zones"],
)
def test_a_cancellations_window_that_ends_before_it_starts_is_refused(built: Path, since: str, until: str) -> None:
    result = orderlog("analytics", "cancellations", "--since", since, "--until", until, cwd=built)
    assert_one_line_error(result, "the window is empty: 2026-03-0")
    assert result.returncode == 2 and result.stdout == ""


def test_cancellations_plot_writes_a_png_chart(built: Path, tmp_path: Path) -> None:
    chart = tmp_path / "cancellations.png"
    result = orderlog("analytics", "cancellations", "--by", "sku", "--plot", str(chart), cwd=built)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"chart written to {chart}"
    assert "by sku:" in result.stdout
    image = chart.read_bytes()
    assert image[:8] == PNG_SIGNATURE
    assert len(image) > 10_000
    width, height = struct.unpack(">II", image[16:24])  # the IHDR chunk
    assert (width, height) == (1080, 360)  # 9 x 3 inches at 120 dpi


def test_cancellations_plot_into_a_missing_directory_is_one_line(built: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "chart.png"
    assert_one_line_error(orderlog("analytics", "cancellations", "--plot", str(missing), cwd=built), "does not exist")
    assert not missing.exists()


# ------------------------------------------------------------ order status


def test_order_status_as_text(built: Path) -> None:
    text = ok("order", "status", "SO-1", cwd=built)
    pairs = (line.split(None, 1) for line in text.splitlines() if not line.startswith(" "))
    fields = {pair[0]: pair[1] for pair in pairs if len(pair) == 2}
    assert (fields["status"], fields["financial_status"], fields["total"]) == ("PARTIALLY_SHIPPED", "PAID", "CNY 25.00")
    timeline = text.split("timeline:\n", 1)[1].split("holds:\n", 1)[0].splitlines()
    assert timeline[0].split() == ["seq", "at", "status", "financial_status", "event_type", "event_id"]
    assert [line.split()[2] for line in timeline[1:]] == ["PENDING_PAYMENT", "PENDING_SHIPMENT", "PARTIALLY_SHIPPED"]
    assert "holds:" in text and "lines:" in text


def test_order_status_as_json_and_csv(built: Path) -> None:
    found = json.loads(ok("order", "status", "SO-1", "--json", cwd=built))
    assert (found["order_id"], found["status"], found["paid"], found["units_shipped"]) == (
        "SO-1",
        "PARTIALLY_SHIPPED",
        2500,
        2,
    )
    assert found["lines"] == [
        {"sku": "SKU-A", "ordered": 2, "shipped": 2, "delivered": 0},
        {"sku": "SKU-B", "ordered": 3, "shipped": 0, "delivered": 0},
    ]
    assert [row["event_id"] for row in found["timeline"]] == ["so1", "so1-paid", "so1-sent"]
    assert [row["held"] for row in found["holds"]] == [0, 3]
    assert rows_of(ok("order", "status", "SO-1", "--csv", cwd=built)) == [
        {name: str(value) for name, value in row.items()} for row in found["timeline"]
    ]


def test_order_status_of_an_unknown_order_is_one_line(built: Path) -> None:
    result = orderlog("order", "status", "SO-404", cwd=built)
    assert result.returncode == 1
    assert_one_line_error(result, "order SO-404 is not in the status view")


# ------------------------------------------------------------ views sql


def test_views_sql_without_a_query_lists_the_tables_and_how_to_connect(built: Path) -> None:
    text = ok("views", "sql", cwd=built)
    assert text.splitlines()[0] == f"connect read-only: sqlite3 'file:{built / 'orderlog.views.db'}?mode=ro'"
    for table in ("holds_by_sku", "holds_by_order", "cancellation_orders", "order_status", "order_timeline"):
        assert f"\n{table} " in text
    assert "not built yet" not in text


def test_views_sql_answers_queries_as_text_json_and_csv(built: Path) -> None:
    query = "SELECT sku, available FROM holds_by_sku WHERE available IS NOT NULL ORDER BY sku"
    assert [line.split() for line in ok("views", "sql", query, cwd=built).splitlines()] == [
        ["sku", "available"],
        ["SKU-A", "3"],
        ["SKU-B", "-2"],
    ]
    assert json.loads(ok("views", "sql", query, "--json", cwd=built)) == [
        {"sku": "SKU-A", "available": 3},
        {"sku": "SKU-B", "available": -2},
    ]
    assert ok("views", "sql", query, "--csv", cwd=built) == "sku,available\nSKU-A,3\nSKU-B,-2\n"
    assert ok("views", "sql", "SELECT 1 WHERE 0", cwd=built).strip() == "(no rows)"


WRITES = [
    "DELETE FROM holds_by_sku",
    "DELETE FROM holds_by_sku_g1",
    "UPDATE order_status_g1 SET status = 'SHIPPED'",
    "DROP VIEW holds_by_sku",
    "CREATE TABLE notes (text TEXT)",
    "INSERT INTO view_generations VALUES ('x', 9, '', NULL, 1)",
    "PRAGMA query_only = 0",
]


def test_views_sql_refuses_to_write(built: Path) -> None:
    everything = "SELECT (SELECT COUNT(*) FROM holds_by_sku), (SELECT COUNT(*) FROM order_status), " + (
        "(SELECT COUNT(*) FROM view_generations), (SELECT group_concat(status) FROM order_status)"
    )
    before = ok("views", "sql", everything, "--csv", cwd=built)
    for statement in WRITES[:-1]:
        result = orderlog("views", "sql", statement, cwd=built)
        assert result.returncode == 1, statement
        assert_one_line_error(result, "query refused")
    assert ok("views", "sql", WRITES[-1], cwd=built).strip() == "(no rows)"  # for its own connection only
    assert ok("views", "sql", everything, "--csv", cwd=built) == before
    assert ok("views", "sql", "SELECT name FROM sqlite_master WHERE name = 'notes'", cwd=built).strip() == "(no rows)"


def test_views_sql_creates_no_file(built: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    result = orderlog("views", "sql", f"ATTACH DATABASE '{elsewhere}' AS elsewhere", cwd=built)
    assert not elsewhere.exists()
    assert result.returncode == 1


def test_views_sql_with_bad_sql_is_one_line(built: Path) -> None:
    assert_one_line_error(orderlog("views", "sql", "SELEC * FROM holds_by_sku", cwd=built), "query refused", "syntax")
    assert_one_line_error(orderlog("views", "sql", "SELECT * FROM no_such_view", cwd=built), "no such table")


# ------------------------------------------------------------ mistakes: one line and an exit code


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["project", "nope"], ["no projector named nope", "choose from holds, cancellations, status"]),
        (["replay", "holds", "nope"], ["no projector named nope"]),
        (["analytics", "cancellations", "--since", "yesterday"], ["--since", "yesterday"]),
        (["analytics", "cancellations", "--until", "2026-03-01T10:00"], ["--until"]),  # no zone
        (["analytics", "cancellations", "--by", "colour"], ["--by"]),
        (["replay", "--until", "soon"], ["--until"]),
        (["project", "--source", "kafka"], ["--source kafka needs Kafka"]),
    ],
)
def test_a_wrong_command_line_is_one_line_and_exit_code_2(built: Path, args: list[str], fragments: list[str]) -> None:
    result = orderlog(*args, cwd=built)
    assert result.returncode == 2
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize(
    "args",
    [
        ["holds"],
        ["analytics", "cancellations"],
        ["order", "status", "SO-1"],
        ["views", "sql"],
        ["views", "sql", "SELECT 1"],
    ],
)
def test_reading_views_that_do_not_exist_is_one_line_and_exit_code_1(tmp_path: Path, args: list[str]) -> None:
    result = orderlog(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, "no views at orderlog.views.db yet", "run `orderlog project` first")
    assert not (tmp_path / "orderlog.views.db").exists()


def test_views_in_a_directory_that_does_not_exist_is_one_line(built: Path, tmp_path: Path) -> None:
    result = orderlog("--views", str(tmp_path / "no" / "views.db"), "project", cwd=built)
    assert result.returncode == 1
    assert_one_line_error(result, "cannot open views", "does not exist")


# ------------------------------------------------------------ views on PostgreSQL


@pytest.fixture
def postgres_views() -> Iterator[str]:
    reason = postgres_answers()
    if reason:
        pytest.skip(reason)
    yield from fresh_postgres_database()


@pytest.mark.postgres
def test_views_on_postgresql_read_the_same(store: Path, postgres_views: str) -> None:
    assert ok("--views", postgres_views, "project", "--once", cwd=store).count("lag 0") == len(PROJECTORS)
    assert json.loads(ok("--views", postgres_views, "holds", "--json", cwd=store)) == HOLDS
    on_sqlite = json.loads(ok("order", "status", "SO-1", "--json", cwd=store))
    assert json.loads(ok("--views", postgres_views, "order", "status", "SO-1", "--json", cwd=store)) == on_sqlite
    assert ok("--views", postgres_views, "analytics", "cancellations", "--json", cwd=store) == ok(
        "analytics", "cancellations", "--json", cwd=store
    )
    result = orderlog("--views", postgres_views, "views", "sql", "DELETE FROM holds_by_sku_g1", cwd=store)
    assert result.returncode == 1
    assert_one_line_error(result, "cannot execute DELETE in a read-only transaction")


@pytest.mark.postgres
def test_views_sql_on_postgresql_cannot_commit_its_way_out_of_read_only(store: Path, postgres_views: str) -> None:
    ok("--views", postgres_views, "project", "--once", cwd=store)
    before = ok("--views", postgres_views, "holds", "--json", cwd=store)
    result = orderlog("--views", postgres_views, "views", "sql", "COMMIT; DELETE FROM holds_by_sku_g1", cwd=store)
    assert ok("--views", postgres_views, "holds", "--json", cwd=store) == before
    assert result.returncode == 1


RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
"""A query that never ends by itself."""


def test_views_sql_stops_a_query_that_runs_past_its_time_limit(built: Path) -> None:
    result = orderlog("views", "sql", RUNAWAY, "--timeout", "0.5", cwd=built)
    assert result.returncode == 1
    assert_one_line_error(result, "query stopped: it ran longer than 0.5 s")


def test_ctrl_c_stops_a_views_sql_query_at_once(built: Path) -> None:
    """SQLite checks no signals while it runs a statement: Ctrl-C must still end it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orderlog", "views", "sql", RUNAWAY],
        cwd=built,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)  # well into the query
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["orderlog: aborted"], err


@pytest.mark.postgres
def test_views_sql_on_postgresql_stops_a_query_past_its_time_limit(store: Path, postgres_views: str) -> None:
    ok("--views", postgres_views, "project", "--once", cwd=store)
    result = orderlog("--views", postgres_views, "views", "sql", "SELECT pg_sleep(30)", "--timeout", "0.5", cwd=store)
    assert result.returncode == 1
    assert_one_line_error(result, "query stopped: it ran longer than 0.5 s")
