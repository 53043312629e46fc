"""A SKU's stream: the warehouse's periodic stock counts (inventory views read them)."""

from __future__ import annotations

from orderlog.domain.record import Record
from orderlog.domain.stream import StreamAggregate


class Sku(StreamAggregate):
    STREAM = "sku"
    OPENED_BY = frozenset({"StockCounted"})

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.on_hand = 0
        self.counted_at = ""

    def on_StockCounted(self, record: Record) -> None:
        # Counts can arrive out of order: the latest count in event time wins.
        if record.occurred_at >= self.counted_at:
            self.on_hand = record.data["on_hand"]
            self.counted_at = record.occurred_at
