"""A customer's stream: the erasures of their personal data (crypto-shredding).

Orders stay in their own streams; this stream only records who erased the customer's
personal data, when and why, so that an erasure is itself part of the tamper-evident log.
"""

from __future__ import annotations

from orderlog.domain.record import Record
from orderlog.domain.stream import StreamAggregate


class Customer(StreamAggregate):
    STREAM = "customer"
    OPENED_BY = frozenset({"CustomerErased"})

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.erasures: list[dict[str, str]] = []

    def on_CustomerErased(self, record: Record) -> None:
        self.erasures.append({"at": record.occurred_at, "by": record.actor or "", "reason": record.data["reason"]})
