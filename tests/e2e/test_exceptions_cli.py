"""The exception queue as operations staff use it: `orderlog exceptions list|show|ack|resolve`
and `orderlog tick`, after `orderlog project`; text, --json and --csv; people's actions in
`orderlog order history`; the engine's payment-timeout cancellations recorded once; every
mistake one line and an exit code (2: the command line was wrong; 1: the queue says no)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import builders as b
from tests.e2e.test_cli import assert_one_line_error, orderlog, write_lines

CLOCK = "2026-03-01T12:30:00.000Z"


def history() -> list[dict[str, Any]]:
    """Five orders, the queue's clock at 12:30 (a stock count of another SKU):
    SO-1 paid twice the same amount, and holding more SKU-B than the shelf has;
    SO-2's total does not add up; SO-3's phone is no phone; SO-4 never paid (timed out at
    11:40); SO-5 awaits a confirmation that never comes (never timed out)."""
    return [
        b.stock_counted("SKU-B", 1, at="2026-03-01T08:00:00Z"),
        b.submitted("SO-1", lines=[("SKU-B", 3, 500)], event_id="so1", at="2026-03-01T10:00:00Z"),
        b.paid("SO-1", 1500, "P-1", event_id="so1-p1", at="2026-03-01T10:05:00Z"),
        b.paid("SO-1", 1500, "P-2", event_id="so1-p2", at="2026-03-01T10:06:00Z"),
        b.submitted("SO-2", total=900, customer_id="C-2", event_id="so2", at="2026-03-01T10:30:00Z"),
        b.paid("SO-2", 900, "P-3", at="2026-03-01T10:35:00Z"),
        b.submitted(
            "SO-3",
            customer_id="C-3",
            address={**b.ADDRESS, "phone": "12345"},
            event_id="so3",
            at="2026-03-01T11:00:00Z",
        ),
        b.paid("SO-3", 1000, "P-4", at="2026-03-01T11:05:00Z"),
        b.submitted("SO-4", customer_id="C-4", event_id="so4", at="2026-03-01T11:10:00Z"),
        b.submitted("SO-5", customer_id="C-5", requires_confirmation=True, at="2026-03-01T11:20:00Z"),
        b.stock_counted("SKU-Z", 1, at="2026-03-01T12:30:00Z"),
    ]


ACTIVE = ["OVERSOLD:SKU-B", "PAYMENT_DUPLICATE:SO-1", "TOTAL_MISMATCH:SO-2", "ADDRESS_INVALID:SO-3"]
"""Overdue first (OVERSOLD was due at 12:00), then by due time."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("exceptions-cli")
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


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = orderlog(*args, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed(cwd: Path, *options: str) -> dict[str, dict[str, Any]]:
    return {item["exception_id"]: item for item in json.loads(ok("exceptions", "list", "--json", *options, cwd=cwd))}


def order_history(cwd: Path, order_id: str) -> list[dict[str, Any]]:
    return list(json.loads(ok("order", "history", order_id, "--json", cwd=cwd)))


def timeouts(cwd: Path, order_id: str) -> list[dict[str, Any]]:
    return [
        record
        for record in order_history(cwd, order_id)
        if record["type"] == "OrderCancelled" and record["data"]["reason_code"] == "PAYMENT_TIMEOUT"
    ]


# ------------------------------------------------------------ list and show


def test_list_shows_the_active_queue_overdue_first_with_owner_and_due_time(built: Path) -> None:
    result = orderlog("exceptions", "list", cwd=built)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "exception_id",
        "code",
        "status",
        "department",
        "severity",
        "subject",
        "detected_at",
        "due_at",
        "overdue",
    ]
    assert [line.split()[0] for line in lines] == ACTIVE
    first = lines[0].split()
    assert (first[1], first[2], first[3], first[-1]) == ("OVERSOLD", "open", "warehouse", "yes")
    assert "order SO-1" in lines[1] and "finance" in lines[1] and lines[1].split()[-1] == "no"
    assert result.stderr.strip() == f"4 exception(s); queue clock {CLOCK}"


