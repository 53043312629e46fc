"""Cancellation analytics: who cancels, why, when, at what stage, and how fast money goes back.

One row per submitted order (its channel, value, customer, and, once cancelled, the reason,
its category, the stage it had reached, how long after submission, and when the refund was
complete) and its SKUs. Every figure in a report is a query over these rows for a window
of event time, so any window, any grouping, and a window in the past all come from the
same rows, built in any order the records arrive.

The customer id is a pseudonym (orderlog never holds names here); it is what counting
repeat cancellers needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderlog.domain.reasons import reason_category
from orderlog.domain.record import Record
from projections.projector import Projector
from projections.viewstore import Table, integer, text

ORDERS = Table(
    "cancellation_orders",
    (
        text("order_id"),
        text("customer_id"),
        text("channel"),
        text("currency"),
        integer("total"),
        text("submitted_at"),
        integer("requires_confirmation"),
        integer("confirmed"),
        integer("paid"),
        integer("refunded"),
        integer("units_shipped"),
        text("cancelled_at"),
        text("reason"),
        text("category"),
        text("initiated_by"),
        text("stage"),
        integer("minutes_to_cancel"),
        text("refunded_in_full_at"),
        integer("refund_minutes"),
    ),
    ("order_id",),
    "per submitted order: channel, value, and once cancelled: reason, category, stage, timings",
)
SKUS = Table(
    "cancellation_skus",
    (text("order_id"), text("sku"), integer("qty")),
    ("order_id", "sku"),
    "per order: the SKUs it was submitted with",
)

C = {name: ORDERS.index(name) for name in ORDERS.names}


class Stage:
    """How far an order had gone when it was cancelled."""

    AWAITING_CONFIRMATION = "awaiting_confirmation"
    BEFORE_PAYMENT = "before_payment"
    PARTIALLY_PAID = "partially_paid"
    PAID_NOT_SHIPPED = "paid_not_shipped"


class Cancellations(Projector):
    name = "cancellations"
    tables = (ORDERS, SKUS)

    def on_OrderSubmitted(self, record: Record) -> None:
        data = record.data
        row: list[Any] = [None] * len(ORDERS.columns)
        row[C["order_id"]], row[C["customer_id"]], row[C["channel"]] = record.key, data["customer_id"], data["channel"]
        row[C["currency"]], row[C["total"]], row[C["submitted_at"]] = data["currency"], data["total"], record.occurred_at
        row[C["requires_confirmation"]] = int(data["requires_confirmation"])
        row[C["confirmed"]] = row[C["paid"]] = row[C["refunded"]] = row[C["units_shipped"]] = 0
        self.entity(ORDERS, record.key)[(record.key,)] = row
        skus = self.entity(SKUS, record.key)
        for line in data["lines"]:
            skus.setdefault((record.key, line["sku"]), [record.key, line["sku"], 0])[2] += line["qty"]

    def on_OrderConfirmed(self, record: Record) -> None:
        self._change(record, "confirmed", 1)

    def on_PaymentCaptured(self, record: Record) -> None:
        self._change(record, "paid", record.data["amount"])

    def on_ShipmentDispatched(self, record: Record) -> None:
        self._change(record, "units_shipped", sum(item["qty"] for item in record.data["lines"]))

    def on_RefundIssued(self, record: Record) -> None:
        self._change(record, "refunded", record.data["amount"])

    def on_OrderCancelled(self, record: Record) -> None:
        row = self._row(record)
        if row is None:
            return
        reason = record.data["reason_code"]
        row[C["cancelled_at"]], row[C["reason"]] = record.occurred_at, reason
        row[C["category"]], row[C["initiated_by"]] = str(reason_category(reason)), record.data["initiated_by"]
        row[C["stage"]] = _stage(row)
        row[C["minutes_to_cancel"]] = _minutes(row[C["submitted_at"]], record.occurred_at)
        _refund_complete(row, record.occurred_at)

    def _row(self, record: Record) -> list[Any] | None:
        return self.entity(ORDERS, record.key).get((record.key,))

    def _change(self, record: Record, name: str, amount: int) -> None:
        row = self._row(record)
        if row is not None:
            row[C[name]] += amount
            _refund_complete(row, record.occurred_at)


def _stage(row: list[Any]) -> str:
    if row[C["paid"]] >= row[C["total"]] and row[C["paid"]] > 0:
        return Stage.PAID_NOT_SHIPPED
    if row[C["paid"]] > 0:
        return Stage.PARTIALLY_PAID
    if row[C["requires_confirmation"]] and not row[C["confirmed"]]:
        return Stage.AWAITING_CONFIRMATION
    return Stage.BEFORE_PAYMENT


def _refund_complete(row: list[Any], at: str) -> None:
    """The refund cycle of a cancelled order that had taken money ends when all of it is back."""
    if row[C["cancelled_at"]] is None or row[C["refunded_in_full_at"]] is not None:
        return
    if row[C["paid"]] > 0 and row[C["refunded"]] >= row[C["paid"]]:
        row[C["refunded_in_full_at"]] = max(at, row[C["cancelled_at"]])
        row[C["refund_minutes"]] = _minutes(row[C["cancelled_at"]], row[C["refunded_in_full_at"]])


def _minutes(start: str, end: str) -> int:
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0, int(elapsed.total_seconds() // 60))
