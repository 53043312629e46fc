"""Hostile lines mixed into valid traffic never stop the flow: every valid line is stored,
every hostile line is rejected with a reason, the tally adds up, in one process and with
`--workers 2`; a defect in orderlog on one line sets that line aside and stores the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.order import Order
from orderlog.intake.outcomes import FAILED, INVALID, BatchReport, Tally
from orderlog.intake.parallel import publish_file_in_parallel
from orderlog.intake.reading import input_lines
from tests import builders as b
from tests.conftest import open_intake

VALID_TEMPLATE = b.line(b.paid("SO-X", event_id="EVENT", amount=100))

ISSUE_EXAMPLES = [
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,  # 100,000 levels deep
    b.line(b.paid(at="9999-12-31T23:00:00-05:00")).encode(),  # leaves the calendar in UTC
    b.line(b.paid(at="0001-01-01T00:30:00+01:00")).encode(),
    b.line(b.paid(event_id="E")).replace('"E"', '"e\\ud800"').encode(),  # a lone surrogate in the event id
    b.line(b.paid(order_id="SO-1001\u200b")).encode(),  # a zero-width space in an id
    b.line(b.submitted()).replace('"channel": "web"', '"channel": "\\u001b[31m"').encode(),  # a terminal escape
]


def hostile_lines() -> st.SearchStrategy[bytes]:
    one_line = st.binary(max_size=200).map(lambda raw: raw.replace(b"\n", b" ").replace(b"\r", b" "))
    deep = st.integers(300, 50_000).map(lambda depth: b"[" * depth)
    huge = st.integers(20, 5000).map(
        lambda digits: VALID_TEMPLATE.replace('"amount": 100', f'"amount": {"9" * digits}')
    )
    times = st.sampled_from(
        ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00", "2026-02-30T00:00:00Z", "2026-03-01T10:00:00"]
    ).map(lambda moment: VALID_TEMPLATE.replace("2026-03-01T10:00:00Z", moment))
    surrogate = st.integers(0xD800, 0xDFFF).map(lambda code: VALID_TEMPLATE.replace('"P-1"', f'"P\\u{code:04x}"'))
    control = st.sampled_from(["\\u0000", "\\u001b", "\\u007f", "\\u0085", "\\u202e", "\\u200b", "\\u2066"]).map(
        lambda char: VALID_TEMPLATE.replace('"alipay"', f'"ali{char}pay"')
    )
    wrong_type = st.sampled_from(['"100"', "100.0", "true", "null", "[100]", '{"v": 100}']).map(
        lambda value: VALID_TEMPLATE.replace('"amount": 100', f'"amount": {value}')
    )
    return st.one_of(
        one_line,
        deep,
        huge.map(str.encode),
        times.map(str.encode),
        surrogate.map(str.encode),
        control.map(str.encode),
        wrong_type.map(str.encode),
        st.sampled_from(ISSUE_EXAMPLES),
    )


def valid_traffic(orders: int, prefix: str) -> list[bytes]:
    lines = []
    for number in range(orders):
        order_id = f"SO-{prefix}-{number}"
        lines.append(b.line(b.submitted(order_id, event_id=f"{order_id}-s", total=1000)).encode())
        lines.append(b.line(b.paid(order_id, event_id=f"{order_id}-p", amount=1000)).encode())
    return lines


def mixed(valid: list[bytes], hostile: list[bytes], data: st.DataObject) -> list[bytes]:
    """Hostile lines at random places; every order's submission stays before its payment."""
    lines = list(valid)
    for line in hostile:
        lines.insert(data.draw(st.integers(0, len(lines))), line)
    return lines


def check(config: Config, lines: list[bytes], valid: list[bytes], tally: Tally, rejects: list[dict[str, Any]]) -> None:
    counted = [line for line in lines if line.strip()]
    assert sum(tally.counts.values()) == len(counted), tally
    assert tally.counts["accepted"] == len(valid), rejects
    assert tally.counts[INVALID] == len(counted) - len(valid)
    assert tally.counts[FAILED] == 0
    assert all(reject["outcome"] == INVALID and reject["reason"] for reject in rejects)
    assert len(rejects) == tally.counts[INVALID]
    app = open_orderlog(config)
    try:
        for line in valid:
            envelope = json.loads(line)
            order = app.stream(Order, envelope["order_id"])
            assert order is not None and envelope["event_id"] in order.event_ids
    finally:
        app.close()


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Config:
    return Config(store_url=f"sqlite:///{tmp_path / 'store.db'}", master_key_file=tmp_path / "master.key")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile=st.lists(hostile_lines(), min_size=1, max_size=12), data=st.data())
