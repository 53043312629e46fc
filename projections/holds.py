"""Inventory holds: what open orders have reserved, what is on hand, what is left to sell.

Per SKU: held (ordered by orders not yet cancelled, and not yet dispatched), on_hand (the
last stock count, minus what was dispatched after it), available = on_hand - held; below
zero the SKU is oversold. A hold is placed at submission, released at cancellation and
converted at dispatch (the units leave the hold and the shelf together).

Counts and dispatches meet in event time, not arrival order: a count covers every dispatch
that happened before it, whenever either arrived. So the view is the same whether the
records came through the store (store order) or Kafka (orders and SKUs on different
partitions, interleaved differently), and the same in a replay as live.
"""

from __future__ import annotations

from typing import Any

from orderlog.domain.record import Record
from projections.projector import Projector
from projections.viewstore import Table, ViewStore, integer, text

BY_SKU = Table(
    "holds_by_sku",
    (
        text("sku"),
        integer("held"),
        integer("counted"),
        text("counted_at"),
        text("counted_event"),
        integer("dispatched_since_count"),
        integer("on_hand"),
        integer("available"),
        text("oversold_since"),
        text("oversold_event"),
    ),
    ("sku",),
    "per SKU: held by open orders, the last count, on hand and available (NULL until first counted); "
    "since when (event time) and by which record it is oversold",
)
BY_ORDER = Table(
    "holds_by_order",
    (text("order_id"), text("sku"), integer("ordered"), integer("held"), integer("dispatched"), integer("released")),
    ("order_id", "sku"),
    "per order and SKU: units ordered, still held, dispatched, released by cancellation",
)
DISPATCHES = Table(
    "holds_dispatches",
    (text("sku"), text("event_id"), text("occurred_at"), integer("qty")),
    ("sku", "event_id"),
    "working table: dispatches later (event time) than their SKU's last count",
    working=True,
)

HELD, COUNTED, COUNTED_AT, COUNTED_EVENT, SINCE, ON_HAND, AVAILABLE, OVERSOLD_SINCE, OVERSOLD_EVENT = (
    BY_SKU.index(name)
    for name in (
        "held",
        "counted",
        "counted_at",
        "counted_event",
        "dispatched_since_count",
        "on_hand",
        "available",
        "oversold_since",
        "oversold_event",
    )
)
ORDERED, ORDER_HELD, DISPATCHED, RELEASED = (
    BY_ORDER.index(name) for name in ("ordered", "held", "dispatched", "released")
)
AT, QTY = DISPATCHES.index("occurred_at"), DISPATCHES.index("qty")


class Holds(Projector):
    name = "holds"
    tables = (BY_SKU, BY_ORDER, DISPATCHES)
    partition_local = False  # a SKU's row gathers holds from orders on every partition

    def on_OrderSubmitted(self, record: Record) -> None:
        holds = self.entity(BY_ORDER, record.key)
        for line in record.data["lines"]:
            sku, qty = line["sku"], line["qty"]
            row = holds.setdefault((record.key, sku), [record.key, sku, 0, 0, 0, 0])
            row[ORDERED] += qty
            row[ORDER_HELD] += qty
            self._hold(sku, qty, record)

    def on_OrderCancelled(self, record: Record) -> None:
        for row in self.entity(BY_ORDER, record.key).values():
            released, row[ORDER_HELD] = row[ORDER_HELD], 0
            row[RELEASED] += released
            self._hold(row[1], -released, record)

    def on_ShipmentDispatched(self, record: Record) -> None:
        holds = self.entity(BY_ORDER, record.key)
        for item in record.data["lines"]:
            sku, qty = item["sku"], item["qty"]
            row = holds.setdefault((record.key, sku), [record.key, sku, 0, 0, 0, 0])  # an SKU never ordered
            converted = min(qty, row[ORDER_HELD])
            row[ORDER_HELD] -= converted
            row[DISPATCHED] += qty
            self._hold(sku, -converted, record)
            self._dispatched(sku, record, qty)

    def on_StockCounted(self, record: Record) -> None:
        sku = self._sku(record.key)
        if sku[COUNTED_AT] is not None and (record.occurred_at, record.event_id) <= (
            sku[COUNTED_AT],
            sku[COUNTED_EVENT],
        ):
            return  # an older count, arriving late
        sku[COUNTED], sku[COUNTED_AT], sku[COUNTED_EVENT] = record.data["on_hand"], record.occurred_at, record.event_id
        dispatches = self.entity(DISPATCHES, record.key)
        for key, dispatch in list(dispatches.items()):
            if dispatch[AT] <= record.occurred_at:  # counted already
                self.delete(DISPATCHES, record.key, key)
        sku[SINCE] = sum(dispatch[QTY] for dispatch in dispatches.values())
        _settle(sku, record)

    def _hold(self, sku: str, qty: int, record: Record) -> None:
        row = self._sku(sku)
        row[HELD] += qty
        _settle(row, record)

    def _dispatched(self, sku: str, record: Record, qty: int) -> None:
        row = self._sku(sku)
        if row[COUNTED_AT] is not None and record.occurred_at <= row[COUNTED_AT]:
            return  # the count already saw these units leave
        dispatch = self.entity(DISPATCHES, sku).setdefault(
            (sku, record.event_id), [sku, record.event_id, record.occurred_at, 0]
        )
        dispatch[QTY] += qty
        row[SINCE] += qty
        _settle(row, record)

    def _sku(self, sku: str) -> list[Any]:
        rows = self.entity(BY_SKU, sku)
        row = rows.get((sku,))
        if row is None:
            row = rows[(sku,)] = [sku, 0, None, None, None, 0, None, None, None, None]
        return row


