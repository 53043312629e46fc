"""Re-deliveries on real stores: the same event again is a duplicate; an event id or a
natural key re-used for other content is a conflict, reported, and never changes a figure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orderlog.config import Config
from orderlog.domain.order import Order
from orderlog.intake.outcomes import LineResult
from tests import builders as b
from tests.conftest import open_intake, reopen

Publish = Callable[..., list[LineResult]]


def order(config: Config, order_id: str = "SO-1") -> Order:
    app = reopen(config, writing=False)
    try:
        state = app.stream(Order, order_id)
        assert state is not None
        return state
    finally:
        app.close()


def outcomes(results: list[LineResult]) -> list[str]:
    return [result.outcome for result in results]


def test_an_event_id_re_used_for_another_amount_is_a_conflict_never_applied(config: Config, publish: Publish) -> None:
    publish(b.submitted(total=20000), b.paid(amount=100, event_id="evt-pay"))
    (result,) = publish(b.paid(amount=19700, event_id="evt-pay"))
    assert result.outcome == "conflict"
    assert "event id evt-pay is already recorded as order SO-1 version 2 (PaymentCaptured" in result.reason
    assert "data.amount 100 -> 19700" in result.reason and "not applied" in result.reason
    state = order(config)
    assert state.paid_amount == 100 and state.version == 2


def test_a_submission_re_sent_with_another_total_is_a_conflict(config: Config, publish: Publish) -> None:
    publish(b.submitted(event_id="evt-sub", total=1000))
    (result,) = publish(b.submitted(event_id="evt-sub", total=1200))
    assert result.outcome == "conflict" and "data.total 1000 -> 1200" in result.reason
    assert order(config).total == 1000


def test_a_submission_re_sent_as_it_was_is_a_duplicate_though_its_address_is_sealed(
    config: Config, publish: Publish
) -> None:
    submission = b.submitted(event_id="evt-sub")
    publish(submission)
    assert outcomes(publish(submission)) == ["duplicate"]
    (changed,) = publish(
        {**submission, "data": {**submission["data"], "shipping_address": {**b.ADDRESS, "name": "Li Na"}}}
    )
    assert changed.outcome == "conflict" and "data.shipping_address.name differs" in changed.reason
    assert "Li Na" not in changed.reason and "Zhang Wei" not in changed.reason  # reasons reach logs and dead letters


def test_a_request_refused_and_re_sent_is_a_duplicate_and_re_sent_changed_is_a_conflict(
    config: Config, publish: Publish
) -> None:
    cancel = b.cancelled(event_id="evt-cancel")
    publish(b.submitted(), b.dispatched(), cancel)
    assert outcomes(publish(cancel)) == ["duplicate"]
    (changed,) = publish({**cancel, "data": {**cancel["data"], "reason_code": "OUT_OF_STOCK"}})
    assert changed.outcome == "conflict" and "data.reason_code" in changed.reason


def test_after_an_erasure_a_re_sent_submission_is_judged_on_what_can_still_be_read(
    config: Config, publish: Publish
) -> None:
    submission = b.submitted(event_id="evt-sub", customer_id="C-gone", total=1000)
    publish(submission)
    app = reopen(config)
    app.forget_customer("C-gone", "dpo", "request 7")
    app.close()
    _app, publisher = open_intake(config)  # a fresh writer: no key in memory
    same = [r for batch in publisher.take([(1, b.line(submission))]) for r in batch]
    other = {**submission, "data": {**submission["data"], "total": 999}}
    changed = [r for batch in publisher.take([(2, b.line(other))]) for r in batch]
    _app.close()
    assert outcomes(same) == ["duplicate"]
    assert outcomes(changed) == ["conflict"]


def test_a_capture_re_sent_under_a_new_event_id_by_a_later_publisher_is_counted_once(config: Config) -> None:
    for event_id in ("evt-1", "evt-2"):  # two publishers: the second knows the first only from the store
        app, publisher = open_intake(config)
        lines = [b.line(b.submitted(event_id="evt-sub", total=200)), b.line(b.paid(amount=100, event_id=event_id))]
        results = [r for batch in publisher.take(enumerate(lines, start=1)) for r in batch]
        app.close()
    assert outcomes(results) == ["duplicate", "duplicate"]
    assert "payment_id P-1 is already recorded by event evt-1" in results[1].reason
    state = order(config)
    assert state.paid_amount == 100 and state.version == 2


@pytest.mark.parametrize(
    ("first", "again"),
    [
        (b.paid(amount=100, payment_id="P-9"), {"amount": 150}),
        (b.refunded(amount=100, refund_id="R-9"), {"amount": 90}),
        (b.dispatched(lines=[("SKU-A", 1)], shipment_id="SH-9"), {"lines": [{"sku": "SKU-A", "qty": 2}]}),
    ],
    ids=["payment", "refund", "dispatch"],
)
def test_a_natural_key_re_sent_with_other_content_is_recorded_as_a_conflict(
    config: Config, publish: Publish, first: dict[str, Any], again: dict[str, Any]
) -> None:
    publish(b.submitted(total=1000), first)
    before = order(config)
    (result,) = publish({**first, "event_id": "evt-other", "data": {**first["data"], **again}})
    assert result.outcome == "conflict" and "recorded as a conflict" in result.reason
    after = order(config)
    assert (after.paid_amount, after.refunded_amount) == (before.paid_amount, before.refunded_amount)
    assert [line.shipped_qty for line in after.lines.values()] == [line.shipped_qty for line in before.lines.values()]
    assert after.version == before.version + 1 and after.conflicts == 1
    assert outcomes(publish({**first, "event_id": "evt-other", "data": {**first["data"], **again}})) == ["duplicate"]
