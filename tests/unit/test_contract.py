"""Every validation rule of the upstream contract: a clear error naming field and reason."""

from __future__ import annotations

import json

import pytest

from orderlog.domain.envelope import InvalidEvent, read_envelope
from tests import builders as b


def reason(text: str) -> str:
    with pytest.raises(InvalidEvent) as caught:
        read_envelope(text)
    return caught.value.reason


def test_a_valid_envelope_is_read_with_its_time_normalised_to_utc_milliseconds() -> None:
    upstream = read_envelope(b.line(b.paid(at="2026-03-01T18:15:00.123456+08:00", amount=250)))
    assert upstream.type == "PaymentCaptured"
    assert upstream.key == "SO-1"
    assert upstream.occurred_at == "2026-03-01T10:15:00.123Z"
    assert upstream.data == {"payment_id": "P-1", "amount": 250, "method": "alipay"}


def test_defaults_of_the_contract_are_filled_in() -> None:
    data = b.submitted()["data"]
    del data["shipping_fee"], data["discount"], data["requires_confirmation"]
    upstream = read_envelope(json.dumps(b.envelope("OrderSubmitted", data=data)))
    assert (upstream.data["shipping_fee"], upstream.data["discount"]) == (0, 0)
    assert upstream.data["requires_confirmation"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"event_id": "e1", "type": ', "not valid JSON"),
        ("[1, 2]", "envelope: Input should be an object"),
        (b.line(b.envelope("OrderShipped")), "type: unknown event type 'OrderShipped'"),
        (b.line({k: v for k, v in b.paid().items() if k != "type"}), "type: missing"),
        (b.line({k: v for k, v in b.paid().items() if k != "source"}), "source: missing"),
        (b.line(b.paid(order_id="")), "order_id: String should have at least 1 character"),
        (b.line(b.paid(at="2026-03-01T10:00:00")), "occurred_at: time '2026-03-01T10:00:00' has no zone"),
        (b.line(b.paid(at="yesterday")), "occurred_at: not an ISO 8601 time"),
        (b.line(b.paid(amount=-5)), "data.amount: Input should be greater than 0 (got -5)"),
        (b.line(b.paid(amount="5")), "data.amount: Input should be a valid integer (got '5')"),
        (b.line(b.paid(amount=5.0)), "data.amount: Input should be a valid integer"),
        (b.line(b.paid(amount=2**60)), "data.amount: Input should be less than or equal to 9007199254740991"),
        (
            b.line(b.submitted(lines=[("SKU-A", -1, 100)])),
            "data.lines[0].qty: Input should be greater than 0",
        ),
        (b.line(b.submitted(lines=[("SKU-A", 1, 100), ("SKU-A", 2, 100)])), "sku 'SKU-A' appears twice"),
        (b.line(b.dispatched(lines=[])), "data.lines: List should have at least 1 item"),
        (
            b.line(b.cancelled(reason_code="BORED")),
            "data.reason_code: 'BORED' is not one of the allowed values",
        ),
        (
            b.line(b.cancelled(initiated_by="robot")),
            "data.initiated_by: 'robot' is not one of the allowed values",
        ),
        (b.line(b.cancelled(reason_code="OTHER")), "reason_code OTHER needs a note"),
        (
            b.line(b.delivery_failed(reason="stolen")),
            "data.reason: 'stolen' is not one of the allowed values",
        ),
        (
            b.line(b.envelope("OrderConfirmed", data={"confirmed_by": "x", "extra": 1})),
            "data.extra: unknown field",
        ),
        (b.line({**b.paid(), "colour": "red"}), "colour: unknown field"),
        (
            b.line(b.submitted(requires_confirmation=1)),
            "data.requires_confirmation: Input should be a valid boolean",
        ),
        (b.line({**b.paid(), "signature": "not base64"}), "signature: should be standard base64"),
        (b.line(b.stock_counted(on_hand=-1)), "data.on_hand: Input should be greater than or equal to 0"),
        ('{"event_id": "e", "type": "PaymentCaptured", "order_id": "\\ud800"}', "not valid JSON"),
    ],
)
def test_each_invalid_event_gets_a_reason_naming_the_field(text: str, expected: str) -> None:
    assert expected in reason(text)


def test_the_error_carries_event_id_and_order_when_they_can_be_read() -> None:
    with pytest.raises(InvalidEvent) as caught:
        read_envelope(b.line(b.paid(order_id="SO-9", event_id="evt-77", amount=0)))
    assert (caught.value.event_id, caught.value.key) == ("evt-77", "SO-9")


def test_several_problems_are_all_named_on_one_line() -> None:
    text = reason(b.line(b.paid(amount=-1, payment_id="")))
    assert "data.amount" in text and "data.payment_id" in text and "\n" not in text


def test_an_address_with_empty_parts_is_accepted_and_flagged_later_not_refused() -> None:
    upstream = read_envelope(b.line(b.submitted(address={**b.ADDRESS, "phone": "", "name": ""})))
    assert upstream.data["shipping_address"]["phone"] == ""
