"""Every lifecycle rule, legal and refused, on the Order aggregate alone (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from orderlog.domain.envelope import read_envelope
from orderlog.domain.order import Order
from orderlog.domain.record import Record
from orderlog.domain.status import FinancialStatus, Status
from orderlog.domain.stream import Decision, Outcome
from tests import builders as b


def run(*envelopes: dict[str, Any]) -> tuple[Order, list[Decision]]:
    first, *rest = [read_envelope(b.line(e)) for e in envelopes]
    order = Order.open(first)
    return order, [order.handle(upstream) for upstream in rest]


def new_records(order: Order) -> list[Record]:
    return [event.record for event in order.collect_events()]


def types(order: Order) -> list[str]:
    return [record.type for record in new_records(order)]


# ---------------------------------------------------------------- submission and confirmation


def test_a_submitted_order_waits_for_payment() -> None:
    order, _ = run(b.submitted())
    assert order.status is Status.PENDING_PAYMENT
    assert order.financial_status is FinancialStatus.UNPAID


def test_an_order_that_requires_confirmation_waits_for_it_then_for_payment() -> None:
    order, _ = run(b.submitted(requires_confirmation=True))
    assert order.status is Status.PENDING_CONFIRMATION
    order.handle(read_envelope(b.line(b.confirmed())))
    assert order.status is Status.PENDING_PAYMENT


def test_confirming_twice_is_refused_and_the_refusal_recorded() -> None:
    order, decisions = run(b.submitted(requires_confirmation=True), b.confirmed(), b.confirmed())
    assert decisions[1].outcome is Outcome.REFUSED
    assert "already confirmed" in decisions[1].reason
    assert types(order) == ["OrderSubmitted", "OrderConfirmed", "RequestRefused"]


def test_confirming_an_order_that_needs_no_confirmation_is_refused() -> None:
    _, decisions = run(b.submitted(), b.confirmed())
    assert decisions[0].outcome is Outcome.REFUSED
    assert "does not require confirmation" in decisions[0].reason


def test_submitting_an_order_again_under_a_new_event_id_is_refused() -> None:
    order, decisions = run(b.submitted(), b.submitted())
    assert decisions[0].outcome is Outcome.REFUSED and "already submitted" in decisions[0].reason
    assert types(order) == ["OrderSubmitted", "RequestRefused"]


# ---------------------------------------------------------------- payments


@pytest.mark.parametrize(
    ("payments", "status", "financial"),
    [
        ([300], Status.PARTIALLY_PAID, FinancialStatus.PARTIALLY_PAID),
        ([300, 700], Status.PENDING_SHIPMENT, FinancialStatus.PAID),
        ([1000], Status.PENDING_SHIPMENT, FinancialStatus.PAID),
        ([1000, 1000], Status.PENDING_SHIPMENT, FinancialStatus.PAID),
    ],
)
def test_payments_add_up_towards_the_total(payments: list[int], status: Status, financial: FinancialStatus) -> None:
    order, _ = run(b.submitted(), *[b.paid(amount=a, payment_id=f"P-{i}") for i, a in enumerate(payments)])
    assert order.paid_amount == sum(payments)
    assert (order.status, order.financial_status) == (status, financial)


def test_a_capture_re_sent_under_a_new_event_id_is_the_same_payment_counted_once() -> None:
    order, decisions = run(b.submitted(), b.paid(amount=1000, event_id="e-1"), b.paid(amount=1000, event_id="e-2"))
    assert [d.outcome for d in decisions] == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert "payment_id P-1 is already recorded by event e-1 (order SO-1 version 2)" in decisions[1].reason
    assert order.paid_amount == 1000 and order.version == 2


def test_a_second_capture_under_another_payment_id_is_a_second_payment() -> None:
    order, decisions = run(b.submitted(), b.paid(amount=1000, payment_id="P-1"), b.paid(amount=1000, payment_id="P-2"))
    assert [d.outcome for d in decisions] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert order.paid_amount == 2000 and order.financial_status is FinancialStatus.PAID


def test_a_failed_payment_is_recorded_and_changes_no_figure() -> None:
    order, _ = run(b.submitted(), b.payment_failed())
    assert order.failed_payments == 1 and order.status is Status.PENDING_PAYMENT


def test_a_payment_after_cancellation_is_a_fact_recorded_all_the_same() -> None:
    order, decisions = run(b.submitted(), b.cancelled(), b.paid(amount=1000))
    assert decisions[1].outcome is Outcome.ACCEPTED
    assert order.status is Status.CANCELLED and order.financial_status is FinancialStatus.PAID


# ---------------------------------------------------------------- shipping and completion


def test_dispatches_add_up_per_line_partial_then_shipped() -> None:
    lines = [("SKU-A", 2, 500), ("SKU-B", 1, 300)]
    order, _ = run(b.submitted(lines=lines), b.paid(amount=1300), b.dispatched(lines=[("SKU-A", 1)]))
    assert order.status is Status.PARTIALLY_SHIPPED
    order.handle(read_envelope(b.line(b.dispatched(lines=[("SKU-A", 1), ("SKU-B", 1)], shipment_id="SH-2"))))
    assert order.status is Status.SHIPPED
    assert {s: (line.shipped_qty, line.delivered_qty) for s, line in order.lines.items()} == {
        "SKU-A": (2, 0),
        "SKU-B": (1, 0),
    }


def test_dispatch_before_full_payment_is_recorded_all_the_same() -> None:
    order, decisions = run(b.submitted(), b.dispatched())
    assert decisions[0].outcome is Outcome.ACCEPTED
    assert order.status is Status.SHIPPED and order.financial_status is FinancialStatus.UNPAID


def test_more_dispatched_than_ordered_and_unknown_skus_show_in_the_figures() -> None:
    order, _ = run(b.submitted(), b.paid(), b.dispatched(lines=[("SKU-A", 5), ("SKU-Z", 1)]))
    assert order.lines["SKU-A"].shipped_qty == 5
    assert (order.lines["SKU-Z"].qty, order.lines["SKU-Z"].shipped_qty) == (0, 1)
    assert order.status is Status.SHIPPED


def test_the_engine_completes_an_order_when_every_shipment_is_delivered() -> None:
    order, _ = run(b.submitted(), b.paid(), b.dispatched(), b.delivered(at="2026-03-03T09:00:00Z"))
    assert order.status is Status.COMPLETED
    events = new_records(order)
    completion = events[-1]
    assert (completion.type, completion.source) == ("OrderCompleted", "orderlog")
    assert completion.event_id == f"orderlog/completed/{events[-2].event_id}"
    assert completion.occurred_at == "2026-03-03T09:00:00.000Z"


def test_no_completion_while_a_shipment_is_undelivered_or_lines_are_outstanding() -> None:
    lines = [("SKU-A", 2, 500), ("SKU-B", 1, 300)]
    order, _ = run(b.submitted(lines=lines), b.dispatched(lines=[("SKU-A", 2)]), b.delivered())
    assert order.status is Status.PARTIALLY_SHIPPED  # SKU-B outstanding
    order.handle(read_envelope(b.line(b.dispatched(lines=[("SKU-B", 1)], shipment_id="SH-2"))))
    assert order.status is Status.SHIPPED  # SH-2 not delivered yet
    order.handle(read_envelope(b.line(b.delivered(shipment_id="SH-2"))))
    assert order.status is Status.COMPLETED


def test_a_delivery_reported_before_its_dispatch_counts_once_the_dispatch_arrives() -> None:
    order, _ = run(b.submitted(), b.delivered(), b.dispatched())
    assert order.lines["SKU-A"].delivered_qty == 2
    assert order.status is Status.COMPLETED


def test_a_failed_delivery_keeps_the_order_open_until_delivered() -> None:
    order, _ = run(b.submitted(), b.dispatched(), b.delivery_failed(reason="address"))
    assert order.status is Status.SHIPPED and order.shipments["SH-1"].failure == "address"
    order.handle(read_envelope(b.line(b.delivered())))
    assert order.status is Status.COMPLETED


def test_an_explicit_completion_is_accepted_from_shipped() -> None:
    order, decisions = run(b.submitted(), b.paid(), b.dispatched(), b.completed())
    assert decisions[-1].outcome is Outcome.ACCEPTED and order.status is Status.COMPLETED


@pytest.mark.parametrize("before", [[], [b.dispatched(lines=[("SKU-A", 1)])]])
def test_an_explicit_completion_is_refused_before_everything_shipped(before: list[dict[str, Any]]) -> None:
    _, decisions = run(b.submitted(), *before, b.completed())
    assert decisions[-1].outcome is Outcome.REFUSED
    assert "only a SHIPPED order can be completed" in decisions[-1].reason


def test_completing_twice_is_refused() -> None:
    _, decisions = run(b.submitted(), b.dispatched(), b.delivered(), b.completed())
    assert decisions[-1].outcome is Outcome.REFUSED


# ---------------------------------------------------------------- cancellation and refunds


@pytest.mark.parametrize(
    "before",
    [
        [],
        [b.paid(amount=300)],
        [b.paid(amount=1000)],
    ],
    ids=["pending payment", "partially paid", "pending shipment"],
)
def test_cancellation_is_allowed_up_to_pending_shipment(before: list[dict[str, Any]]) -> None:
    order, decisions = run(b.submitted(), *before, b.cancelled(reason_code="OUT_OF_STOCK", initiated_by="merchant"))
    assert decisions[-1].outcome is Outcome.ACCEPTED
    assert order.status is Status.CANCELLED
    assert order.cancellation == {
        "reason_code": "OUT_OF_STOCK",
        "initiated_by": "merchant",
        "note": "",
        "at": "2026-03-01T10:00:00.000Z",
    }


def test_cancellation_is_allowed_while_pending_confirmation() -> None:
    order, decisions = run(b.submitted(requires_confirmation=True), b.cancelled())
    assert decisions[0].outcome is Outcome.ACCEPTED and order.status is Status.CANCELLED


@pytest.mark.parametrize(
    "shipped",
    [[b.dispatched(lines=[("SKU-A", 1)])], [b.dispatched()], [b.dispatched(), b.delivered()]],
    ids=["partially shipped", "shipped", "completed"],
)
def test_cancellation_is_refused_once_anything_has_shipped(shipped: list[dict[str, Any]]) -> None:
    order, decisions = run(b.submitted(), b.paid(), *shipped, b.cancelled())
    assert decisions[-1].outcome is Outcome.REFUSED
    assert "needs a return, not a cancellation" in decisions[-1].reason
    refusal = new_records(order)[-1]
    assert refusal.type == "RequestRefused"
    assert refusal.data["request_type"] == "OrderCancelled"
    assert refusal.data["reason"] == decisions[-1].reason


def test_cancelling_twice_is_refused() -> None:
    _, decisions = run(b.submitted(), b.cancelled(), b.cancelled())
    assert decisions[-1].outcome is Outcome.REFUSED and "already" in decisions[-1].reason


@pytest.mark.parametrize(
    ("refunds", "financial"),
    [([400], FinancialStatus.PARTIALLY_REFUNDED), ([400, 600], FinancialStatus.REFUNDED)],
)
def test_refunds_add_up_and_move_the_financial_status(refunds: list[int], financial: FinancialStatus) -> None:
    order, _ = run(
        b.submitted(),
        b.paid(),
        b.cancelled(),
        *[b.refunded(amount=a, refund_id=f"R-{i}") for i, a in enumerate(refunds)],
    )
    assert order.refunded_amount == sum(refunds) and order.financial_status is financial


def test_a_refund_above_what_was_paid_is_recorded_truthfully() -> None:
    order, decisions = run(b.submitted(), b.paid(amount=500), b.refunded(amount=900))
    assert decisions[-1].outcome is Outcome.ACCEPTED
    assert (order.paid_amount, order.refunded_amount) == (500, 900)
    assert order.financial_status is FinancialStatus.REFUNDED


# ---------------------------------------------------------------- address corrections


def test_an_address_correction_is_accepted_before_shipping() -> None:
    new = {**b.ADDRESS, "line1": "1 Huaihai Road"}
    order, decisions = run(b.submitted(), b.address_corrected(address=new))
    assert decisions[0].outcome is Outcome.ACCEPTED and order.shipping_address == new


def test_an_address_correction_is_refused_once_shipped() -> None:
    _, decisions = run(b.submitted(), b.dispatched(), b.address_corrected())
    assert decisions[-1].outcome is Outcome.REFUSED and "can no longer change" in decisions[-1].reason


# ---------------------------------------------------------------- idempotency and records


def test_an_event_id_already_recorded_is_a_duplicate_and_changes_nothing() -> None:
    payment = b.paid(amount=400)
    order, decisions = run(b.submitted(), payment, payment)
    assert decisions[-1].outcome is Outcome.DUPLICATE
    assert order.paid_amount == 400 and order.version == 2


def test_a_refused_request_sent_again_is_a_duplicate_not_a_second_refusal() -> None:
    cancel = b.cancelled()
    order, decisions = run(b.submitted(), b.dispatched(), cancel, cancel)
    assert [d.outcome for d in decisions[1:]] == [Outcome.REFUSED, Outcome.DUPLICATE]
    assert types(order).count("RequestRefused") == 1


def test_every_record_keeps_the_envelope_event_time_record_time_and_a_hash_chain() -> None:
    order, _ = run(b.submitted(actor="u-1", correlation_id="cart-9"), b.paid(at="2026-03-01T11:00:00+01:00"))
    first, second = new_records(order)
    record = first.as_dict()
    assert {k: record[k] for k in ("type", "event_id", "source", "actor", "correlation_id", "version")} == {
        "type": "OrderSubmitted",
        "event_id": first.event_id,
        "source": "test-source",
        "actor": "u-1",
        "correlation_id": "cart-9",
        "version": 1,
    }
    assert second.occurred_at == "2026-03-01T10:00:00.000Z"
    assert first.recorded_at <= second.recorded_at
    assert first.prev_hash == "0" * 64 and second.prev_hash == first.hash != second.hash


# ---------------------------------------------------------------- natural keys


NATURAL_KEY_FACTS = {
    "PaymentCaptured": (b.paid(amount=400), {"amount": 19700}),
    "RefundIssued": (b.refunded(amount=400), {"amount": 1000}),
    "ShipmentDispatched": (b.dispatched(lines=[("SKU-A", 1)]), {"lines": [{"sku": "SKU-A", "qty": 2}]}),
    "ShipmentDelivered": (b.delivered(), None),
}


def test_every_fact_with_a_natural_key_is_covered_here() -> None:
    from orderlog.domain.contract import EVENT_TYPES

    assert {name for name, t in EVENT_TYPES.items() if t.natural_key} == set(NATURAL_KEY_FACTS)


def _before(fact_type: str) -> list[dict[str, Any]]:
    """What must come before a fact for it to mean something (a delivery needs a dispatch)."""
    return [b.dispatched(event_id="d-0")] if fact_type == "ShipmentDelivered" else []


@pytest.mark.parametrize("fact_type", sorted(NATURAL_KEY_FACTS))
def test_the_same_natural_key_and_content_under_a_new_event_id_is_a_duplicate(fact_type: str) -> None:
    fact, _ = NATURAL_KEY_FACTS[fact_type]
    if fact_type == "ShipmentDelivered":
        fact = b.delivered()
    order, decisions = run(b.submitted(), *_before(fact_type), fact, {**fact, "event_id": "again"})
    before = order.version
    assert decisions[-1].outcome is Outcome.DUPLICATE and "counted once" in decisions[-1].reason
    assert "again" not in order.event_ids and order.version == before


@pytest.mark.parametrize("fact_type", sorted(t for t, (_, change) in NATURAL_KEY_FACTS.items() if change))
def test_the_same_natural_key_with_other_content_is_a_recorded_conflict_that_changes_no_figure(fact_type: str) -> None:
    fact, change = NATURAL_KEY_FACTS[fact_type]
    other = {**fact, "event_id": "other", "data": {**fact["data"], **change}}
    order, _ = run(b.submitted(), fact)
    figures = (order.paid_amount, order.refunded_amount, [line.shipped_qty for line in order.lines.values()])
    decision = order.handle(read_envelope(b.line(other)))
    assert decision.outcome is Outcome.CONFLICT
    assert f"is already recorded by event {fact['event_id']}" in decision.reason and "->" in decision.reason
    assert (order.paid_amount, order.refunded_amount, [line.shipped_qty for line in order.lines.values()]) == figures
    conflict = new_records(order)[-1]
    assert conflict.type == "ConflictRecorded" and conflict.event_id == "other"
    assert conflict.data["earlier_event_id"] == fact["event_id"] and conflict.data["fact_type"] == fact_type
    assert order.conflicts == 1 and order.event_ids["other"] == order.version
    again = order.handle(read_envelope(b.line(other)))
    assert again.outcome is Outcome.DUPLICATE and order.conflicts == 1


# ---------------------------------------------------------------- every request to a closed order


CANCEL_FIRST = [b.submitted(requires_confirmation=True), b.cancelled()]
COMPLETE_FIRST = [b.submitted(requires_confirmation=True), b.dispatched(), b.delivered()]
REQUESTS = {
    "OrderSubmitted": (b.submitted(), "already submitted"),
    "OrderConfirmed": (b.confirmed(), "nothing left to confirm"),
    "OrderCancelled": (b.cancelled(), ""),
    "OrderCompleted": (b.completed(), "only a SHIPPED order can be completed"),
    "AddressCorrected": (b.address_corrected(), "can no longer change"),
}


def test_every_request_type_is_tried_on_closed_orders() -> None:
    from orderlog.domain.contract import EVENT_TYPES, Kind

    assert set(REQUESTS) == {name for name, t in EVENT_TYPES.items() if t.kind is Kind.REQUEST}


@pytest.mark.parametrize("request_type", sorted(REQUESTS))
@pytest.mark.parametrize(("history", "status"), [(CANCEL_FIRST, "CANCELLED"), (COMPLETE_FIRST, "COMPLETED")])
def test_every_request_to_a_cancelled_or_completed_order_is_refused(
    request_type: str, history: list[dict[str, Any]], status: str
) -> None:
    request, words = REQUESTS[request_type]
    order, decisions = run(*history, {**request, "event_id": f"late-{request_type}"})
    assert order.status == status
    assert decisions[-1].outcome is Outcome.REFUSED, decisions[-1]
    assert words in decisions[-1].reason
    assert types(order)[-1] == "RequestRefused" and order.status == status


def test_an_order_dispatched_before_its_confirmation_is_shipped_and_may_still_be_confirmed() -> None:
    order, decisions = run(b.submitted(requires_confirmation=True), b.dispatched())
    assert decisions[0].outcome is Outcome.ACCEPTED
    assert order.status is Status.SHIPPED and not order.confirmed
    assert order.handle(read_envelope(b.line(b.confirmed()))).outcome is Outcome.ACCEPTED
    assert order.status is Status.SHIPPED and order.confirmed


def test_the_engine_completes_at_the_latest_event_time_not_the_deliverys() -> None:
    order, _ = run(
        b.submitted(at="2026-03-01T10:00:00Z"),
        b.dispatched(at="2026-03-02T10:00:00Z"),
        b.refunded(amount=1, at="2026-03-09T10:00:00Z"),
        b.delivered(at="2026-03-04T10:00:00Z"),  # arrives late: it happened before the refund
    )
    completion = new_records(order)[-1]
    assert completion.type == "OrderCompleted"
    assert completion.occurred_at == "2026-03-09T10:00:00.000Z"
    assert order.completed_at == "2026-03-09T10:00:00.000Z"
