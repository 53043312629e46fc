"""The clock stream: `orderlog tick` records that time passed when no event said so.

The exception queue's clock is event time (the latest `occurred_at` it has folded). On a
quiet night nothing arrives, and deadlines would wait for the morning's first event; a tick
is a record whose only content is its time, so the queue (live, or in a replay) sees the
night pass at the same point. Ticks only go forward.
"""

from __future__ import annotations

from orderlog.domain.envelope import Upstream
from orderlog.domain.record import Record
from orderlog.domain.stream import ACCEPTED, Decision, Outcome, StreamAggregate

CLOCK = "engine"
"""The one clock stream's key."""


class Clock(StreamAggregate):
    STREAM = "clock"
    OPENED_BY = frozenset({"ClockTicked"})

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.now = ""

    def handle(self, upstream: Upstream, recorded_at: str | None = None) -> Decision:
        if upstream.occurred_at <= self.now:
            return Decision(Outcome.REFUSED, f"the clock already reads {self.now}; a tick must go forward")
        self._append(upstream.type, upstream, upstream.data, recorded_at)
        return ACCEPTED

    def on_ClockTicked(self, record: Record) -> None:
        self.now = record.occurred_at
