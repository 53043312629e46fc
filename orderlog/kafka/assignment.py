"""Which partitions a consumer holds, and which of them it has read to their end.

Ingest and the projectors' Kafka source both ask the same questions of a consumer group:
what was assigned (and when), what was revoked, whether a polled message is data or the
end-of-partition event, and whether every partition held has been read to its end (for
`--once`). A transient error (a broker moving, a rebalance) is librdkafka's to retry; a
fatal one stops the caller with its words.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError as LibrdkafkaError

from orderlog.kafka import KafkaError


class Assignment:
    def __init__(self, what: str):
        """`what`: who stops when a fatal error comes (`ingest`, `projector`)."""
        self._what = what
        self.held: set[int] = set()
        self._at_end: set[int] = set()
        self.first_assigned: float | None = None
        """When (monotonic) the group first gave this consumer partitions: the broker holds a
        join until the group settles, a second or more that the consumer cannot shorten."""
        self.last_change = time.monotonic()

    @property
    def ever_assigned(self) -> bool:
        return self.first_assigned is not None

    def assigned(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.held.add(partition)
            self._at_end.discard(partition)
        self.last_change = time.monotonic()
        if self.first_assigned is None:
            self.first_assigned = self.last_change

    def revoked(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.held.discard(partition)
            self._at_end.discard(partition)
        self.last_change = time.monotonic()

    @property
    def all_read(self) -> bool:
        """Some partitions held, and each read to its end."""
        return bool(self.held) and self._at_end >= self.held

    def is_data(self, message: Any) -> bool:
        """Whether a polled message carries data (end-of-partition events are noted, transient
        errors skipped); KafkaError for a fatal one."""
        error = message.error()
        if error is None:
            self._at_end.discard(message.partition())
            return True
        if error.code() == LibrdkafkaError._PARTITION_EOF:
            self._at_end.add(message.partition())
            return False
        if error.retriable() or not error.fatal():
            return False  # transient (a broker moving, a rebalance): librdkafka goes on by itself
        raise KafkaError(f"{self._what} stopped: {error}")
