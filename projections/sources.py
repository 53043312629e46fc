"""Where records come from: the store's log (embedded mode) or `orderlog.events` on Kafka.

Both yield batches of the same records (orderlog.domain.record), each with the position it
was read at under a source name: `log` with the store position, or `<topic>:<partition>`
with the next offset to read (what the eventsourcing tracking tables keep: ids above 0,
strictly increasing per name). A projector skips what its tracked positions say it has
folded already, so a batch seen twice changes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import TopicPartition

from orderlog.domain.record import Record
from orderlog.kafka.assignment import Assignment
from orderlog.kafka.clients import consumer, partition_count
from orderlog.kafka.codec import record_from_message
from orderlog.store.log import LogReader

if TYPE_CHECKING:
    from orderlog.config import Config
    from orderlog.kafka.registry import SchemaIds

LOG = "log"
BATCH = int(os.environ.get("ORDERLOG_PROJECT_BATCH") or 5_000)
"""Records per batch: one transaction of view writes (one event per transaction measured
forty times slower). ORDERLOG_PROJECT_BATCH sets it (tests make batches small, so that a
process killed mid-run is killed between commits and inside one)."""
IDLE_SECONDS = 0.2
JOIN_SECONDS = 60.0
REBALANCE_SECONDS = 10.0
"""--once: how long a member whose partitions were all revoked waits to be given some again."""

Positioned = tuple[str, int, Record]
"""(source name, position, record)."""
Start = Callable[[str], int]
"""The position a source name is to be read from (0: the beginning)."""


@dataclass
class Batch:
    records: list[Positioned]
    ends: dict[str, int] = field(default_factory=dict)
    """Per source name, the position the batch ends at: what is recorded when it is applied."""
    caught_up: bool = True
    """Nothing more was waiting when it was read: the projectors know all there is to know
    (the queue decides payment timeouts only then, never half-way through history)."""
    reassigned: bool = False
    """The source's partitions changed hands since the previous batch: another process may
    have written the rows of the entities this one now holds, so nothing this process keeps
    in memory about them (rows, positions, "the tables are empty") can be trusted."""


class LogSource:
    """The store's log through the one log reader, paged; waits when drained (`follow`)."""

    name = "the store's log"
    shows_own_records = True

    def __init__(self, reader: LogReader, *, batch: int = BATCH):
        self._reader = reader
        self._batch = batch

    def batches(self, start: Start, *, follow: bool, should_stop: Callable[[], bool]) -> Iterator[Batch]:
        while not should_stop():
            after = start(LOG)
            records = [(LOG, position, record) for position, record in self._reader.records(after, limit=self._batch)]
            if records:
                yield Batch(records, {LOG: records[-1][1]}, caught_up=len(records) < self._batch)
            elif not follow:
                return
            else:
                yield Batch([])  # drained: caught up, nothing to fold
                time.sleep(IDLE_SECONDS)

    def lag(self, start: Start) -> int:
        return self._reader.count_after(start(LOG))


class KafkaSource:
    """`orderlog.events` through a consumer group named after the projectors, one group per
    set of projectors run together (`orderlog.project.holds`): each scales by partition.
    Positions come from the view database, not the group's committed offsets."""

    shows_own_records = False  # they arrive later, through the relay

    def __init__(self, config: Config, ids: SchemaIds, group: str, *, batch: int = BATCH, whole_topic: bool = False):
        """`whole_topic`: read every partition in this process (no sharing within the group),
        for projectors whose rows gather records from every partition."""
        self.topic = config.topic("events")
        self._whole_topic = whole_topic
        self.name = self.topic
        self._ids = ids
        self._batch = batch
        self._consumer = consumer(config, group)
        self._partitions = Assignment("projector")
        self._next: dict[int, int] = {}
        self._ends: dict[int, int] | None = None
        self._start: Start = lambda _name: 0
        self._reassigned = False

    def batches(self, start: Start, *, follow: bool, should_stop: Callable[[], bool]) -> Iterator[Batch]:
        self._start = start
        if self._whole_topic:
            count = partition_count(self._consumer, self.topic)
            self._on_assign(self._consumer, [TopicPartition(self.topic, partition) for partition in range(count)])
        else:
            self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        began = time.monotonic()
        try:
            while not should_stop():
                messages = self._consumer.consume(self._batch, 0.2)
                data = [message for message in messages if self._partitions.is_data(message)]
                if data:
                    yield self._batch_of(data, caught_up=len(messages) < self._batch)
                    self._rewind()
                elif not follow and self._drained(began):
                    return
                elif self._partitions.all_read:
                    yield Batch([])  # every partition read to its end: caught up
        finally:
            self._ends = self._high_watermarks()  # for the lag reported after the run
            self._consumer.close()

    def lag(self, start: Start) -> int:
        """Messages on the topic not yet folded (over the partitions this process holds)."""
        ends = self._ends if self._ends is not None else self._high_watermarks()
        return sum(max(0, high - start(self._position_name(partition))) for partition, high in ends.items())

    def _high_watermarks(self) -> dict[int, int]:
        ends = {}
        for partition in self._partitions.held:
            _low, ends[partition] = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=5
            )
        return ends

    def _batch_of(self, messages: list[Any], *, caught_up: bool) -> Batch:
        records = []
        ends: dict[str, int] = {}
        for message in messages:
            name = self._position_name(message.partition())
            position = message.offset() + 1
            records.append((name, position, record_from_message(message.value(), self._ids)))
            ends[name] = self._next[message.partition()] = position
        reassigned, self._reassigned = self._reassigned, False
        return Batch(records, ends, caught_up, reassigned)

    def _rewind(self) -> None:
        """A batch that was not applied (another runner applied it, or a replay switched the
        generation) leaves the projectors behind what was read: read it again from there."""
        for partition, read_to in list(self._next.items()):
            wanted = self._start(self._position_name(partition))
            if wanted < read_to and partition in self._partitions.held:
                self._consumer.seek(TopicPartition(self.topic, partition, wanted))
                self._next[partition] = wanted

    def _position_name(self, partition: int) -> str:
        return f"{self.topic}:{partition}"

    def _drained(self, began: float) -> bool:
        """--once: every held partition read to its end. A member left holding none (a
        rebalance revokes everything before it hands partitions out again) waits a while for
        them: leaving at once, several members of one group could all leave mid-rebalance
        with the topic unread."""
        if not self._partitions.ever_assigned:  # more processes in the group than partitions: nothing for this one
            return time.monotonic() - began > JOIN_SECONDS
        if self._partitions.held:
            return self._partitions.all_read
        return time.monotonic() - self._partitions.last_change > REBALANCE_SECONDS

    def _on_assign(self, reader: Any, partitions: list[TopicPartition]) -> None:
        for assigned in partitions:
            assigned.offset = self._next[assigned.partition] = self._start(self._position_name(assigned.partition))
        self._partitions.assigned(assigned.partition for assigned in partitions)
        self._reassigned = True
        reader.assign(partitions)

    def _on_revoke(self, _reader: Any, partitions: list[TopicPartition]) -> None:
        self._partitions.revoked(revoked.partition for revoked in partitions)
        self._reassigned = True
        for revoked in partitions:
            self._next.pop(revoked.partition, None)
