"""What `make mutation` found untested in orderlog.domain: one test per surviving class.

Each test pins a rule a mutant changed without any other test noticing: a boundary (`<=`
against `<`), a message a user reads, a counter that must count, a helper that builds a
declaration at import time (called again here, since mutmut's workers reuse the modules
already imported). The mutants that cannot change behaviour are listed, with why, in the
README's "Mutation testing" paragraph.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from orderlog.audit_verify import GENESIS_HASH
from orderlog.domain import contract, envelope
from orderlog.domain.address import address_problems
from orderlog.domain.clock import CLOCK, Clock
from orderlog.domain.customer import Customer
from orderlog.domain.engine import own_record
from orderlog.domain.envelope import Upstream, read_envelope, stream_key_of
from orderlog.domain.exceptions import (
    Settings,
    _dispatched_in_full_at,
    _money,
    _one_per_record,
    deadlines,
    findings,
    new_facts,
)
from orderlog.domain.instants import InstantError, format_instant, parse_instant
from orderlog.domain.moment import Moment
from orderlog.domain.money import format_money
from orderlog.domain.order import Line, Order
from orderlog.domain.record import Record, UnreadableRecord, record_from_stored
from orderlog.domain.redelivery import differences
from orderlog.domain.sku import Sku
from orderlog.domain.source import Source
from orderlog.domain.status import FinancialStatus, Status, financial_status, order_status
from orderlog.domain.stream import HistoricalStateError, Outcome, StreamAggregate, UnsealedRecords
from orderlog.domain.text import character_name, escaped, is_whole_number
from tests import builders as b


def upstream(kind: str, key: str, data: dict[str, Any], at: str, actor: str | None = None) -> Upstream:
    return Upstream(
        type=kind,
        key=key,
        event_id=f"E-{kind}-{at}",
        occurred_at=at,
        source="orderlog",
        actor=actor,
        correlation_id=None,
        data=data,
    )


def new_records(aggregate: StreamAggregate) -> list[Record]:
    return [event.record for event in aggregate.collect_events()]


# ------------------------------------------------------------ moments


class _At:
    def __init__(self, occurred_at: str = "", recorded_at: str = "", version: int = 1):
        self.occurred_at, self.recorded_at, self.originator_version = occurred_at, recorded_at, version


def test_a_moment_keeps_a_record_that_happened_exactly_at_its_as_of() -> None:
    moment = Moment(as_of="2026-03-01T10:00:00.000Z")
    assert moment.keeps(_At(occurred_at="2026-03-01T10:00:00.000Z"))
    assert not moment.keeps(_At(occurred_at="2026-03-01T10:00:00.001Z"))


def test_a_moment_in_words_names_each_bound_it_has_and_only_those() -> None:
    assert Moment().words() == "now"
    assert Moment(as_of="A").words() == "A (event time)"
    assert Moment(known_at="K").words() == "K (record time)"
    assert Moment(version=3).words() == "version 3"
    assert Moment(as_of="A", known_at="K", version=3).words() == "A (event time) and K (record time) and version 3"


# ------------------------------------------------------------ text and patterns


@pytest.mark.parametrize(
    ("character", "named"),
    [
        ("\u200b", "U+200B (zero width space)"),
        ("\x01", "U+0001 (control character)"),
        ("\ud800", "U+D800 (lone surrogate)"),
        ("\ud801", "U+D801 (lone surrogate)"),
        ("\udfff", "U+DFFF (lone surrogate)"),
        ("\udffe", "U+DFFE (lone surrogate)"),
        ("\ud7ff", "U+D7FF (control character)"),  # unassigned, just below the surrogates
        ("\ue000", "U+E000 (control character)"),  # private use, no name, just above them
    ],
)
def test_a_character_is_named_as_a_person_can_find_it(character: str, named: str) -> None:
    assert character_name(character) == named


def test_a_pattern_mismatch_is_said_in_words() -> None:
    assert contract.pattern_mismatch("SO-\u200b1", contract.IDENTIFIER_PATTERN) == (
        "holds U+200B (zero width space) at position 3: ids and texts may not hold "
        "control, bidirectional or zero-width characters"
    )
    assert contract.pattern_mismatch("x", "^y$") == "is not allowed here"
    assert contract.pattern_mismatch("   ", contract.IDENTIFIER_PATTERN) == "is blank"
    assert contract.pattern_mismatch(" x", contract.IDENTIFIER_PATTERN) == "has blanks at its start or end"


def test_the_money_fields_are_found_in_nested_records_too() -> None:
    data = contract.EVENT_TYPES["OrderSubmitted"].data
    assert contract._money_fields(data) == {"total", "unit_price", "shipping_fee", "discount"}
    assert contract._money_fields(contract.EVENT_TYPES["PaymentCaptured"].data) == {"amount"}
    assert contract._money_fields(contract.EVENT_TYPES["OrderConfirmed"].data) == set()


# ------------------------------------------------------------ money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (98670, "CNY", "CNY 986.70"),
        (5, "USD", "USD 0.05"),
        (-98670, "CNY", "CNY -986.70"),
        (123456789, "EUR", "EUR 1,234,567.89"),
        (1200, "JPY", "JPY 1,200"),
        (-1200, "JPY", "JPY -1,200"),
        (1234, "KWD", "KWD 1.234"),
        (12345, "CLF", "CLF 1.2345"),
        (0, "GBP", "GBP 0.00"),
    ],
)
def test_money_is_shown_in_major_units_of_its_currency(amount: int, currency: str, shown: str) -> None:
    assert format_money(amount, currency) == shown


# ------------------------------------------------------------ envelopes


@pytest.mark.parametrize("name", contract.UPSTREAM_TYPES)
def test_each_envelope_model_is_built_from_its_declaration(name: str) -> None:
    assert envelope._envelope_model(name).model_json_schema() == envelope.ENVELOPES[name].model_json_schema()
    assert envelope._list_fields(contract.EVENT_TYPES[name].data) == envelope.LIST_FIELDS[name]


def test_an_order_line_list_is_a_list_field_with_its_member_names() -> None:
    fields = envelope._list_fields(contract.EVENT_TYPES["OrderSubmitted"].data)
    assert set(fields) == {"lines"}
    assert b"sku" in fields["lines"] and b"qty" in fields["lines"]


def test_an_unknown_event_type_names_every_known_one() -> None:
    with pytest.raises(envelope.InvalidEvent) as raised:
        read_envelope(json.dumps({**b.paid(), "type": "PaymentTaken"}))
    expected = ", ".join(contract.UPSTREAM_TYPES)
    assert raised.value.reason == f"type: unknown event type 'PaymentTaken'; expected one of {expected}"


def test_a_short_value_is_shown_whole_and_a_long_one_cut_to_its_width() -> None:
    assert envelope._short("x" * 58) == repr("x" * 58)  # 60 characters with its quotes
    assert envelope._short("x" * 59) == repr("x" * 59)[:57] + "..."
    assert envelope._short("y" * 200, 120) == "y" * 117 + "..."
    assert envelope._short("plain", 120) == "plain"  # wide: strings unquoted


def test_a_wrong_literal_shows_the_allowed_values_unquoted() -> None:
    with pytest.raises(ValidationError) as raised:
        envelope.ENVELOPES["PaymentCaptured"].model_validate({**b.paid(), "type": "OrderSubmitted"})
    described = envelope.describe_validation_error(raised.value)
    assert "is not one of the allowed values ('PaymentCaptured')" in described


def test_pattern_words_for_a_signature_and_for_a_value_that_is_no_string() -> None:
    assert envelope._pattern_words("x", envelope.SIGNATURE_PATTERN) == (
        "should be standard base64 of a 64-byte Ed25519 signature: 88 characters ending in '=='"
    )
    assert envelope._pattern_words(None, contract.IDENTIFIER_PATTERN) == "is blank"


def test_the_stream_key_of_a_plain_line_is_read_without_parsing_it() -> None:
    # not valid JSON: only the fast path can read its key
    assert stream_key_of(b'{"order_id": "SO-1", "type": ') == "SO-1"


def test_the_stream_key_of_a_line_with_an_escape_is_the_key_the_json_reader_reads() -> None:
    line = b.line(b.submitted(order_id="SO-1")).replace('"order_id": "SO-1"', '"order_id": "SO\\u002d1"')
    assert '"SO\\u002d1"' in line and '"sku": "' in line
    assert stream_key_of(line.encode()) == "SO-1"


def test_a_stream_key_that_is_not_utf8_is_read_with_replacement_characters() -> None:
    assert stream_key_of(b'{"order_id": "SO-\xff", "type": "OrderSubmitted"}') == "SO-\ufffd"


# ------------------------------------------------------------ streams


def test_a_customer_stream_keeps_its_key_and_each_erasure_with_who_and_why() -> None:
    erased = own_record("CustomerErased", "C-1", {"reason": "asked", "keys_destroyed": 1}, None)
    customer = Customer.open(erased, recorded_at="2026-03-01T10:00:00.000Z")
    assert customer.key == "C-1"
    assert customer.erasures == [{"at": erased.occurred_at, "by": "", "reason": "asked"}]


def test_own_records_are_orderlogs_own_and_happen_now_in_utc() -> None:
    record = own_record("ClockTicked", CLOCK, {}, "ops")
    assert record.source == contract.ENGINE_SOURCE
    assert record.event_id.startswith(f"{contract.ENGINE_SOURCE}/ClockTicked/")
    assert record.occurred_at.endswith("Z") and record.actor == "ops"


def test_the_clock_only_goes_forward() -> None:
    clock = Clock.open(upstream("ClockTicked", CLOCK, {}, "2026-03-01T10:00:00.000Z"))
    assert clock.now == "2026-03-01T10:00:00.000Z"
    same = clock.handle(upstream("ClockTicked", CLOCK, {}, "2026-03-01T10:00:00.000Z"))
    assert same.outcome is Outcome.REFUSED
    assert same.reason == "the clock already reads 2026-03-01T10:00:00.000Z; a tick must go forward"
    assert clock.handle(upstream("ClockTicked", CLOCK, {}, "2026-03-01T11:00:00.000Z")).outcome is Outcome.ACCEPTED
    assert clock.now == "2026-03-01T11:00:00.000Z"
    assert [record.type for record in new_records(clock)] == ["ClockTicked", "ClockTicked"]
    assert clock.key == CLOCK
    clock.handle(upstream("ClockTicked", CLOCK, {}, "2026-03-01T12:00:00.000Z"), recorded_at=LATER)
    (tick,) = new_records(clock)
    assert (tick.data, tick.recorded_at) == ({}, LATER)


def test_a_source_keeps_its_keys_and_the_last_unrevoked_one_is_active() -> None:
    def registered(key_id: str, at: str) -> Upstream:
        data = {"types": ["PaymentCaptured"], "public_key": f"pk-{key_id}", "key_id": key_id}
        return upstream("SourceRegistered", "payments", data, at, actor="alice")

    source = Source.open(registered("k1", "2026-03-01T10:00:00.000Z"))
    assert source.name == "payments"
    source.handle(registered("k2", "2026-03-02T10:00:00.000Z"))
    first, second = source.keys
    assert (first.key_id, first.public_key, first.types) == ("k1", "pk-k1", ("PaymentCaptured",))
    assert (first.registered_at, first.registered_by) == ("2026-03-01T10:00:00.000Z", "alice")
    assert source.active_key is second
    source.handle(upstream("SourceRevoked", "payments", {"key_id": "k2"}, "2026-03-03T10:00:00.000Z", actor="bob"))
    assert (second.revoked_at, second.revoked_by) == ("2026-03-03T10:00:00.000Z", "bob")
    assert first.revoked_at is None
    assert source.active_key is first
    source.handle(upstream("SourceRevoked", "payments", {"key_id": "k1"}, "2026-03-04T10:00:00.000Z"))
    assert source.active_key is None
    assert second.revoked_at == "2026-03-03T10:00:00.000Z"  # revoked once: a second revocation keeps the first


def test_an_aggregate_class_registers_its_stream_and_its_folds_as_it_is_defined() -> None:
    before = dict(StreamAggregate.by_stream)
    try:

        class Intermediate(StreamAggregate):
            def on_Ignored(self, record: Record) -> None:
                pass

        assert StreamAggregate.by_stream == before
        assert Intermediate.folds is StreamAggregate.folds

        class Probe(StreamAggregate):
            STREAM = "mutation-probe"
            OPENED_BY = frozenset({"Probed"})

            def on_Probed(self, record: Record) -> None:
                pass

            def helper(self) -> None:
                pass

        assert StreamAggregate.by_stream["mutation-probe"] is Probe
        assert Probe.folds == {"Probed": Probe.on_Probed}
    finally:
        StreamAggregate.by_stream.clear()
        StreamAggregate.by_stream.update(before)


def test_a_replayed_state_is_historical_and_never_records() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    records = new_records(order)
    replayed = Order.replay(records, lambda record: True)
    assert replayed is not None and replayed.historical is True
    with pytest.raises(HistoricalStateError):
        replayed.handle(read_envelope(b.line(b.paid())))


# ------------------------------------------------------------ the order's counters


def test_refusals_conflicts_and_failed_payments_are_counted_one_each() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    for n in (1, 2):
        order.handle(read_envelope(b.line(b.confirmed(event_id=f"E-confirm-{n}"))))
    assert order.refusals == 2
    for n in (1, 2):
        order.handle(read_envelope(b.line(b.payment_failed(event_id=f"E-fail-{n}", payment_id=f"P-F{n}"))))
    assert order.failed_payments == 2
    order.handle(read_envelope(b.line(b.paid(event_id="E-pay-1", amount=500))))
    for n, amount in ((2, 400), (3, 300)):
        decision = order.handle(read_envelope(b.line(b.paid(event_id=f"E-pay-{n}", amount=amount))))
        assert decision.outcome is Outcome.CONFLICT
    assert order.conflicts == 2


def test_a_refusal_is_recorded_at_the_record_time_given() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())), recorded_at="2026-03-01T10:00:00.000Z")
    order.handle(read_envelope(b.line(b.confirmed())), recorded_at="2030-01-01T00:00:00.000Z")
    refused = new_records(order)[-1]
    assert refused.type == "RequestRefused"
    assert refused.recorded_at == "2030-01-01T00:00:00.000Z"


def test_a_failed_delivery_of_a_shipment_never_dispatched_still_names_the_shipment() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    records = new_records(order)
    failure = records[0]._replace(
        version=2, type="DeliveryFailed", event_id="E-df", data={"shipment_id": "SH-9", "reason": "lost"}
    )
    order = Order.rebuild([*records, failure])
    assert order is not None and order.shipments["SH-9"].failure == "lost"


# ------------------------------------------------------------ re-deliveries


def test_differences_go_into_nested_records_and_keep_the_earlier_ones() -> None:
    earlier = {"type": "A", "data": {"amount": 1, "currency": "CNY"}}
    later = {"type": "B", "data": {"amount": 2, "currency": "CNY"}}
    assert differences(earlier, later) == ['type "A" -> "B"', "data.amount 1 -> 2"]


def test_a_record_against_something_else_is_one_difference() -> None:
    assert differences({"data": {"a": 1}}, {"data": None}) == ['data {"a": 1} -> null']
    assert differences({"data": None}, {"data": {"a": 1}}) == ['data null -> {"a": 1}']


def test_values_in_a_difference_are_sorted_unescaped_and_cut_at_sixty_characters() -> None:
    assert differences({"v": {"b": 1, "a": "é"}}, {"v": 1}) == ['v {"a": "é", "b": 1} -> 1']
    sixty = "x" * 58  # 60 characters with its quotes
    assert differences({"v": sixty}, {"v": 1}) == [f'v "{sixty}" -> 1']
    longer = "x" * 59
    assert differences({"v": longer}, {"v": 1}) == [f'v "{longer[:56]}... -> 1']


# ------------------------------------------------------------ the exception queue's rules


def test_a_wrong_sla_setting_is_named_with_its_code() -> None:
    with pytest.raises(ValueError) as raised:
        Settings.from_env({"ORDERLOG_SLA": "OVERSOLD=soon"})
    assert str(raised.value) == "ORDERLOG_SLA OVERSOLD: 'soon' is not a duration such as 30m, 4h or 2d"
    with pytest.raises(ValueError) as raised:
        Settings.from_env({"ORDERLOG_SLA": "NOPE=1h"})
    assert str(raised.value).endswith(f"(one of {', '.join(Settings().sla_hours)})")
    with pytest.raises(ValueError) as raised:
        Settings.from_env({"ORDERLOG_VELOCITY_LIMIT": "1.5"})
    assert str(raised.value) == "ORDERLOG_PRICE_FLOOR must be a number, ORDERLOG_VELOCITY_LIMIT a whole number"


def test_one_finding_per_record_names_the_order_and_the_record() -> None:
    facts = new_facts("SO-7")
    facts["refusals"] = [["2026-03-02T00:00:00.000Z", "E-2"], ["2026-03-01T00:00:00.000Z", "E-1"]]

    class Evaluated:
        pass

    evaluated = Evaluated()
    evaluated.facts = facts  # type: ignore[attr-defined]
    found = _one_per_record("REQUEST_REFUSED", "refusals")(evaluated)
    assert [(f.exception_id, f.code, f.detected_at, f.caused_by) for f in found] == [
        ("REQUEST_REFUSED:SO-7:E-1", "REQUEST_REFUSED", "2026-03-01T00:00:00.000Z", ("E-1",)),
        ("REQUEST_REFUSED:SO-7:E-2", "REQUEST_REFUSED", "2026-03-02T00:00:00.000Z", ("E-2",)),
    ]


def test_an_order_is_paid_in_full_by_the_payment_that_reaches_its_total() -> None:
    facts = new_facts("SO-1")
    facts.update(submitted=["2026-03-01T10:00:00.000Z", "E-0"], total=1000)
    facts["payments"] = [
        ["2026-03-01T11:00:00.000Z", "E-1", "P-1", 500],
        ["2026-03-02T11:00:00.000Z", "E-2", "P-2", 500],
    ]
    # the shipment deadline runs 48 hours from the second payment, not the first
    assert deadlines(facts, Settings()) == ["2026-03-04T11:00:00.000Z"]


def test_an_order_is_dispatched_in_full_when_every_line_is_shipped() -> None:
    facts = new_facts("SO-1")
    facts["lines"] = {"SKU-A": 2}
    facts["dispatches"] = [
        ["2026-03-01T10:00:00.000Z", "E-1", "SH-1", {"SKU-A": 1}],
        ["2026-03-02T10:00:00.000Z", "E-2", "SH-2", {"SKU-A": 1}],
    ]
    assert _dispatched_in_full_at(facts) == ("2026-03-02T10:00:00.000Z", "E-2")


# ------------------------------------------------------------ rejected envelopes, in words


def reason(text: str) -> str:
    with pytest.raises(envelope.InvalidEvent) as raised:
        read_envelope(text)
    return raised.value.reason


def test_each_kind_of_invalid_envelope_is_said_in_its_own_words() -> None:
    assert reason(json.dumps({k: v for k, v in b.paid().items() if k != "type"})) == (
        "type: missing (the event type, e.g. PaymentCaptured)"
    )
    assert reason("{") == "not valid JSON: EOF while parsing an object at line 1 column 1"
    missing_two = {k: v for k, v in b.paid().items() if k not in ("event_id", "source")}
    assert reason(json.dumps(missing_two)) == "event_id: missing; source: missing"


def test_a_value_already_quoted_in_the_message_or_a_whole_record_is_not_repeated() -> None:
    assert reason(json.dumps({**b.paid(), "data": []})) == "data: Input should be an object"
    assert reason(json.dumps({**b.paid(), "occurred_at": "2026-03-01T10:00:00"})) == (
        "occurred_at: time '2026-03-01T10:00:00' has no zone: add 'Z' for UTC or an offset such as +08:00"
    )
    assert reason("5") == "envelope: Input should be an object (got 5)"


def test_a_record_that_is_not_an_object_is_said_so() -> None:
    with pytest.raises(ValidationError) as raised:
        envelope.ENVELOPES["PaymentCaptured"].model_validate([])
    assert envelope.describe_validation_error(raised.value) == "not a JSON object"


def test_the_ids_of_a_rejected_envelope_are_read_by_its_declared_key() -> None:
    stock = {**b.stock_counted(sku="SKU-A"), "order_id": "SO-9"}  # a stray order id: the SKU is the key
    assert envelope.best_effort_ids(json.dumps(stock)) == {"event_id": stock["event_id"], "key": "SKU-A"}
    assert envelope.best_effort_ids(json.dumps({"type": [], "order_id": "SO-1", "event_id": 5})) == {
        "event_id": None,
        "key": "SO-1",
    }


# ------------------------------------------------------------ stock counts and statuses


def test_a_sku_stream_starts_at_nothing_and_the_latest_count_in_event_time_wins() -> None:
    assert Sku.started("SKU-A").on_hand == 0
    first = read_envelope(b.line(b.stock_counted(sku="SKU-A", on_hand=0, event_id="E-1")))
    sku = Sku.open(first)
    assert (sku.key, sku.on_hand, sku.counted_at) == ("SKU-A", 0, first.occurred_at)
    same_time = read_envelope(b.line(b.stock_counted(sku="SKU-A", on_hand=7, event_id="E-2")))
    sku.handle(same_time, recorded_at="2030-01-01T00:00:00.000Z")
    assert sku.on_hand == 7  # same event time: the one recorded later counts
    assert new_records(sku)[-1].recorded_at == "2030-01-01T00:00:00.000Z"
    earlier = read_envelope(b.line(b.stock_counted(sku="SKU-A", on_hand=3, event_id="E-3", at="2026-02-01T00:00:00Z")))
    sku.handle(earlier)
    assert sku.on_hand == 7


def test_one_minor_unit_paid_or_refunded_counts() -> None:
    assert financial_status(paid=1000, refunded=1, total=1000) is FinancialStatus.PARTIALLY_REFUNDED
    assert financial_status(paid=1, refunded=0, total=1000) is FinancialStatus.PARTIALLY_PAID


# ------------------------------------------------------------ money rules of the exception queue

SUBMITTED = "2026-03-01T10:00:00.000Z"
CANCELLED = "2026-03-02T10:00:00.000Z"
REFUND_DUE = "2026-03-03T10:00:00.000Z"  # 24 hours after the cancellation
A_YEAR_ON = "2027-03-01T10:00:00.000Z"


def order_facts(*, cancelled: bool = False) -> dict[str, Any]:
    facts = new_facts("SO-1")
    facts.update(submitted=[SUBMITTED, "E-0"], total=1000, lines={"SKU-A": 1}, lines_value=1000, priced_total=1000)
    if cancelled:
        facts["cancelled"] = [CANCELLED, "E-cancel"]
    return facts


def found(facts: dict[str, Any], code: str, now: str = A_YEAR_ON) -> list[tuple[Any, ...]]:
    return [
        (f.code, f.detected_at, f.caused_by, f.cleared_at, f.cleared_by)
        for f in findings(facts, now, Settings())
        if f.code == code
    ]


def test_three_failed_payments_open_the_finding_with_its_code_and_causes() -> None:
    facts = order_facts()
    facts["failures"] = [[f"2026-03-01T1{n}:00:00.000Z", f"E-f{n}"] for n in (1, 2, 3)]
    assert found(facts, "PAYMENT_FAILED_REPEATEDLY") == [
        ("PAYMENT_FAILED_REPEATEDLY", "2026-03-01T13:00:00.000Z", ("E-f1", "E-f2", "E-f3"), None, None)
    ]


def test_two_failed_payments_and_a_cancellation_are_not_three_failures() -> None:
    facts = order_facts(cancelled=True)
    facts["failures"] = [["2026-03-01T11:00:00.000Z", "E-f1"], ["2026-03-01T12:00:00.000Z", "E-f2"]]
    assert found(facts, "PAYMENT_FAILED_REPEATEDLY") == []


def test_a_refund_within_what_was_paid_is_no_refund_exceeding_it() -> None:
    facts = order_facts()
    facts["payments"] = [["2026-03-01T11:00:00.000Z", "E-p", "P-1", 1000]]
    facts["refunds"] = [["2026-03-01T12:00:00.000Z", "E-r1", 400]]
    assert found(facts, "REFUND_EXCEEDS_PAID") == []
    facts["refunds"].append(["2026-03-01T13:00:00.000Z", "E-r2", 600])  # exactly all of it
    assert found(facts, "REFUND_EXCEEDS_PAID") == []
    facts["refunds"].append(["2026-03-01T14:00:00.000Z", "E-r3", 1])
    assert found(facts, "REFUND_EXCEEDS_PAID") == [
        ("REFUND_EXCEEDS_PAID", "2026-03-01T14:00:00.000Z", ("E-r3",), None, None)
    ]


def test_a_payment_at_the_refund_deadline_itself_is_money_kept_past_it() -> None:
    facts = order_facts(cancelled=True)
    facts["payments"] = [[REFUND_DUE, "E-p", "P-1", 1000]]
    assert found(facts, "REFUND_OVERDUE") == [("REFUND_OVERDUE", REFUND_DUE, ("E-cancel",), None, None)]


def test_one_minor_unit_kept_after_a_cancellation_is_a_refund_overdue_until_refunded() -> None:
    facts = order_facts(cancelled=True)
    facts["payments"] = [["2026-03-01T11:00:00.000Z", "E-p", "P-1", 1000]]
    facts["refunds"] = [["2026-03-02T11:00:00.000Z", "E-r1", 999]]
    assert found(facts, "REFUND_OVERDUE") == [("REFUND_OVERDUE", REFUND_DUE, ("E-cancel",), None, None)]
    facts["refunds"].append(["2026-03-05T11:00:00.000Z", "E-r2", 1])
    assert found(facts, "REFUND_OVERDUE") == [
        ("REFUND_OVERDUE", REFUND_DUE, ("E-cancel",), "2026-03-05T11:00:00.000Z", "E-r2")
    ]


def test_a_refund_after_the_deadline_of_an_order_that_kept_nothing_opens_nothing() -> None:
    facts = order_facts(cancelled=True)
    facts["refunds"] = [["2026-03-05T11:00:00.000Z", "E-r", 100]]
    assert found(facts, "REFUND_OVERDUE") == []
    facts["payments"] = [["2026-03-01T11:00:00.000Z", "E-p", "P-1", 1000]]
    facts["refunds"] = [["2026-03-05T11:00:00.000Z", "E-r", 999]]  # one unit still kept
    assert found(facts, "REFUND_OVERDUE") == [("REFUND_OVERDUE", REFUND_DUE, ("E-cancel",), None, None)]


def test_a_delivery_exactly_at_its_deadline_is_in_time() -> None:
    facts = order_facts()
    facts["dispatches"] = [["2026-03-01T12:00:00.000Z", "E-d", "SH-1", {"SKU-A": 1}]]
    facts["deliveries"] = {"SH-1": ["2026-03-08T12:00:00.000Z", "E-delivered"]}  # 7 days on
    assert found(facts, "DELIVERY_OVERDUE") == []


def test_a_failed_delivery_is_cleared_by_a_later_record_in_recorded_order_at_the_same_instant() -> None:
    facts = order_facts()
    at = "2026-03-02T12:00:00.000Z"
    facts["delivery_failures"] = [[at, "E-b", "SH-1"]]
    facts["deliveries"] = {"SH-1": [at, "E-c"]}  # same millisecond, a later event id
    assert found(facts, "DELIVERY_FAILED") == [("DELIVERY_FAILED", at, ("E-b",), at, "E-c")]


def test_a_failed_delivery_is_cleared_only_by_a_refund_of_money_actually_paid() -> None:
    facts = order_facts()
    facts["delivery_failures"] = [["2026-03-02T12:00:00.000Z", "E-f", "SH-1"]]
    facts["refunds"] = [["2026-03-02T13:00:00.000Z", "E-r0", 100]]  # nothing was paid
    assert found(facts, "DELIVERY_FAILED") == [("DELIVERY_FAILED", "2026-03-02T12:00:00.000Z", ("E-f",), None, None)]
    facts["total"] = 1
    facts["payments"] = [["2026-03-02T13:00:00.000Z", "E-p", "P-1", 1]]
    facts["refunds"] = [["2026-03-02T14:00:00.000Z", "E-r", 1]]  # one minor unit paid, all of it refunded
    assert found(facts, "DELIVERY_FAILED") == [
        ("DELIVERY_FAILED", "2026-03-02T12:00:00.000Z", ("E-f",), "2026-03-02T14:00:00.000Z", "E-r")
    ]


def test_only_a_dispatch_after_the_cancellation_is_shipped_after_it() -> None:
    facts = order_facts(cancelled=True)
    facts["dispatches"] = [["2026-03-01T12:00:00.000Z", "E-d", "SH-1", {"SKU-A": 1}]]
    assert found(facts, "SHIPPED_AFTER_CANCEL") == []
    # the same millisecond as the cancellation: recorded order (the event ids) decides
    facts["cancelled"] = [CANCELLED, "E-b"]
    facts["dispatches"] = [[CANCELLED, "E-a", "SH-9", {"SKU-A": 1}]]
    assert found(facts, "SHIPPED_AFTER_CANCEL") == []
    facts["dispatches"] = [[CANCELLED, "E-c", "SH-0", {"SKU-A": 1}]]
    assert found(facts, "SHIPPED_AFTER_CANCEL") == [("SHIPPED_AFTER_CANCEL", CANCELLED, ("E-b", "E-c"), None, None)]


# ------------------------------------------------------------ the order: record times, shipments, messages

LATER = "2030-01-01T00:00:00.000Z"  # a record time no clock reaches during the test


def handled(order: Order, envelope_: dict[str, Any], recorded_at: str | None = LATER) -> Any:
    return order.handle(read_envelope(b.line(envelope_)), recorded_at=recorded_at)


def test_every_record_an_order_writes_carries_the_record_time_given() -> None:
    order = Order.open(read_envelope(b.line(b.submitted(requires_confirmation=True))))
    new_records(order)
    handled(order, b.confirmed())  # an accepted request
    handled(order, b.paid())  # a fact
    handled(order, b.paid(amount=999, event_id="E-pay-again"))  # a conflict
    handled(order, b.dispatched())
    handled(order, b.delivered(correlation_id="CORR-9"))  # and the engine's completion
    records = new_records(order)
    assert [record.type for record in records] == [
        "OrderConfirmed",
        "PaymentCaptured",
        "ConflictRecorded",
        "ShipmentDispatched",
        "ShipmentDelivered",
        "OrderCompleted",
    ]
    assert {record.recorded_at for record in records} == {LATER}
    assert records[-1].correlation_id == "CORR-9"


def test_a_conflict_record_names_the_key_and_the_earlier_event_and_says_what_differs() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    handled(order, b.paid(amount=1000, event_id="E-pay-1"))
    decision = handled(order, b.paid(amount=999, event_id="E-pay-2"))
    assert decision.reason == (
        "payment_id P-1 is already recorded by event E-pay-1 (order SO-1 version 2) with other content "
        "(data.amount 1000 -> 999): recorded as a conflict, not counted"
    )
    conflict = new_records(order)[-1]
    assert {k: v for k, v in conflict.data.items() if k != "fact_data"} == {
        "fact_type": "PaymentCaptured",
        "key_field": "payment_id",
        "key_value": "P-1",
        "earlier_event_id": "E-pay-1",
    }


def test_a_conflict_that_differs_in_two_places_lists_both() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    handled(order, b.dispatched(lines=[("SKU-A", 2)], event_id="E-d1"))
    other = b.dispatched(lines=[("SKU-A", 1)], event_id="E-d2")
    other["data"]["tracking_no"] = "T2"
    assert (
        '(data.tracking_no "T1" -> "T2"; data.lines [{"qty": 2, "sku": "SKU-A"}] -> [{"qty": 1, "sku": "SKU-A"}])'
        in handled(order, other).reason
    )


def test_a_cancelled_order_refused_a_second_cancellation_in_exact_words() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    handled(order, b.cancelled())
    assert handled(order, b.cancelled(event_id="E-cancel-2")).reason == "order SO-1 is CANCELLED already"


def test_shipments_add_up_per_sku_and_a_sku_never_ordered_gets_a_line_of_its_own() -> None:
    order = Order.open(read_envelope(b.line(b.submitted(lines=[("SKU-A", 2, 500)]))))
    handled(order, b.dispatched(lines=[("SKU-A", 1), ("SKU-X", 1)], shipment_id="SH-1"))
    handled(order, b.dispatched(lines=[("SKU-A", 1)], shipment_id="SH-2"))
    assert order.shipments["SH-1"].lines == {"SKU-A": 1, "SKU-X": 1}
    assert order.lines["SKU-X"] == Line("SKU-X", 0, 0, shipped_qty=1)
    handled(order, b.delivery_failed(shipment_id="SH-1"))
    assert order.shipments["SH-1"].failure == "lost"
    handled(order, b.delivered(shipment_id="SH-1"))
    handled(order, b.delivered(shipment_id="SH-2"))
    assert order.shipments["SH-1"].failure is None
    assert order.lines["SKU-A"].delivered_qty == 2
    assert set(order.lines) == {"SKU-A", "SKU-X"}


def test_a_delivery_reported_before_its_dispatch_counts_when_the_dispatch_arrives() -> None:
    order = Order.open(read_envelope(b.line(b.submitted(lines=[("SKU-A", 2, 500)]))))
    handled(order, b.dispatched(lines=[("SKU-A", 1)], shipment_id="SH-1"))
    handled(order, b.delivered(shipment_id="SH-1"))
    handled(order, b.delivered(shipment_id="SH-2"))
    handled(order, b.dispatched(lines=[("SKU-A", 1)], shipment_id="SH-2"))
    assert order.shipments["SH-2"].lines == {"SKU-A": 1}
    assert order.lines["SKU-A"].delivered_qty == 2


def test_one_minor_unit_paid_makes_an_order_partially_paid() -> None:
    assert (
        order_status(
            cancelled=False,
            completed=False,
            awaiting_confirmation=False,
            units_ordered=1,
            units_dispatched_of_ordered=0,
            paid=1,
            total=1000,
        )
        is Status.PARTIALLY_PAID
    )


def test_stored_bytes_that_are_no_record_are_said_so() -> None:
    with pytest.raises(UnreadableRecord, match=r"^not a stored record \("):
        record_from_stored(b"[1, 2]")


# ------------------------------------------------------------ addresses and the queue's facts


def test_each_missing_or_malformed_part_of_an_address_is_named() -> None:
    blank = {**b.ADDRESS, "name": " ", "phone": " "}
    assert address_problems(blank) == ["name missing", "phone missing"]
    assert address_problems({**b.ADDRESS, "phone": "1-----2"}) == ["phone malformed"]  # the shape, too few digits
    assert address_problems({**b.ADDRESS, "phone": "tel 13800138000"}) == ["phone malformed"]
    assert address_problems({**b.ADDRESS, "phone": "12-34-56"}) == []  # six digits are enough
    unusable = {**b.ADDRESS, "postal_code": " ", "country": "China"}
    assert address_problems(unusable) == ["postal_code missing", "country is not an ISO 3166 alpha-2 code"]
    assert address_problems({**b.ADDRESS, "postal_code": "#1"}) == ["postal_code malformed"]


def test_an_orders_facts_start_empty() -> None:
    assert new_facts("SO-1") == {
        "order_id": "SO-1",
        "customer_id": None,
        "submitted": None,
        "total": 0,
        "lines": {},
        "priced_total": None,
        "lines_value": 0,
        "discount": 0,
        "requires_confirmation": False,
        "confirmed": None,
        "address_valid": True,
        "address_fixed": None,
        "payments": [],
        "failures": [],
        "refunds": [],
        "dispatches": [],
        "deliveries": {},
        "delivery_failures": [],
        "cancelled": None,
        "refusals": [],
        "conflicts": [],
        "velocity": None,
        "actions": {},
    }


def test_money_after_each_payment_and_refund_in_event_time() -> None:
    facts = order_facts()
    facts["payments"] = [["2026-03-01T11:00:00.000Z", "E-p", "P-1", 1000]]
    facts["refunds"] = [["2026-03-01T12:00:00.000Z", "E-r", 300]]
    assert list(_money(facts)) == [
        (("2026-03-01T11:00:00.000Z", "E-p"), 1000, 0, "payment"),
        (("2026-03-01T12:00:00.000Z", "E-r"), 1000, 300, "refund"),
    ]


def test_payments_before_the_first_dispatch_are_told_from_later_ones_by_recorded_order() -> None:
    facts = order_facts()
    at = "2026-03-01T12:00:00.000Z"
    facts["dispatches"] = [[at, "E-b", "SH-1", {"SKU-A": 1}]]
    facts["payments"] = [[at, "E-a", "Z-9", 1000]]  # same millisecond, an earlier event id
    assert found(facts, "SHIPPED_BEFORE_PAID") == []


# ------------------------------------------------------------ what a submission sets, and the stream's bookkeeping


def test_a_submitted_order_holds_what_its_submission_says() -> None:
    submission = b.submitted(lines=[("SKU-A", 2, 500)], shipping_fee=50, discount=30)
    order = Order.open(read_envelope(b.line(submission)), recorded_at=LATER)
    assert (order.channel, order.currency, order.shipping_fee, order.discount) == ("web", "CNY", 50, 30)
    assert order.lines == {"SKU-A": Line("SKU-A", 2, 500)}
    assert order.confirmed is False
    assert new_records(order)[0].recorded_at == LATER


def test_a_second_submission_names_when_the_order_was_first_submitted() -> None:
    order = Order.open(read_envelope(b.line(b.submitted(at="2026-03-01T10:00:00Z"))))
    handled(order, b.paid(at="2026-02-01T10:00:00Z"))  # an earlier event time, recorded later
    again = handled(order, b.submitted(at="2026-03-05T10:00:00Z", event_id="E-again"))
    assert again.reason == "order SO-1 was already submitted (2026-03-01T10:00:00.000Z); submit it once"


def test_the_first_record_opens_the_stream_and_the_rest_are_recorded_on_it() -> None:
    order = Order.open(read_envelope(b.line(b.submitted())))
    handled(order, b.paid())
    first, second = order.collect_events()
    assert type(first) is Order.Opened and type(second) is Order.Recorded


def test_a_stream_that_does_not_start_at_version_one_or_a_historical_one_says_so() -> None:
    records = new_records(Order.open(read_envelope(b.line(b.submitted()))))
    with pytest.raises(ValueError, match=r"^order SO-1 starts at version 1, not 2$"):
        Order.fold(None, records[0]._replace(version=2))
    replayed = Order.replay(records, lambda record: True)
    assert replayed is not None
    with pytest.raises(HistoricalStateError, match=r"^order SO-1 was rebuilt as of an earlier moment$"):
        handled(replayed, b.paid())


# ------------------------------------------------------------ instants and duplicate members


@pytest.mark.parametrize("text", ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"])
def test_the_first_and_last_years_are_in_range(text: str) -> None:
    assert parse_instant(text).year in (1970, 9999)


def test_a_time_out_of_range_names_the_range() -> None:
    with pytest.raises(InstantError, match=r"^time '1969-12-31T23:59:59Z' is outside 1970-9999 \(in UTC\)$"):
        parse_instant("1969-12-31T23:59:59Z")


def test_the_range_is_judged_in_utc_whatever_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        with pytest.raises(InstantError):
            parse_instant("1970-01-01T00:30:00+01:00")  # 1969 in UTC, 1970 in Shanghai
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_duplicate_member_is_found_in_text_holding_a_lone_surrogate() -> None:
    assert envelope.duplicate_member('{"a": "\\ud800", "b": "\ud800", "a": 1}') == "a"


def test_an_envelope_refused_after_validation_still_names_its_event_and_stream() -> None:
    twice = b.line(b.paid(event_id="E-twice")).replace('"source":', '"actor": "a", "actor": "b", "source":')
    with pytest.raises(envelope.InvalidEvent) as raised:
        read_envelope(twice)
    assert (raised.value.event_id, raised.value.key) == ("E-twice", "SO-1")
    with pytest.raises(envelope.InvalidEvent) as raised:
        read_envelope(b.line(b.paid(event_id="orderlog/mine")))
    assert (raised.value.event_id, raised.value.key) == ("orderlog/mine", "SO-1")


def test_an_instant_is_written_in_utc_whatever_its_zone_and_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        shanghai = timezone(timedelta(hours=8))
        assert format_instant(datetime(2026, 3, 1, 18, 0, 0, 123999, tzinfo=shanghai)) == "2026-03-01T10:00:00.123Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_unsealed_records_are_compact_json_with_the_genesis_hash() -> None:
    sealed, record_hash = UnsealedRecords().seal({"a": "é", "b": [1, 2]})
    assert record_hash == GENESIS_HASH
    assert sealed == '{"a":"é","b":[1,2],"hash":"'.encode() + GENESIS_HASH.encode() + b'"}'


def test_unsafe_characters_are_escaped_and_layout_kept_only_when_asked() -> None:
    assert escaped("plain text") == "plain text"
    assert escaped("a\u200bb\nc\td") == "a\\u200bb\\u000ac\\u0009d"
    assert escaped("a\u200bb\nc\td", keep_layout=True) == "a\\u200bb\nc\td"
    assert escaped("\x1b[31m", keep_layout=True) == "\\u001b[31m"


def test_the_engines_completion_carries_the_record_time_given_even_one_in_the_past() -> None:
    past = "2020-01-01T00:00:00.000Z"
    order = Order.open(read_envelope(b.line(b.submitted())), recorded_at=past)
    for envelope_ in (b.paid(), b.dispatched(), b.delivered()):
        handled(order, envelope_, recorded_at=past)
    completion = new_records(order)[-1]
    assert (completion.type, completion.recorded_at) == ("OrderCompleted", past)


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("0", True),
        ("123", True),
        ("", False),
        ("²", False),
        ("٣", False),
        ("-1", False),
        ("1 ", False),
        ("9" * 19, True),
        ("9" * 20, False),
    ],
)
def test_a_whole_number_is_ascii_digits_only(text: str, whole: bool) -> None:
    assert is_whole_number(text) is whole