def _settle(row: list[Any], record: Record) -> None:
    """On hand and available follow from the count, the dispatches since and the holds; the
    record that takes available below zero marks the SKU oversold (the queue's OVERSOLD)."""
    if row[COUNTED] is None:
        return
    row[ON_HAND] = row[COUNTED] - row[SINCE]
    row[AVAILABLE] = row[ON_HAND] - row[HELD]
    if row[AVAILABLE] < 0 and row[OVERSOLD_SINCE] is None:
        row[OVERSOLD_SINCE], row[OVERSOLD_EVENT] = record.occurred_at, record.event_id
    elif row[AVAILABLE] >= 0:
        row[OVERSOLD_SINCE] = row[OVERSOLD_EVENT] = None


def report(
    views: ViewStore, *, sku: str | None = None, order_id: str | None = None, limit: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per SKU (oversold first, then least available; the first `limit`) and per order: what
    the warehouse works from."""
    where, parameters = "", ()
    if sku is not None:
        where, parameters = " WHERE sku = ?", (sku,)
    elif order_id is not None:
        where, parameters = " WHERE sku IN (SELECT sku FROM holds_by_order WHERE order_id = ?)", (order_id,)
    by_sku = views.rows(
        "SELECT sku, held, on_hand, available, counted, counted_at, dispatched_since_count FROM holds_by_sku"
        f"{where} ORDER BY CASE WHEN available < 0 THEN 0 ELSE 1 END, "
        "CASE WHEN available IS NULL THEN 1 ELSE 0 END, available, sku"
        + ("" if limit is None else f" LIMIT {int(limit)}"),
        parameters,
    )
    order_where, order_parameters = ("", ())
    if order_id is not None:
        order_where, order_parameters = " WHERE order_id = ?", (order_id,)
    elif sku is not None:
        order_where, order_parameters = " WHERE sku = ? AND held > 0", (sku,)
    by_order = (
        views.rows(
            f"SELECT order_id, sku, ordered, held, dispatched, released FROM holds_by_order{order_where} "
            "ORDER BY order_id, sku",
            order_parameters,
        )
        if (order_id is not None or sku is not None)
        else []
    )
    return {"skus": by_sku, "orders": by_order}


def built(views: ViewStore) -> bool:
    """Whether the holds view can be read here (its projector has run at least once)."""
    return views.has(BY_SKU.name)


def sku_count(views: ViewStore) -> int:
    return int(views.query("SELECT COUNT(*) FROM holds_by_sku")[0][0])


def headline(views: ViewStore) -> str:
    """One line for the demo and the console: units held, SKUs oversold."""
    held, skus, oversold = views.query(
        "SELECT COALESCE(SUM(held), 0), COUNT(*), COALESCE(SUM(CASE WHEN available < 0 THEN 1 ELSE 0 END), 0) "
        "FROM holds_by_sku"
    )[0]
    return f"{held:,} unit(s) held by open orders over {skus:,} SKU(s); {oversold:,} SKU(s) oversold (available < 0)"