def test_hostile_lines_never_stop_one_publisher(
    tmp_path_factory: pytest.TempPathFactory, hostile: list[bytes], data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("one")
    config = Config(store_url=f"sqlite:///{directory / 'store.db'}", master_key_file=directory / "master.key")
    valid = valid_traffic(6, "one")
    lines = mixed(valid, hostile, data)
    app, publisher = open_intake(config, batch_lines=4)  # many batches
    tally, rejects = Tally(), []
    with write(directory / "in.jsonl", lines).open("rb") as file:
        for results in publisher.take((n, line) for n, line, _ in input_lines(file)):
            report = BatchReport.of(results)
            tally.add(report)
            rejects += [json.loads(r.reject_line()) for r in report.rejects]
    app.close()
    check(config, [line for chunk in lines for line in chunk.split(b"\n")], valid, tally, rejects)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile=st.lists(hostile_lines(), min_size=1, max_size=10), data=st.data())
def test_hostile_lines_never_stop_two_workers(
    tmp_path_factory: pytest.TempPathFactory, hostile: list[bytes], data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("two")
    config = Config(store_url=f"sqlite:///{directory / 'store.db'}", master_key_file=directory / "master.key")
    open_intake(config)[0].close()
    valid = valid_traffic(8, "two")
    lines = mixed(valid, hostile, data)
    tally, rejects = Tally(), []
    for report in publish_file_in_parallel(config, write(directory / "in.jsonl", lines), 2, batch_lines=3):
        tally.add(report)
        rejects += [json.loads(r.reject_line()) for r in report.rejects]
    check(config, lines, valid, tally, rejects)


def test_the_issues_examples_are_each_rejected_with_a_reason(sqlite_config: Config, tmp_path: Path) -> None:
    valid = valid_traffic(3, "ex")
    lines = [valid[0], valid[1], *ISSUE_EXAMPLES, *valid[2:]]
    app, publisher = open_intake(sqlite_config, batch_lines=2)
    results = [r for batch in publisher.take(enumerate(lines, start=1)) for r in batch]
    app.close()
    rejected = {r.line: r for r in results if r.outcome == INVALID}
    assert sorted(rejected) == list(range(3, 3 + len(ISSUE_EXAMPLES)))
    reasons = [rejected[line].reason for line in sorted(rejected)]
    assert reasons[0].startswith("not valid JSON: recursion limit exceeded")
    assert reasons[1].startswith("occurred_at: time '9999-12-31T23:00:00-05:00' is outside")
    assert reasons[2].startswith("occurred_at: time '0001-01-01T00:30:00+01:00' is outside")
    assert reasons[3].startswith("not valid JSON")
    assert reasons[4].startswith("order_id: holds U+200B (zero width space)")
    assert reasons[5].startswith("data.channel: holds U+001B")
    surrogate_reject = json.loads(rejected[6].reject_line())
    assert surrogate_reject["event_id"] == "e\ud800"  # written escaped, read back as it came
    assert all(r.outcome == "accepted" for r in results if r.line not in rejected)


def test_a_defect_on_one_line_sets_that_line_aside_and_stores_the_rest(
    sqlite_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Order.on_PaymentCaptured

    def broken(self: Order, event: Any) -> None:
        if event.data["amount"] == 13:
            raise ZeroDivisionError("planted")
        original(self, event)

    monkeypatch.setitem(Order.folds, "PaymentCaptured", broken)
    lines = [
        b.line(b.submitted("SO-1", total=1000)),
        b.line(b.paid("SO-1", amount=13, payment_id="P-bad")),
        b.line(b.paid("SO-1", amount=1000, payment_id="P-good")),
        b.line(b.submitted("SO-2")),
    ]
    app, publisher = open_intake(sqlite_config)
    results = [r for batch in publisher.take(enumerate(lines, start=1)) for r in batch]
    assert [r.outcome for r in results] == ["accepted", FAILED, "accepted", "accepted"]
    assert "ZeroDivisionError: planted" in results[1].reason and "please report it" in results[1].reason
    order = app.stream(Order, "SO-1")
    assert order is not None and order.paid_amount == 1000 and order.version == 2
    assert app.stream(Order, "SO-2") is not None
    app.close()
