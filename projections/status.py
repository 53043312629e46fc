"""Order status, for customer service: where each order stands and how it got there.

Per order: status and financial status (by the domain's own rules, orderlog.domain.status),
the money, the units ordered, shipped and delivered per line, and a timeline with a row
for every change of either status, at its event time: what a progress bar on an order
page shows. No personal data: the address was judged on write, and is not needed here.
"""

from __future__ import annotations

import json
from typing import Any

from orderlog.domain.record import Record
from orderlog.domain.status import financial_status, order_status
from projections.projector import Projector
from projections.viewstore import Table, ViewStore, integer, text

STATUS = Table(
    "order_status",
    (
        text("order_id"),
        text("status"),
        text("financial_status"),
        text("channel"),
        text("currency"),
        integer("total"),
        integer("paid"),
        integer("refunded"),
        integer("units_ordered"),
        integer("units_shipped"),
        integer("units_delivered"),
        integer("requires_confirmation"),
        integer("confirmed"),
        integer("failed_payments"),
        text("submitted_at"),
        text("cancelled_at"),
        text("completed_at"),
        text("updated_at"),
        integer("version"),
    ),
    ("order_id",),
    "per order: status, financial status, money (minor units) and units, as of its last record",
)
LINES = Table(
    "order_status_lines",
    (text("order_id"), text("sku"), integer("ordered"), integer("shipped"), integer("delivered")),
    ("order_id", "sku"),
    "per order and SKU: units ordered, shipped, delivered",
)
SHIPMENTS = Table(
    "order_status_shipments",
    (text("order_id"), text("shipment_id"), text("lines"), integer("delivered"), text("failure")),
    ("order_id", "shipment_id"),
    "per shipment: its lines (JSON {sku: qty}), delivered or not, the last delivery failure",
)
TIMELINE = Table(
    "order_timeline",
    (
        text("order_id"),
        integer("seq"),
        text("at"),
        text("status"),
        text("financial_status"),
        text("event_type"),
        text("event_id"),
    ),
    ("order_id", "seq"),
    "per order: every change of status or financial status, at its event time",
)

COLUMN = {name: STATUS.index(name) for name in STATUS.names}
ORDERED, SHIPPED, DELIVERED = (LINES.index(name) for name in ("ordered", "shipped", "delivered"))
SHIPMENT_LINES, SHIPMENT_DELIVERED, FAILURE = (SHIPMENTS.index(name) for name in ("lines", "delivered", "failure"))


