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
    # Reports read cancellations (a tenth of the orders) by when they happened and submissions by
    # when they were made: these cover every column a report reads, so neither reads the table.
    indexes=(
        (
            "cancelled_at",
            "reason",
            "category",
            "channel",
            "stage",
            "currency",
            "total",
            "paid",
            "minutes_to_cancel",
            "refund_minutes",
            "customer_id",
            "order_id",
        ),
        ("submitted_at", "channel", "order_id"),
    ),
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
GROUP_FIGURES = ("cancelled", "share", "submitted", "rate")
"""What each group of a report holds beside its key."""


def built(views: ViewStore) -> bool:
    """Whether the cancellations view can be read here (its projector has run at least once)."""
    return views.has(ORDERS.name)


class EmptyWindow(ValueError):
    """A window that ends before it starts: nothing can be in it, so asking for it is a slip
    (the two moments swapped), and a report of zeros would hide the slip."""


def check_window(since: str | None, until: str | None) -> None:
    if since is not None and until is not None and since >= until:
        raise EmptyWindow(f"the window is empty: {since} is not before {until}")


def report(views: ViewStore, *, by: str, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The cancellation figures for a window of event time, `since` <= t < `until` (either
    open): cancellations counted by when they happened, submissions by when they happened.
    Every figure is counted by the database (a report over a million events' views reads
    no row into Python but the refund times it takes percentiles of). EmptyWindow for a
    window that ends before it starts."""
    check_window(since, until)
    cancelled = Cancelled(views, since, until)
    submitted = _count(views, "SELECT COUNT(*) FROM cancellation_orders WHERE 1 = 1", "submitted_at", since, until)
    count, under, not_refunded = cancelled.totals()
    return {
        "since": since,
        "until": until,
        "submitted": submitted,
        "cancelled": count,
        "cancellation_rate": _ratio(count, submitted),
        "cancelled_value": {currency: int(total) for currency, total in cancelled.grouped("currency", "SUM(total)")},
        "time_to_cancel": _buckets(count, under),
        "cancelled_within_24h": _ratio(under[1], count),
        "refund_cycle_hours": _refund_cycle(cancelled.refund_hours(), not_refunded),
        "repeat_cancellers": [
            {"customer_id": customer, "cancellations": n}
            for customer, n in cancelled.grouped("customer_id", "COUNT(*)", at_least=REPEAT_CANCELLATIONS)
        ],
        "by": by,
        "groups": _groups(views, by, cancelled, count, submitted=submitted, since=since, until=until),
    }


class Cancelled:
    """The orders cancelled within a window, as the database counts them."""

    def __init__(self, views: ViewStore, since: str | None, until: str | None):
        self._views = views
        # `> ''` rather than IS NOT NULL: a range, so the covering index is read, not the table
        self._rows = "FROM cancellation_orders WHERE cancelled_at > ''" + _window("cancelled_at", since, until)
        self._bounds = _bounds(since, until)

    def totals(self) -> tuple[int, list[int], int]:
        """(how many, how many within each TIME_TO_CANCEL limit, how many took money and have
        not given it all back)."""
        limits = [limit for _label, limit in TIME_TO_CANCEL if limit is not None]
        within = ", ".join(
            f"SUM(CASE WHEN minutes_to_cancel < {int(limit)} THEN 1 ELSE 0 END) AS under_{n}"
            for n, limit in enumerate(limits)
        )  # each figure named: PostgreSQL's rows are dicts by column name
        row = self._views.query(
            f"SELECT COUNT(*) AS cancelled, {within}, "
            f"SUM(CASE WHEN refund_minutes IS NULL AND paid > 0 THEN 1 ELSE 0 END) AS not_refunded {self._rows}",
            self._bounds,
        )[0]
        count, *under, not_refunded = (int(value or 0) for value in row)
        return count, under, not_refunded

    def grouped(self, key: str, figure: str, *, at_least: int = 0) -> list[tuple[Any, int]]:
        """(`key`, `figure`) per group, largest first, then by key; `at_least` leaves out
        groups of fewer orders."""
        having = f" HAVING COUNT(*) >= {int(at_least)}" if at_least else ""
        rows = self._views.query(f"SELECT {key}, {figure} {self._rows} GROUP BY {key}{having}", self._bounds)
        return sorted(((group, int(value)) for group, value in rows), key=lambda row: (-row[1], str(row[0])))

    def refund_hours(self) -> list[float]:
        """Hours from cancellation to the last of the money back, smallest first."""
        rows = self._views.query(
            f"SELECT refund_minutes {self._rows} AND refund_minutes IS NOT NULL ORDER BY refund_minutes", self._bounds
        )
        return [minutes / 60 for (minutes,) in rows]


def _groups(
    views: ViewStore,
    by: str,
    cancelled: Cancelled,
    total: int,
    *,
    submitted: int,
    since: str | None,
    until: str | None,
) -> list[dict[str, Any]]:
    if by == "sku":
        counts = _sku_counts(views, "cancelled_at", since, until)
        offered = _sku_counts(views, "submitted_at", since, until)
    else:
        key = "substr(cancelled_at, 1, 10)" if by == "day" else by
        counts = dict(cancelled.grouped(key, "COUNT(*)"))
        offered = _grouped_submissions(views, by, since, until) if by in GROUP_SQL else {}
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
    """Orders per SKU with `column` (submitted_at or cancelled_at) in the window (an order
    names a SKU once: it is the key of cancellation_skus with the order)."""
    rows = views.query(
        "SELECT s.sku, COUNT(*) FROM cancellation_skus s JOIN cancellation_orders o "
        f"ON o.order_id = s.order_id WHERE o.{column} > ''" + _window(f"o.{column}", since, until) + " GROUP BY s.sku",
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


def _buckets(count: int, under: list[int]) -> dict[str, int]:
    """Cancellations per TIME_TO_CANCEL bucket, from how many fell under each limit."""
    bounds = [0, *under, count]
    return {label: bounds[n + 1] - bounds[n] for n, (label, _limit) in enumerate(TIME_TO_CANCEL)}


def _refund_cycle(hours: list[float], not_refunded: int) -> dict[str, Any]:
    """Hours from cancellation to the last of the money back, over cancellations that took money."""
    return {
        "refunded": len(hours),
        "p50": _percentile(hours, 50),
        "p90": _percentile(hours, 90),
        "not_refunded": not_refunded,
    }


def _percentile(ordered: list[float], percent: int) -> float | None:
    """Nearest rank: a value that occurred, not an interpolation."""
    if not ordered:
        return None
    rank = max(1, -(-percent * len(ordered) // 100))
    return round(ordered[rank - 1], 2)


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
