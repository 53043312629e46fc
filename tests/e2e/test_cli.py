"""The `orderlog` command as a user runs it: output, exit codes, and one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from tests import builders as b

EXPECTED_SHOW_KEYS = {
    "order_id",
    "status",
    "financial_status",
    "currency",
    "total",
    "paid_amount",
    "refunded_amount",
    "channel",
    "customer_id",
    "lines",
    "version",
    "submitted_at",
    "updated_at",
    "cancellation",
}


def orderlog(
    *args: str,
    cwd: Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    module: str = "orderlog",
    stdin_file: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m orderlog ARGS` (or another module) as a user runs it, without the caller's ORDERLOG_* settings;
    standard input is the text `stdin`, or the open file `stdin_file` itself (what a shell's `<` gives)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLOG_")}
    environment.update(env or {})
    given: dict[str, Any] = {"stdin": stdin_file} if stdin_file is not None else {"input": stdin}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        **given,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def write_lines(path: Path, *items: dict[str, Any] | str) -> Path:
    path.write_text("".join((i if isinstance(i, str) else b.line(i)) + "\n" for i in items), encoding="utf-8")
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def history_file(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "events.jsonl",
        b.submitted(event_id="e1", at="2026-03-01T10:00:00Z", actor="web-user-7"),
        b.paid(event_id="e2", amount=400, at="2026-03-01T10:05:00Z"),
        b.paid(event_id="e3", amount=600, payment_id="P-2", at="2026-03-02T09:00:00Z"),
        b.dispatched(event_id="e4", at="2026-03-03T09:00:00Z"),
    )


def test_publish_prints_the_counts_and_exits_0_when_all_is_accepted(tmp_path: Path, history_file: Path) -> None:
    result = orderlog("publish", str(history_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "accepted 4, duplicates 0, conflicts 0, refused 0, invalid 0"
    again = orderlog("publish", str(history_file), cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "accepted 0, duplicates 4, conflicts 0, refused 0, invalid 0",
    )


def test_publish_reports_refused_and_invalid_lines_and_exits_2(tmp_path: Path) -> None:
    events = write_lines(
        tmp_path / "in.jsonl",
        b.submitted(event_id="e1"),
        b.dispatched(event_id="e2"),
        b.cancelled(event_id="e3"),
        "{not json",
        "",
        b.paid("SO-9", event_id="e4"),
    )
    result = orderlog("publish", str(events), "--rejects", "rejects.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.strip() == "accepted 2, duplicates 0, conflicts 0, refused 1, invalid 2"
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["outcome"], r["event_id"]) for r in rejects] == [
        (3, "refused", "e3"),
        (4, "invalid", None),
        (6, "invalid", "e4"),
    ]
    assert "needs a return, not a cancellation" in rejects[0]["reason"]
    assert rejects[1]["reason"].startswith("not valid JSON")
    assert rejects[2]["reason"] == "order SO-9 does not exist: no OrderSubmitted has been recorded for it"


def test_publish_reads_standard_input_and_writes_rejects_to_stderr_by_default(tmp_path: Path) -> None:
    result = orderlog("publish", "-", cwd=tmp_path, stdin=b.line(b.submitted()) + "\n" + '{"type": 1}\n')
    assert result.returncode == 2
    assert json.loads(result.stderr.strip().splitlines()[-1])["line"] == 2


def test_publish_with_workers_gives_the_same_outcomes(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    assert orderlog("simulate", "--orders", "300", "--seed", "5", "--out", str(traffic), cwd=tmp_path).returncode == 0
    one = orderlog("--store", "one.db", "publish", str(traffic), "--rejects", "r1", cwd=tmp_path)
    two = orderlog("--store", "two.db", "publish", str(traffic), "--workers", "2", "--rejects", "r2", cwd=tmp_path)
    assert one.stdout == two.stdout and one.returncode == two.returncode == 2
    lines = lambda name: sorted((tmp_path / name).read_text().splitlines())  # noqa: E731
    assert lines("r1") == lines("r2")


def test_publish_from_standard_input_with_workers(tmp_path: Path) -> None:
    traffic = orderlog("simulate", "--orders", "100", "--seed", "6", cwd=tmp_path).stdout
    one = orderlog("--store", "one.db", "publish", "-", "--rejects", "r1", cwd=tmp_path, stdin=traffic)
    two = orderlog(
        "--store", "two.db", "publish", "-", "--workers", "2", "--rejects", "r2", cwd=tmp_path, stdin=traffic
    )
    assert one.stdout == two.stdout and "accepted" in two.stdout, two.stderr


def test_order_show_json_has_the_documented_shape(tmp_path: Path, history_file: Path) -> None:
    orderlog("publish", str(history_file), cwd=tmp_path)
    shown = json.loads(orderlog("order", "show", "SO-1", "--json", cwd=tmp_path).stdout)
    assert set(shown) >= EXPECTED_SHOW_KEYS
    assert (shown["status"], shown["financial_status"], shown["paid_amount"], shown["version"]) == (
        "SHIPPED",
        "PAID",
        1000,
        4,
    )
    assert shown["lines"] == [{"sku": "SKU-A", "qty": 2, "unit_price": 500, "shipped_qty": 2, "delivered_qty": 0}]
    assert shown["submitted_at"] == "2026-03-01T10:00:00.000Z"
    assert shown["shipping_address"]["phone"] == b.ADDRESS["phone"]
    text = orderlog("order", "show", "SO-1", cwd=tmp_path).stdout
    assert "SHIPPED" in text and "lines:" in text


@pytest.mark.parametrize(
    ("options", "status", "paid", "version"),
    [
        (["--version", "2"], "PARTIALLY_PAID", 400, 2),
        (["--as-of", "2026-03-01T12:00:00+00:00"], "PARTIALLY_PAID", 400, 2),
        (["--as-of", "2026-03-02T17:00:00+08:00"], "PENDING_SHIPMENT", 1000, 3),
        (["--as-of", "2026-03-10T00:00:00Z", "--version", "1"], "PENDING_PAYMENT", 0, 1),
    ],
)
def test_order_show_as_it_stood(
    tmp_path: Path, history_file: Path, options: list[str], status: str, paid: int, version: int
) -> None:
    orderlog("publish", str(history_file), cwd=tmp_path)
    shown = json.loads(orderlog("order", "show", "SO-1", "--json", *options, cwd=tmp_path).stdout)
    assert (shown["status"], shown["paid_amount"], shown["version"]) == (status, paid, version)


def test_known_at_is_record_time(tmp_path: Path, history_file: Path) -> None:
    orderlog("publish", str(history_file), cwd=tmp_path)
    history = json.loads(orderlog("order", "history", "SO-1", "--json", cwd=tmp_path).stdout)
    before = orderlog("order", "show", "SO-1", "--known-at", "2026-01-01T00:00:00Z", cwd=tmp_path)
    assert_one_line_error(before, "had not been submitted by 2026-01-01T00:00:00.000Z (record time)")
    known = json.loads(
        orderlog("order", "show", "SO-1", "--json", "--known-at", history[-1]["recorded_at"], cwd=tmp_path).stdout
    )
    assert known["version"] == 4
    late = write_lines(
        tmp_path / "late.jsonl", b.paid(event_id="e5", amount=7, payment_id="P-late", at="2026-03-01T10:10:00Z")
    )
    orderlog("publish", str(late), cwd=tmp_path)  # happened long before history[-1] was recorded; recorded after
    then = json.loads(
        orderlog("order", "show", "SO-1", "--json", "--known-at", history[-1]["recorded_at"], cwd=tmp_path).stdout
    )
    assert (then["version"], then["paid_amount"]) == (4, 1000)
    now = json.loads(
        orderlog("order", "show", "SO-1", "--json", "--as-of", "2026-03-01T10:10:00Z", cwd=tmp_path).stdout
    )
    assert now["paid_amount"] == 407


def test_order_history_shows_every_record_with_both_times_source_actor_and_hashes(
    tmp_path: Path, history_file: Path
) -> None:
    orderlog("publish", str(history_file), cwd=tmp_path)
    history = json.loads(orderlog("order", "history", "SO-1", "--json", cwd=tmp_path).stdout)
    assert [r["version"] for r in history] == [1, 2, 3, 4]
    first = history[0]
    assert (first["type"], first["event_id"], first["occurred_at"], first["source"], first["actor"]) == (
        "OrderSubmitted",
        "e1",
        "2026-03-01T10:00:00.000Z",
        "test-source",
        "web-user-7",
    )
    assert first["recorded_at"].endswith("Z") and first["data"]["shipping_address"]["name"] == b.ADDRESS["name"]
    assert history[1]["prev_hash"] == first["hash"]
    text = orderlog("order", "history", "SO-1", cwd=tmp_path).stdout
    assert text.splitlines()[0].split()[:4] == ["version", "type", "event_id", "occurred_at"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["order", "show", "SO-1"], ["no store at orderlog.db"]),
        (["--store", "mysql://x/y", "order", "show", "SO-1"], ["unknown store URL scheme 'mysql'"]),
        (["--store", "postgresql://postgres@127.0.0.1:1/x", "order", "show", "SO-1"], ["cannot connect to"]),
        (["--store", "sqlite:///no/such/dir/x.db", "publish", "-"], ["directory no/such/dir does not exist"]),
    ],
)
def test_store_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(orderlog(*args, cwd=tmp_path, stdin=""), *fragments)


def test_reading_mistakes_are_one_line_errors(tmp_path: Path, history_file: Path) -> None:
    orderlog("publish", str(history_file), cwd=tmp_path)
    assert_one_line_error(orderlog("order", "show", "SO-404", cwd=tmp_path), "order SO-404 not found")
    assert_one_line_error(orderlog("order", "history", "SO-404", cwd=tmp_path), "order SO-404 not found")
    assert_one_line_error(
        orderlog("order", "show", "SO-1", "--as-of", "2026-03-01 10:00", cwd=tmp_path),
        "--as-of",
        "has no zone",
    )
    assert_one_line_error(
        orderlog("order", "show", "SO-1", "--known-at", "soon", cwd=tmp_path),
        "--known-at",
        "not an ISO 8601 time",
    )
    assert_one_line_error(orderlog("order", "show", "SO-1", "--version", "9", cwd=tmp_path), "no version 9")
    assert_one_line_error(orderlog("publish", "missing.jsonl", cwd=tmp_path), "missing.jsonl")


def test_simulate_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = orderlog("simulate", "--orders", "50", "--seed", "9", cwd=tmp_path).stdout
    again = orderlog("simulate", "--orders", "50", "--seed", "9", cwd=tmp_path).stdout
    other = orderlog("simulate", "--orders", "50", "--seed", "10", cwd=tmp_path).stdout
    assert first == again != other
    later = orderlog(
        "simulate", "--orders", "50", "--seed", "9", "--start", "2027-01-01T00:00:00Z", cwd=tmp_path
    ).stdout
    assert json.loads(later.splitlines()[0])["occurred_at"].startswith("2027-01")


def test_demo_publishes_and_summarises(tmp_path: Path) -> None:
    result = orderlog("demo", "--orders", "300", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "published" in result.stdout and "orders             300" in result.stdout
    assert "created master key file orderlog.db.master-key" in result.stderr
    assert (tmp_path / "orderlog.db.master-key").stat().st_mode & 0o777 == 0o600
    again = orderlog("demo", "--orders", "300", cwd=tmp_path)
    assert "accepted 0," in again.stdout and "master key" not in again.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("order", "show", "SO-\udcff"),
        ("order", "status", "\udcff"),
        ("holds", "--sku", "\udcff"),
        ("exceptions", "ack", "X", "--by", "\udcff"),
        ("views", "sql", "select '\udcff'"),
        ("publish", "\udcff.jsonl"),
    ],
)
def test_bytes_that_are_not_utf8_on_the_command_line_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A shell passes any bytes; Python carries what is not UTF-8 as lone surrogates, which no
    database, file name or terminal takes: every command refuses them up front."""
    result = orderlog(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "is not valid UTF-8")


