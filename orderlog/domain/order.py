"""The Order aggregate: the lifecycle of one order, as a stream of records.

Facts (payments, dispatches, deliveries, delivery failures, refunds) happened in another
system, so they are always recorded and the figures updated truthfully, even when they
break the expected lifecycle; the exception queue flags them. Requests (submission,
confirmation, cancellation, completion, address correction) ask for a transition: when
the lifecycle forbids one, a `RequestRefused` record says so, with the reason, so that
auditors and operations staff see every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orderlog.domain.canonical import canonical_bytes
from orderlog.domain.contract import ENGINE_SOURCE, EVENT_TYPES, Kind
from orderlog.domain.envelope import Upstream
from orderlog.domain.exceptions import PAYMENT_TIMEOUT_REASON
from orderlog.domain.record import Record
from orderlog.domain.status import (
    CANCELLABLE,
    FinancialStatus,
    Status,
    financial_status,
    order_status,
)
from orderlog.domain.stream import ACCEPTED, DUPLICATE, Decision, Outcome, StreamAggregate

COMPLETED_BY_ENGINE = "orderlog/completed/"
"""Prefix of the event id of an OrderCompleted that orderlog records itself."""

COMPLETING_FACTS = frozenset({"ShipmentDispatched", "ShipmentDelivered"})
"""The facts after which an order may have become complete."""


@dataclass
class Line:
    """One SKU of the order: what was ordered, and what dispatches and deliveries say."""

    sku: str
    qty: int
    unit_price: int
    shipped_qty: int = 0
    delivered_qty: int = 0


@dataclass
class Shipment:
    lines: dict[str, int] = field(default_factory=dict)
    delivered: bool = False
    failure: str | None = None


class Order(StreamAggregate):
    STREAM = "order"
    OPENED_BY = frozenset({"OrderSubmitted"})

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.customer_id = ""
        self.channel = ""
        self.currency = ""
        self.total = 0
        self.shipping_fee = 0
        self.discount = 0
        self.lines: dict[str, Line] = {}
        self.requires_confirmation = False
        self.confirmed = False
        self.shipping_address: dict[str, Any] = {}
        self.paid_amount = 0
        self.refunded_amount = 0
        self.failed_payments = 0
        self.shipments: dict[str, Shipment] = {}
        self.cancellation: dict[str, Any] | None = None
        self.completed_at: str | None = None
        self.people_on_exceptions: dict[tuple[str, str], tuple[str | None, str]] = {}
        """(exception id, acknowledged|resolved) -> (who, when): each is done once."""
        self.refusals = 0
        self.conflicts = 0

    # ------------------------------------------------------------ derived figures

    @property
    def order_id(self) -> str:
        return self.key

    @property
    def units_ordered(self) -> int:
        return sum(line.qty for line in self.lines.values())

    @property
    def units_dispatched_of_ordered(self) -> int:
        return sum(min(line.shipped_qty, line.qty) for line in self.lines.values())

    @property
    def status(self) -> Status:
        return order_status(
            cancelled=self.cancellation is not None,
            completed=self.completed_at is not None,
            awaiting_confirmation=self.requires_confirmation and not self.confirmed,
            units_ordered=self.units_ordered,
            units_dispatched_of_ordered=self.units_dispatched_of_ordered,
            paid=self.paid_amount,
            total=self.total,
        )

    @property
    def financial_status(self) -> FinancialStatus:
        return financial_status(paid=self.paid_amount, refunded=self.refunded_amount, total=self.total)

    # ------------------------------------------------------------ commands

    def handle(self, upstream: Upstream, recorded_at: str | None = None) -> Decision:
        """Records `upstream` on this order, or records its refusal; duplicates change nothing."""
        if upstream.event_id in self.event_ids:
            return DUPLICATE
        if EVENT_TYPES[upstream.type].kind is Kind.FACT:
            known = self.judge_by_natural_key(upstream, recorded_at)
            if known is not None:
                return known
            self._append(upstream.type, upstream, upstream.data, recorded_at)
            if upstream.type in COMPLETING_FACTS:
                self._complete_if_done(upstream, recorded_at)
            return ACCEPTED
        reason = self.refusal_reason(upstream)
        if reason:
            self._refuse(upstream, reason, recorded_at)
            return Decision(Outcome.REFUSED, reason)
        self._append(upstream.type, upstream, upstream.data, recorded_at)
        return ACCEPTED

    def refusal_reason(self, request: Upstream) -> str:
        """Why the lifecycle forbids `request` now; empty when it is allowed."""
        status = self.status
        label = f"order {self.key} is {status}"
        match request.type:
            case "OrderSubmitted":
                return f"order {self.key} was already submitted ({self.first_occurred_at}); submit it once"
            case "OrderConfirmed":
                if status in (Status.CANCELLED, Status.COMPLETED):
                    return f"{label}: there is nothing left to confirm"
                if not self.requires_confirmation:
                    return f"order {self.key} does not require confirmation"
                if self.confirmed:
                    return f"order {self.key} is already confirmed; confirm once"
            case "OrderCancelled":
                if status is Status.CANCELLED:
                    return f"{label} already"
                if status is Status.COMPLETED:
                    return f"{label}: a completed order needs a return, not a cancellation"
                if status not in CANCELLABLE:
                    return f"{label}: once anything has shipped the order needs a return, not a cancellation"
                if self._paid_since_timing_out(request):
                    return f"order {self.key} was paid before the engine's payment-timeout cancellation was recorded"
            case "OrderCompleted":
                if status is not Status.SHIPPED:
                    return f"{label}: only a SHIPPED order can be completed"
            case "AddressCorrected":
                if status in (Status.SHIPPED, Status.COMPLETED, Status.CANCELLED):
                    return f"{label}: the shipping address can no longer change"
            case "ExceptionAcknowledged" | "ExceptionResolved":
                return self._already_acted(request)
        return ""

    def _paid_since_timing_out(self, request: Upstream) -> bool:
        """The engine decides a payment timeout from the queue's view, which can lag behind the
        store: a payment recorded in between settles the order, as the queue's own rule says
        (orderlog.domain.exceptions.payment_timeout), and the stale decision must not cancel it."""
        timing_out = request.source == ENGINE_SOURCE and request.data.get("reason_code") == PAYMENT_TIMEOUT_REASON
        return timing_out and self.paid_amount > 0

    def _already_acted(self, request: Upstream) -> str:
        """A person resolves an exception once and acknowledges it once, never after resolving
        it: two people pressing at once, or a queue view lagging behind, must not record both."""
        exception_id = request.data["exception_id"]
        wanted = ("resolved",) if request.type == "ExceptionResolved" else ("resolved", "acknowledged")
        for kind in wanted:
            done = self.people_on_exceptions.get((exception_id, kind))
            if done is not None:
                return f"{exception_id} was already {kind} by {done[0]} at {done[1]}"
        return ""

    def _refuse(self, request: Upstream, reason: str, recorded_at: str | None) -> None:
        data = {
            "request_type": request.type,
            "reason": reason,
            "request_data": canonical_bytes(request.data).decode(),
        }
        self._append("RequestRefused", request, data, recorded_at)

    def _complete_if_done(self, cause: Upstream, recorded_at: str | None) -> None:
        """Every dispatched shipment delivered and nothing outstanding: the engine completes."""
        if not self.shipments or not all(shipment.delivered for shipment in self.shipments.values()):
            return
        if self.status is not Status.SHIPPED:
            return
        completion = Upstream(
            type="OrderCompleted",
            key=self.key,
            event_id=f"{COMPLETED_BY_ENGINE}{cause.event_id}",
            occurred_at=max(cause.occurred_at, self.last_occurred_at),
            source=ENGINE_SOURCE,
            actor=None,
            correlation_id=cause.correlation_id,
            data={},
        )
        self._append("OrderCompleted", completion, {}, recorded_at)

    # ------------------------------------------------------------ evolving

    def on_OrderSubmitted(self, record: Record) -> None:
        data = record.data
        self.customer_id = data["customer_id"]
        self.channel = data["channel"]
        self.currency = data["currency"]
        self.total = data["total"]
        self.shipping_fee = data["shipping_fee"]
        self.discount = data["discount"]
        self.requires_confirmation = data["requires_confirmation"]
        self.shipping_address = data["shipping_address"]
        self.lines = {line["sku"]: Line(line["sku"], line["qty"], line["unit_price"]) for line in data["lines"]}

    def on_OrderConfirmed(self, record: Record) -> None:
        self.confirmed = True

    def on_PaymentCaptured(self, record: Record) -> None:
        self.paid_amount += record.data["amount"]

    def on_PaymentFailed(self, record: Record) -> None:
        self.failed_payments += 1

    def on_ShipmentDispatched(self, record: Record) -> None:
        shipment = self.shipments.setdefault(record.data["shipment_id"], Shipment())
        for item in record.data["lines"]:
            sku, qty = item["sku"], item["qty"]
            shipment.lines[sku] = shipment.lines.get(sku, 0) + qty
            line = self._line(sku)
            line.shipped_qty += qty
            if shipment.delivered:
                line.delivered_qty += qty

    def on_ShipmentDelivered(self, record: Record) -> None:
        shipment = self.shipments.setdefault(record.data["shipment_id"], Shipment())
        if shipment.delivered:
            return
        shipment.delivered = True
        shipment.failure = None
        for sku, qty in shipment.lines.items():
            self._line(sku).delivered_qty += qty

    def on_DeliveryFailed(self, record: Record) -> None:
        shipment = self.shipments.setdefault(record.data["shipment_id"], Shipment())
        shipment.failure = record.data["reason"]

    def on_OrderCompleted(self, record: Record) -> None:
        self.completed_at = record.occurred_at

    def on_OrderCancelled(self, record: Record) -> None:
        self.cancellation = {
            "reason_code": record.data["reason_code"],
            "initiated_by": record.data["initiated_by"],
            "note": record.data["note"],
            "at": record.occurred_at,
        }

    def on_RefundIssued(self, record: Record) -> None:
        self.refunded_amount += record.data["amount"]

    def on_AddressCorrected(self, record: Record) -> None:
        self.shipping_address = record.data["shipping_address"]

    def on_RequestRefused(self, record: Record) -> None:
        self.refusals += 1

    def on_ConflictRecorded(self, record: Record) -> None:
        self.conflicts += 1

    def on_ExceptionAcknowledged(self, record: Record) -> None:
        """A person's action on the exception queue: part of the history, no figure changes."""
        self.people_on_exceptions[(record.data["exception_id"], "acknowledged")] = (record.actor, record.occurred_at)

    def on_ExceptionResolved(self, record: Record) -> None:
        """A person's action on the exception queue: part of the history, no figure changes."""
        self.people_on_exceptions[(record.data["exception_id"], "resolved")] = (record.actor, record.occurred_at)

    def _line(self, sku: str) -> Line:
        """The order's line for `sku`; an SKU never ordered gets a line of quantity 0,
        so that an over-shipment shows in the figures instead of vanishing."""
        line = self.lines.get(sku)
        if line is None:
            line = self.lines[sku] = Line(sku, 0, 0)
        return line