def test_list_as_json_names_what_each_exception_is_about(built: Path) -> None:
    items = listed(built)
    assert list(items) == ACTIVE
    assert {
        name: items["PAYMENT_DUPLICATE:SO-1"][name]
        for name in ("order_id", "code", "type", "department", "severity", "subject", "detected_at", "due_at")
    } == {
        "order_id": "SO-1",
        "code": "PAYMENT_DUPLICATE",
        "type": "payment",
        "department": "finance",
        "severity": "high",
        "subject": "order SO-1",
        "detected_at": "2026-03-01T10:06:00.000Z",
        "due_at": "2026-03-01T14:06:00.000Z",
    }
    assert items["PAYMENT_DUPLICATE:SO-1"]["caused_by"] == ["so1-p1", "so1-p2"]
    assert (items["PAYMENT_DUPLICATE:SO-1"]["status"], items["PAYMENT_DUPLICATE:SO-1"]["overdue"]) == ("open", False)
    oversold = items["OVERSOLD:SKU-B"]
    assert (oversold["order_id"], oversold["subject"], oversold["due_at"], oversold["overdue"]) == (
        None,
        "sku SKU-B (available -2)",
        "2026-03-01T12:00:00.000Z",
        True,
    )
    assert items["ADDRESS_INVALID:SO-3"]["department"] == "customer_service"


def test_list_as_csv_has_the_columns_people_read(built: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(ok("exceptions", "list", "--csv", cwd=built))))
    assert [row["exception_id"] for row in rows] == ACTIVE
    assert list(rows[0]) == [
        "exception_id",
        "code",
        "status",
        "department",
        "severity",
        "subject",
        "detected_at",
        "due_at",
        "overdue",
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--department", "finance"), ["PAYMENT_DUPLICATE:SO-1"]),
        (("--department", "customer_service"), ["ADDRESS_INVALID:SO-3"]),
        (("--type", "pricing"), ["TOTAL_MISMATCH:SO-2"]),
        (("--type", "inventory"), ["OVERSOLD:SKU-B"]),
        (("--code", "TOTAL_MISMATCH"), ["TOTAL_MISMATCH:SO-2"]),
        (("--overdue",), ["OVERSOLD:SKU-B"]),
        (("--status", "open"), ACTIVE),
        (("--status", "all"), ACTIVE),
        (("--status", "acknowledged"), []),
        (("--department", "risk"), []),
    ],
)
def test_list_filters(built: Path, options: tuple[str, ...], expected: list[str]) -> None:
    assert list(listed(built, *options)) == expected


def test_an_empty_selection_says_so_with_the_clock(built: Path) -> None:
    assert ok("exceptions", "list", "--status", "resolved", cwd=built).strip() == (
        f"no resolved exceptions (queue clock {CLOCK})"
    )


@pytest.mark.parametrize(
    "options",
    [("--department", "sales"), ("--status", "closed"), ("--code", "LATE"), ("--type", "weather")],
)
def test_a_choice_not_offered_is_a_usage_error(built: Path, options: tuple[str, ...]) -> None:
    result = orderlog("exceptions", "list", *options, cwd=built)
    assert result.returncode == 2
    assert_one_line_error(result, options[0])


def test_show_says_what_it_is_about_what_caused_it_and_the_rule(built: Path) -> None:
    text = ok("exceptions", "show", "PAYMENT_DUPLICATE:SO-1", cwd=built)
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in text.splitlines() if " " in line}
    assert fields["code"] == "PAYMENT_DUPLICATE"
    assert fields["department"] == "finance"
    assert fields["due_at"] == "2026-03-01T14:06:00.000Z"
    assert fields["caused_by"] == "so1-p1, so1-p2"
    assert fields["rule"].startswith("a second capture")
    shown = json.loads(ok("exceptions", "show", "PAYMENT_DUPLICATE:SO-1", "--json", cwd=built))
    assert shown == listed(built)["PAYMENT_DUPLICATE:SO-1"]


