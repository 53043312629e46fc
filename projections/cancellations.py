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
from projections.viewstore import Table, ViewStore, integer, text

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
        row[C["currency"]], row[C["total"]], row[C["submitted_at"]] = (
            data["currency"],
            data["total"],
            record.occurred_at,
        )
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


DIMENSIONS = ("reason", "category", "channel", "sku", "day", "stage")
"""What cancellations can be grouped by."""
GROUP_SQL = {"day": "substr({table}.submitted_at, 1, 10)", "channel": "{table}.channel"}
"""Dimensions that submitted orders have too, so a rate per group is cancelled / submitted in that group."""
TIME_TO_CANCEL = (("< 1 h", 60), ("1-24 h", 24 * 60), ("1-3 d", 3 * 24 * 60), ("> 3 d", None))
REPEAT_CANCELLATIONS = 3


def report(views: ViewStore, *, by: str, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The cancellation figures for a window of event time, `since` <= t < `until` (either
    open): cancellations counted by when they happened, submissions by when they happened."""
    cancelled = views.rows(
        "SELECT order_id, customer_id, channel, currency, total, paid, cancelled_at, reason, category, stage, "
        "minutes_to_cancel, refund_minutes FROM cancellation_orders WHERE cancelled_at IS NOT NULL"
        + _window("cancelled_at", since, until),
        _bounds(since, until),
    )
    submitted = _count(views, "SELECT COUNT(*) FROM cancellation_orders WHERE 1 = 1", "submitted_at", since, until)
    return {
        "since": since,
        "until": until,
        "submitted": submitted,
        "cancelled": len(cancelled),
        "cancellation_rate": _ratio(len(cancelled), submitted),
        "cancelled_value": _value(cancelled),
        "time_to_cancel": _buckets(cancelled),
        "cancelled_within_24h": _ratio(
            sum(1 for row in cancelled if row["minutes_to_cancel"] < 24 * 60), len(cancelled)
        ),
        "refund_cycle_hours": _refund_cycle(cancelled),
        "repeat_cancellers": _repeaters(cancelled),
        "by": by,
        "groups": _groups(views, by, cancelled, submitted=submitted, since=since, until=until),
    }


def _groups(
    views: ViewStore, by: str, cancelled: list[dict[str, Any]], *, submitted: int, since: str | None, until: str | None
) -> list[dict[str, Any]]:
    if by == "sku":
        counts = _sku_counts(views, "cancelled_at", since, until)
        offered = _sku_counts(views, "submitted_at", since, until)
    else:
        counts = {}
        for row in cancelled:
            key = row["cancelled_at"][:10] if by == "day" else row[by]
            counts[key] = counts.get(key, 0) + 1
        offered = _grouped_submissions(views, by, since, until) if by in GROUP_SQL else {}
    total = len(cancelled)
    groups = [
        {
            by: key,
            "cancelled": count,
            "share": _ratio(count, total),
            "submitted": offered.get(key) if offered else None,
            "rate": _ratio(count, offered.get(key, 0) if offered else submitted),
        }
        for key, count in counts.items()
    ]
    return sorted(groups, key=lambda group: (-group["cancelled"], str(group[by])))


def _sku_counts(views: ViewStore, column: str, since: str | None, until: str | None) -> dict[str, int]:
    """Orders per SKU with `column` (submitted_at or cancelled_at) in the window."""
    rows = views.query(
        "SELECT s.sku, COUNT(DISTINCT o.order_id) FROM cancellation_skus s JOIN cancellation_orders o "
        f"ON o.order_id = s.order_id WHERE o.{column} IS NOT NULL"
        + _window(f"o.{column}", since, until)
        + " GROUP BY s.sku",
        _bounds(since, until),
    )
    return {sku: int(count) for sku, count in rows}


def _grouped_submissions(views: ViewStore, by: str, since: str | None, until: str | None) -> dict[str, int]:
    key = GROUP_SQL[by].format(table="cancellation_orders")
    rows = views.query(
        f"SELECT {key}, COUNT(*) FROM cancellation_orders WHERE 1 = 1"
        + _window("submitted_at", since, until)
        + f" GROUP BY {key}",
        _bounds(since, until),
    )
    return {group: int(count) for group, count in rows}


def _count(views: ViewStore, statement: str, column: str, since: str | None, until: str | None) -> int:
    return int(views.query(statement + _window(column, since, until), _bounds(since, until))[0][0])


def _window(column: str, since: str | None, until: str | None) -> str:
    return (f" AND {column} >= ?" if since else "") + (f" AND {column} < ?" if until else "")


def _bounds(since: str | None, until: str | None) -> tuple[str, ...]:
    return tuple(bound for bound in (since, until) if bound)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _value(cancelled: list[dict[str, Any]]) -> dict[str, int]:
    value: dict[str, int] = {}
    for row in cancelled:
        value[row["currency"]] = value.get(row["currency"], 0) + row["total"]
    return dict(sorted(value.items()))


def _buckets(cancelled: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys((label for label, _limit in TIME_TO_CANCEL), 0)
    for row in cancelled:
        label = next(label for label, limit in TIME_TO_CANCEL if limit is None or row["minutes_to_cancel"] < limit)
        counts[label] += 1
    return counts


def _refund_cycle(cancelled: list[dict[str, Any]]) -> dict[str, Any]:
    """Hours from cancellation to the last of the money back, over cancellations that took money."""
    hours = sorted(row["refund_minutes"] / 60 for row in cancelled if row["refund_minutes"] is not None)
    waiting = sum(1 for row in cancelled if row["refund_minutes"] is None and row["paid"] > 0)
    return {
        "refunded": len(hours),
        "p50": _percentile(hours, 50),
        "p90": _percentile(hours, 90),
        "not_refunded": waiting,
    }


def _percentile(ordered: list[float], percent: int) -> float | None:
    """Nearest rank: a value that occurred, not an interpolation."""
    if not ordered:
        return None
    rank = max(1, -(-percent * len(ordered) // 100))
    return round(ordered[rank - 1], 2)


def _repeaters(cancelled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for row in cancelled:
        counts[row["customer_id"]] = counts.get(row["customer_id"], 0) + 1
    repeat = [
        {"customer_id": customer, "cancellations": n} for customer, n in counts.items() if n >= REPEAT_CANCELLATIONS
    ]
    return sorted(repeat, key=lambda row: (-row["cancellations"], row["customer_id"]))


def headline(views: ViewStore) -> str:
    """One line for the demo and the console: the rate, the top reason, speed of refunds."""
    found = report(views, by="reason")
    if not found["cancelled"]:
        return f"{found['submitted']:,} order(s) submitted, none cancelled"
    top = found["groups"][0]
    cycle = found["refund_cycle_hours"]
    refunds = (
        f"refunds complete after {cycle['p50']} h (p50), {cycle['p90']} h (p90)"
        if cycle["p50"] is not None
        else "no refunds"
    )
    return (
        f"{found['cancelled']:,} of {found['submitted']:,} orders cancelled ({found['cancellation_rate']:.1%}); "
        f"top reason {top['reason']} ({top['share']:.0%}); {found['cancelled_within_24h']:.0%} within 24 h; {refunds}"
    )