def test_a_setting_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    result = orderlog("holds", cwd=tmp_path, env={"ORDERLOG_STORE": "a\udcff.db"})
    assert result.returncode == 2
    assert_one_line_error(result, "ORDERLOG_STORE is not valid UTF-8")


def test_a_damaged_stored_record_is_named_by_every_reader_not_reported_as_a_defect(
    tmp_path: Path, history_file: Path
) -> None:
    assert orderlog("publish", str(history_file), cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "orderlog.db") as store:
        (last,) = store.execute("SELECT MAX(rowid) FROM stored_events").fetchone()
        store.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (b"{not json", last))
    for command in (("project", "--once"), ("order", "history", "SO-1")):
        result = orderlog(*command, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stderr)
        assert_one_line_error(result, "is unreadable", "orderlog audit verify")


def test_an_error_quoting_a_huge_argument_is_cut_in_the_middle_keeping_what_to_do(tmp_path: Path) -> None:
    write_lines(tmp_path / "events.jsonl", b.submitted())
    assert orderlog("publish", "events.jsonl", cwd=tmp_path).returncode == 0
    result = orderlog("order", "show", "A" * 100_000, cwd=tmp_path)
    assert_one_line_error(result, "orderlog: error: order AAAA", " characters ...] AAAA", "not found in orderlog.db")
    assert len(result.stderr) < 1_100