def test_an_unknown_exception_is_one_line_and_exit_1(built: Path) -> None:
    for command in (("show",), ("ack", "--by", "li.na"), ("resolve", "--by", "li.na", "--note", "done")):
        result = orderlog("exceptions", command[0], "NOPE:SO-9", *command[1:], cwd=built)
        assert result.returncode == 1
        assert_one_line_error(result, "no exception 'NOPE:SO-9' in the queue", "exceptions list --status all")


def test_the_queue_before_any_projection_says_what_to_run(tmp_path: Path) -> None:
    write_lines(tmp_path / "h.jsonl", *history())
    assert orderlog("publish", "h.jsonl", cwd=tmp_path).returncode == 0
    result = orderlog("exceptions", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, "orderlog project")


# ------------------------------------------------------------ the payment timeout


def test_project_records_the_engines_payment_timeout_in_the_orders_history(built: Path) -> None:
    (cancellation,) = timeouts(built, "SO-4")
    assert {name: cancellation[name] for name in ("event_id", "occurred_at", "source", "actor")} == {
        "event_id": "orderlog/payment-timeout/SO-4",
        "occurred_at": "2026-03-01T11:40:00.000Z",
        "source": "orderlog",
        "actor": None,
    }
    assert cancellation["data"] == {"reason_code": "PAYMENT_TIMEOUT", "initiated_by": "system", "note": ""}
    assert timeouts(built, "SO-5") == []  # awaiting confirmation: no clock runs
    assert [timeouts(built, order) for order in ("SO-1", "SO-2", "SO-3")] == [[], [], []]  # paid


def test_the_timeout_is_recorded_once_across_projects_and_replays(store: Path) -> None:
    ok("project", "--once", cwd=store)
    ok("replay", "exceptions", cwd=store)
    ok("project", "--once", cwd=store)
    ok("replay", cwd=store)
    ok("project", "exceptions", cwd=store)
    assert len(timeouts(store, "SO-4")) == 1
    assert list(listed(store)) == ACTIVE


def test_two_queue_processes_record_each_timeout_once(store: Path) -> None:
    """Two queues (replicas with views of their own) running at once on one store: each order
    is cancelled once, and neither process fails (tests/integration/test_exception_queue.py
    races the two on one order)."""
    orders = [f"SO-T{n}" for n in range(4)]
    write_lines(
        store / "more.jsonl",
        *(b.submitted(order, customer_id=f"C-T{n}", at="2026-03-01T13:00:00Z") for n, order in enumerate(orders)),
        b.stock_counted("SKU-Z", 2, at="2026-03-01T14:00:00Z"),
    )
    ok("publish", "more.jsonl", cwd=store)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "orderlog", "--views", f"replica-{n}.views.db", "project", "exceptions"],
            cwd=store,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for process in processes:
        process.communicate(timeout=120)
    assert [len(timeouts(store, order)) for order in orders] == [1] * len(orders)
    assert len(timeouts(store, "SO-4")) == 1


# ------------------------------------------------------------ people's actions


def test_ack_is_recorded_in_the_orders_history_with_who_and_the_note(store: Path) -> None:
    said = ok(
        "exceptions", "ack", "PAYMENT_DUPLICATE:SO-1", "--by", "wang.fang", "--note", "calling the bank", cwd=store
    )
    assert said.strip() == "PAYMENT_DUPLICATE:SO-1 acknowledged by wang.fang (recorded in order SO-1's history)"
    item = listed(store, "--status", "acknowledged")["PAYMENT_DUPLICATE:SO-1"]
    assert (item["status"], item["acknowledged_by"], item["note"]) == ("acknowledged", "wang.fang", "calling the bank")
    assert "PAYMENT_DUPLICATE:SO-1" in listed(store)  # acknowledged is still active

    record = order_history(store, "SO-1")[-1]
    assert (record["type"], record["actor"], record["source"], record["occurred_at"]) == (
        "ExceptionAcknowledged",
        "wang.fang",
        "orderlog",
        item["acknowledged_at"],
    )
    assert record["data"] == {
        "exception_id": "PAYMENT_DUPLICATE:SO-1",
        "code": "PAYMENT_DUPLICATE",
        "note": "calling the bank",
    }
    text = ok("order", "history", "SO-1", cwd=store)
    assert "ExceptionAcknowledged" in text and "wang.fang" in text and "calling the bank" in text
    recorded = len(order_history(store, "SO-1"))

    twice = orderlog("exceptions", "ack", "PAYMENT_DUPLICATE:SO-1", "--by", "li.na", cwd=store)
    assert twice.returncode == 1
    assert_one_line_error(twice, "PAYMENT_DUPLICATE:SO-1 was already acknowledged by wang.fang at")
    assert len(order_history(store, "SO-1")) == recorded


