"""A short account of what a store holds, read from its log (for `orderlog demo`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from orderlog.domain.order import Order
from orderlog.domain.reasons import reason_category

if TYPE_CHECKING:
    from orderlog.application import OrderLog


@dataclass
class StoreSummary:
    events: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    orders_by_status: Counter[str] = field(default_factory=Counter)
    orders_by_financial_status: Counter[str] = field(default_factory=Counter)
    cancellations_by_category: Counter[str] = field(default_factory=Counter)
    refusal_reasons: Counter[str] = field(default_factory=Counter)
    cancelled_within_24h: int = 0

    @property
    def orders(self) -> int:
        return sum(self.orders_by_status.values())

    def lines(self) -> list[str]:
        cancelled = self.orders_by_status.get("CANCELLED", 0)
        share = f"{100 * cancelled / self.orders:.1f}%" if self.orders else "-"
        within = f"{100 * self.cancelled_within_24h / cancelled:.0f}%" if cancelled else "-"
        return [
            f"events stored      {self.events}",
            f"orders             {self.orders}",
            f"by status          {_counts(self.orders_by_status)}",
            f"by payment         {_counts(self.orders_by_financial_status)}",
            f"cancelled          {cancelled} ({share}; {within} within 24 h of submission)",
            f"  by reason group  {_counts(self.cancellations_by_category)}",
            f"requests refused   {sum(self.refusal_reasons.values())}",
            *(f"  {count:>5} x {reason}" for reason, count in self.refusal_reasons.most_common(3)),
            f"events by type     {_counts(self.events_by_type)}",
        ]


def summarise(app: OrderLog) -> StoreSummary:
    """Folds every order of the log in memory; one pass, in store order."""
    summary = StoreSummary()
    orders: dict[str, Order] = {}
    for _position, record in app.log_reader.records():
        summary.events += 1
        summary.events_by_type[record.type] += 1
        if record.stream != "order":
            continue
        orders[record.key] = Order.fold(orders.get(record.key), record)
        if record.type == "RequestRefused":
            summary.refusal_reasons[record.data["reason"].split(":")[-1].strip()] += 1
    for order in orders.values():
        _count_order(summary, order)
    return summary


def _count_order(summary: StoreSummary, order: Order) -> None:
    summary.orders_by_status[order.status.value] += 1
    summary.orders_by_financial_status[order.financial_status.value] += 1
    if order.cancellation:
        summary.cancellations_by_category[reason_category(order.cancellation["reason_code"]).value] += 1
        if _hours_between(order.first_occurred_at, order.cancellation["at"]) <= 24:
            summary.cancelled_within_24h += 1


def _hours_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() / 3600


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.most_common())