class OrderStatus(Projector):
    name = "status"
    tables = (STATUS, LINES, SHIPMENTS, TIMELINE)

    def apply(self, record: Record) -> None:
        super().apply(record)
        if record.stream == "order" and record.type in self._handlers:
            self._progress(record)

    def on_OrderSubmitted(self, record: Record) -> None:
        data = record.data
        row = [None] * len(STATUS.columns)
        row[COLUMN["order_id"]] = record.key
        for name in ("channel", "currency", "total"):
            row[COLUMN[name]] = data[name]
        row[COLUMN["requires_confirmation"]] = int(data["requires_confirmation"])
        for name in ("paid", "refunded", "confirmed", "failed_payments", "units_shipped", "units_delivered"):
            row[COLUMN[name]] = 0
        row[COLUMN["units_ordered"]] = sum(line["qty"] for line in data["lines"])
        row[COLUMN["submitted_at"]] = record.occurred_at
        self.entity(STATUS, record.key)[(record.key,)] = row
        lines = self.entity(LINES, record.key)
        for line in data["lines"]:
            lines.setdefault((record.key, line["sku"]), [record.key, line["sku"], 0, 0, 0])[ORDERED] += line["qty"]

    def on_OrderConfirmed(self, record: Record) -> None:
        self._set(record, "confirmed", 1)

    def on_PaymentCaptured(self, record: Record) -> None:
        self._add(record, "paid", record.data["amount"])

    def on_PaymentFailed(self, record: Record) -> None:
        self._add(record, "failed_payments", 1)

    def on_RefundIssued(self, record: Record) -> None:
        self._add(record, "refunded", record.data["amount"])

    def on_OrderCancelled(self, record: Record) -> None:
        self._set(record, "cancelled_at", record.occurred_at)

    def on_OrderCompleted(self, record: Record) -> None:
        self._set(record, "completed_at", record.occurred_at)

    def on_ShipmentDispatched(self, record: Record) -> None:
        shipment = self._shipment(record)
        carried = json.loads(shipment[SHIPMENT_LINES])
        lines = self.entity(LINES, record.key)
        for item in record.data["lines"]:
            sku, qty = item["sku"], item["qty"]
            carried[sku] = carried.get(sku, 0) + qty
            line = lines.setdefault((record.key, sku), [record.key, sku, 0, 0, 0])
            line[SHIPPED] += qty
            if shipment[SHIPMENT_DELIVERED]:
                line[DELIVERED] += qty
        shipment[SHIPMENT_LINES] = json.dumps(carried, sort_keys=True)

    def on_ShipmentDelivered(self, record: Record) -> None:
        shipment = self._shipment(record)
        if shipment[SHIPMENT_DELIVERED]:
            return
        shipment[SHIPMENT_DELIVERED], shipment[FAILURE] = 1, None
        lines = self.entity(LINES, record.key)
        for sku, qty in json.loads(shipment[SHIPMENT_LINES]).items():
            lines.setdefault((record.key, sku), [record.key, sku, 0, 0, 0])[DELIVERED] += qty

    def on_DeliveryFailed(self, record: Record) -> None:
        self._shipment(record)[FAILURE] = record.data["reason"]

    def _shipment(self, record: Record) -> list[Any]:
        shipments = self.entity(SHIPMENTS, record.key)
        ident = record.data["shipment_id"]
        return shipments.setdefault((record.key, ident), [record.key, ident, "{}", 0, None])

    def _row(self, record: Record) -> list[Any] | None:
        return self.entity(STATUS, record.key).get((record.key,))

    def _set(self, record: Record, name: str, value: Any) -> None:
        row = self._row(record)
        if row is not None:
            row[COLUMN[name]] = value

    def _add(self, record: Record, name: str, amount: int) -> None:
        row = self._row(record)
        if row is not None:
            row[COLUMN[name]] += amount

    def _progress(self, record: Record) -> None:
        """Figures and status after the record; a timeline row when either status changed."""
        row = self._row(record)
        if row is None:
            return  # a record for an order never submitted: the write side refuses those
        lines = self.peek(LINES, record.key).values()
        row[COLUMN["units_shipped"]] = sum(line[SHIPPED] for line in lines)
        row[COLUMN["units_delivered"]] = sum(line[DELIVERED] for line in lines)
        row[COLUMN["updated_at"]] = max(row[COLUMN["updated_at"]] or "", record.occurred_at)
        row[COLUMN["version"]] = record.version
        status, financial = _statuses(row, lines)
        row[COLUMN["status"]], row[COLUMN["financial_status"]] = status, financial
        timeline = self.entity(TIMELINE, record.key)
        last = timeline.get((record.key, len(timeline)))
        if last is None or (last[3], last[4]) != (status, financial):
            seq = len(timeline) + 1
            timeline[(record.key, seq)] = [
                record.key,
                seq,
                record.occurred_at,
                status,
                financial,
                record.type,
                record.event_id,
            ]


def _statuses(row: list[Any], lines: Any) -> tuple[str, str]:
    value = row.__getitem__
    status = order_status(
        cancelled=value(COLUMN["cancelled_at"]) is not None,
        completed=value(COLUMN["completed_at"]) is not None,
        awaiting_confirmation=bool(value(COLUMN["requires_confirmation"])) and not value(COLUMN["confirmed"]),
        units_ordered=value(COLUMN["units_ordered"]),
        units_dispatched_of_ordered=sum(min(line[SHIPPED], line[ORDERED]) for line in lines),
        paid=value(COLUMN["paid"]),
        total=value(COLUMN["total"]),
    )
    financial = financial_status(
        paid=value(COLUMN["paid"]), refunded=value(COLUMN["refunded"]), total=value(COLUMN["total"])
    )
    return str(status), str(financial)


def report(views: ViewStore, order_id: str) -> dict[str, Any] | None:
    """An order's status, lines, timeline and holds (None if the views have not seen it)."""
    found = views.rows(f"SELECT {', '.join(STATUS.names)} FROM order_status WHERE order_id = ?", (order_id,))
    if not found:
        return None
    return {
        **found[0],
        "lines": views.rows(
            "SELECT sku, ordered, shipped, delivered FROM order_status_lines WHERE order_id = ? ORDER BY sku",
            (order_id,),
        ),
        "timeline": views.rows(
            "SELECT seq, at, status, financial_status, event_type, event_id FROM order_timeline "
            "WHERE order_id = ? ORDER BY seq",
            (order_id,),
        ),
        "holds": views.rows(
            "SELECT sku, ordered, held, dispatched, released FROM holds_by_order WHERE order_id = ? ORDER BY sku",
            (order_id,),
        )
        if views.has("holds_by_order")
        else [],
    }


def headline(views: ViewStore) -> str:
    """One line for the demo and the console: orders per status."""
    rows = views.query("SELECT status, COUNT(*) FROM order_status GROUP BY status ORDER BY COUNT(*) DESC, status")
    return ", ".join(f"{status} {count:,}" for status, count in rows) or "no orders yet"