def test_resolve_is_recorded_and_resolving_again_is_refused(store: Path) -> None:
    said = ok("exceptions", "resolve", "TOTAL_MISMATCH:SO-2", "--by", "li.na", "--note", "price list fixed", cwd=store)
    assert said.strip() == "TOTAL_MISMATCH:SO-2 resolved by li.na (recorded in order SO-2's history)"
    item = listed(store, "--status", "resolved")["TOTAL_MISMATCH:SO-2"]
    assert (item["resolution"], item["resolved_by"], item["note"], item["overdue"]) == (
        "person",
        "li.na",
        "price list fixed",
        False,
    )
    assert "TOTAL_MISMATCH:SO-2" not in listed(store)
    record = order_history(store, "SO-2")[-1]
    assert (record["type"], record["actor"], record["data"]["note"], record["occurred_at"]) == (
        "ExceptionResolved",
        "li.na",
        "price list fixed",
        item["resolved_at"],
    )
    recorded = len(order_history(store, "SO-2"))

    again = orderlog("exceptions", "resolve", "TOTAL_MISMATCH:SO-2", "--by", "bob", "--note", "again", cwd=store)
    assert again.returncode == 1
    assert_one_line_error(again, "TOTAL_MISMATCH:SO-2 was already resolved by li.na at")
    late_ack = orderlog("exceptions", "ack", "TOTAL_MISMATCH:SO-2", "--by", "bob", cwd=store)
    assert late_ack.returncode == 1
    assert_one_line_error(late_ack, "was already resolved")
    assert len(order_history(store, "SO-2")) == recorded


def test_an_exception_resolved_automatically_cannot_be_resolved_again(store: Path) -> None:
    write_lines(store / "fix.jsonl", b.address_corrected("SO-3", event_id="fix", at="2026-03-01T12:40:00Z"))
    ok("publish", "fix.jsonl", cwd=store)
    ok("project", "--once", cwd=store)
    item = listed(store, "--status", "resolved")["ADDRESS_INVALID:SO-3"]
    assert (item["resolution"], item["resolved_at"], item["cleared_by"]) == (
        "automatic",
        "2026-03-01T12:40:00.000Z",
        "fix",
    )
    result = orderlog("exceptions", "resolve", "ADDRESS_INVALID:SO-3", "--by", "li.na", "--note", "x", cwd=store)
    assert result.returncode == 1
    assert_one_line_error(result, "ADDRESS_INVALID:SO-3 was already resolved automatically at 2026-03-01T12:40:00.000Z")


def test_oversold_takes_no_action(built: Path) -> None:
    for command in (("ack", "--by", "li.na"), ("resolve", "--by", "li.na", "--note", "recounted")):
        result = orderlog("exceptions", command[0], "OVERSOLD:SKU-B", *command[1:], cwd=built)
        assert result.returncode == 1
        assert_one_line_error(result, "OVERSOLD:SKU-B clears itself when the SKU is counted again", "no action")


def test_an_action_needs_someone_to_name(store: Path) -> None:
    before = order_history(store, "SO-1")
    for by in ("", "   "):
        result = orderlog("exceptions", "ack", "PAYMENT_DUPLICATE:SO-1", "--by", by, cwd=store)
        assert result.returncode == 1
        assert_one_line_error(result, "--by must name who acts")
    missing = orderlog("exceptions", "ack", "PAYMENT_DUPLICATE:SO-1", cwd=store)
    assert missing.returncode == 2
    assert_one_line_error(missing, "--by")
    assert order_history(store, "SO-1") == before


