"""People's actions on the exception queue, and the clock's tick: each recorded in the store.

An acknowledgement or a resolution is an event on the order's stream (who, when, the note),
so it is part of the order's history, on Kafka, and in every rebuilt queue. A tick is an
event on the clock stream, so a replay sees time pass where the live run did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orderlog.domain.clock import CLOCK, Clock
from orderlog.domain.contract import ENGINE_SOURCE, EVENT_TYPES
from orderlog.domain.engine import own_record
from orderlog.domain.envelope import describe_validation_error
from orderlog.domain.order import Order
from orderlog.domain.stream import NotRecorded, Outcome
from orderlog.domain.text import character_name, unsafe_character

if TYPE_CHECKING:
    from orderlog.application import OrderLog


class QueueActionError(ValueError):
    """An action the queue cannot take: named in one line."""


def act_on_exception(app: OrderLog, action: str, exception: dict[str, Any], by: str, note: str) -> None:
    """Records `action` (ExceptionAcknowledged or ExceptionResolved) by `by` on the exception's order."""
    _check_open(action, exception)
    if not by.strip():
        raise QueueActionError("--by must name who acts (a person or a team)")
    _check_actor(by)
    data = {"exception_id": exception["exception_id"], "code": exception["code"], "note": note}
    _check(action, data)
    try:
        app.record_own(Order, own_record(action, exception["order_id"], data, by.strip()))
    except NotRecorded as refused:  # someone else acted first, or the queue view lags behind the order
        raise QueueActionError(str(refused)) from None


def tick(app: OrderLog, now: str, by: str | None) -> None:
    """Moves the queue's clock to `now` (event time), if that is later than the last tick."""
    if by is not None:
        _check_actor(by)
    upstream = own_record("ClockTicked", CLOCK, {}, by, event_id=f"{ENGINE_SOURCE}/tick/{now}", occurred_at=now)
    clock = app.stream(Clock, CLOCK)
    if clock is not None:
        decision = clock.handle(upstream)
        if decision.outcome is not Outcome.ACCEPTED:
            raise QueueActionError(decision.reason or f"a tick at {now} was recorded already")
        app.save_events(clock.collect_events())
        return
    app.record_own(Clock, upstream)


def _check_open(action: str, item: dict[str, Any]) -> None:
    """Only an order's exception that is still open takes an action (and one ack)."""
    exception_id = item["exception_id"]
    if item["order_id"] is None:
        raise QueueActionError(
            f"{exception_id} clears itself when the SKU is counted again or holds are released; it takes no action"
        )
    if item["status"] == "resolved":
        how = "automatically" if item["resolution"] == "automatic" else f"by {item['resolved_by']}"
        raise QueueActionError(f"{exception_id} was already resolved {how} at {item['resolved_at']}")
    if action == "ExceptionAcknowledged" and item["status"] == "acknowledged":
        raise QueueActionError(
            f"{exception_id} was already acknowledged by {item['acknowledged_by']} at {item['acknowledged_at']}"
        )


def _check_actor(by: str) -> None:
    found = unsafe_character(by)
    if found is not None:
        position, character = found
        raise QueueActionError(
            f"--by: holds {character_name(character)} at position {position}: "
            "names may not hold control, bidirectional or zero-width characters"
        )


def _check(action: str, data: dict[str, Any]) -> None:
    try:
        EVENT_TYPES[action].data.model_validate(data)
    except ValidationError as error:
        raise QueueActionError(describe_validation_error(error)) from None