def test_a_resolution_needs_a_note(store: Path) -> None:
    before = order_history(store, "SO-2")
    missing = orderlog("exceptions", "resolve", "TOTAL_MISMATCH:SO-2", "--by", "li.na", cwd=store)
    assert missing.returncode == 2
    assert_one_line_error(missing, "Missing option '--note'")
    blank = orderlog("exceptions", "resolve", "TOTAL_MISMATCH:SO-2", "--by", "li.na", "--note", "  ", cwd=store)
    assert blank.returncode == 2
    assert_one_line_error(blank, "--note", "say how it was resolved")
    assert order_history(store, "SO-2") == before


# ------------------------------------------------------------ the clock


def test_tick_moves_the_clock_and_deadlines_open_exactly_when_it_passes_them(store: Path) -> None:
    """SO-1 was paid in full at 10:05: SHIPMENT_DELAYED is due to open 48 h later."""
    said = ok("tick", "--now", "2026-03-03T10:04:59.999Z", "--by", "cron", cwd=store)
    assert said.strip() == "clock ticked to 2026-03-03T10:04:59.999Z"
    assert "SHIPMENT_DELAYED:SO-1" not in listed(store)
    ok("tick", "--now", "2026-03-03T10:05:00Z", cwd=store)
    items = listed(store)
    delayed = items["SHIPMENT_DELAYED:SO-1"]
    assert (delayed["detected_at"], delayed["due_at"], delayed["department"], delayed["overdue"]) == (
        "2026-03-03T10:05:00.000Z",
        "2026-03-04T10:05:00.000Z",
        "logistics",
        False,
    )
    assert "SHIPMENT_DELAYED:SO-2" not in items  # paid in full at 10:35: not yet
    assert list(listed(store, "--overdue")) == ACTIVE  # everything else was due by now
    ok("tick", "--now", "2026-03-04T10:05:00.001Z", cwd=store)
    assert "SHIPMENT_DELAYED:SO-1" in listed(store, "--overdue")

    before = ok("exceptions", "list", "--status", "all", "--json", cwd=store)
    ok("replay", "exceptions", cwd=store)
    assert ok("exceptions", "list", "--status", "all", "--json", cwd=store) == before  # a replay sees the ticks


def test_a_tick_must_go_forward(store: Path) -> None:
    ok("tick", "--now", "2026-03-02T00:00:00Z", cwd=store)
    for moment in ("2026-03-01T23:00:00Z", "2026-03-02T00:00:00Z"):
        result = orderlog("tick", "--now", moment, cwd=store)
        assert result.returncode == 1
        assert_one_line_error(result, "the clock already reads 2026-03-02T00:00:00.000Z")
    bad = orderlog("tick", "--now", "tomorrow", cwd=store)
    assert bad.returncode == 2
    assert_one_line_error(bad, "--now", "not an ISO 8601 time")


def test_slas_are_configured_in_the_environment(store: Path) -> None:
    sla = {"ORDERLOG_SLA": "OVERSOLD=30m,PAYMENT_DUPLICATE=1d"}
    ok("replay", "exceptions", cwd=store, env=sla)
    items = {item["exception_id"]: item for item in json.loads(ok("exceptions", "list", "--json", cwd=store, env=sla))}
    assert items["OVERSOLD:SKU-B"]["due_at"] == "2026-03-01T10:30:00.000Z"
    assert items["PAYMENT_DUPLICATE:SO-1"]["due_at"] == "2026-03-02T10:06:00.000Z"
    assert items["TOTAL_MISMATCH:SO-2"]["due_at"] == "2026-03-01T14:30:00.000Z"  # the default
    wrong = orderlog("exceptions", "list", cwd=store, env={"ORDERLOG_SLA": "OVERSOLD=soon"})
    assert wrong.returncode != 0
    assert_one_line_error(wrong, "ORDERLOG_SLA")
