"""`orderlog ingest`: upstream events from `orderlog.inbound` into the store, exactly once.

Each message takes exactly the path of a line of `orderlog publish` (the same validation,
signatures, lifecycle, duplicates and conflicts), a poll's messages as one batch.

Guarantees:
- a poll's messages are stored in one transaction together with the position each
  partition reached (the eventsourcing library's tracking, `<topic>:<partition>`, several
  per transaction: orderlog.store.positions); a crash before
  Kafka's offsets are committed re-delivers the batch, and the store recognises the
  position as recorded and takes nothing twice;
- after an assignment, reading starts where the store says it stopped, whatever offsets
  Kafka kept;
- a message that cannot be taken in (unreadable, invalid, an event id re-used for other
  content, or one orderlog itself failed on) goes to `orderlog.dlq` before its batch is
  stored, so no crash can lose it; refused requests are recorded on the order, as always;
- several ingest processes share the partitions of the inbound topic (one consumer group).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import TopicPartition
from eventsourcing.persistence import Tracking

from orderlog.config import Config
from orderlog.intake.outcomes import INVALID, REJECTED, LineResult, Tally
from orderlog.intake.pipeline import PositionAlreadyRecorded
from orderlog.kafka import KafkaError
from orderlog.kafka.assignment import Assignment
from orderlog.kafka.clients import consumer, partition_count, partition_ends
from orderlog.kafka.dead_letters import DeadLetter, DeadLetterSender
from orderlog.kafka.inbound import UnreadableMessage, envelope_text
from orderlog.kafka.registry import SchemaIds

if TYPE_CHECKING:
    from orderlog.application import OrderLog

GROUP = "ingest"
"""The consumer group of every ingest process (under the topic prefix: `orderlog.ingest`)."""
BATCH_MESSAGES = 10_000
"""Messages per poll at most; a poll is one transaction (one fsync), so many."""
POLL_SECONDS = 0.1
"""How long a poll waits for a first message before checking whether to stop."""
REPORT_SECONDS = 5.0
ONCE_IDLE_SECONDS = 10.0
JOIN_SECONDS = 120.0
"""--once: how long to wait for a first assignment before concluding the group has no partition
for this process (a join takes seconds on Kafka, half the session timeout on some brokers)."""


@dataclass
class IngestReport:
    tally: Tally = field(default_factory=Tally)
    dead_letters: int = 0
    redelivered: int = 0
    """Batches found stored already (taken in before a crash, offsets not yet committed)."""

    def __str__(self) -> str:
        return f"{self.tally}; dead letters {self.dead_letters}; batches found stored already {self.redelivered}"


class Ingest:
    def __init__(self, app: OrderLog, config: Config, ids: SchemaIds, *, batch: int = BATCH_MESSAGES):
        self._app = app
        self._config = config
        self._ids = ids
        self._batch = batch
        self.topic = config.topic("inbound")
        self._consumer = consumer(config, GROUP)
        partition_count(self._consumer, self.topic)  # else a missing topic leaves the group waiting, silent
        self._dead = DeadLetterSender(config)
        self._partitions = Assignment("ingest")
        self._started = time.monotonic()
        self.report = IngestReport()

    def run(
        self, *, follow: bool, should_stop: Callable[[], bool], progress: Callable[[IngestReport], None]
    ) -> IngestReport:
        """Takes in what arrives; without `follow`, stops once every assigned partition is read to its end."""
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        reported = last_message = time.monotonic()
        try:
            while not should_stop():
                messages = self._poll()
                self._take([message for message in messages if self._partitions.is_data(message)])
                if messages:
                    last_message = time.monotonic()
                # every 5 s, counted from the assignment: a tally of zeros while joining says nothing
                if (
                    self._partitions.ever_assigned
                    and time.monotonic() - max(reported, self._partitions.last_change) > REPORT_SECONDS
                ):
                    reported = time.monotonic()
                    progress(self.report)
                if not follow and self._done(last_message):
                    break
        finally:
            self._consumer.close()
        return self.report

    @property
    def joined_at(self) -> float | None:
        """When (monotonic) the group first gave this process partitions; None before."""
        return self._partitions.first_assigned

    def _poll(self) -> list[Any]:
        """Waits for one message, then takes whatever else has arrived, up to a batch: under
        a trickle each message is taken at once; under load, what came in while the last
        batch was stored makes the next one (batches grow with the load, by themselves)."""
        first = self._consumer.poll(POLL_SECONDS)
        if first is None:
            return []
        return [first, *self._consumer.consume(self._batch - 1, 0)]

    def _done(self, last_message: float) -> bool:
        """--once: every assigned partition read to its end; or, sharing the group with others,
        nothing more came for a while (a rebalance that leaves this process without partitions
        must not keep it waiting)."""
        if self._partitions.all_read:
            return True
        if not self._partitions.ever_assigned:
            return time.monotonic() - self._started > JOIN_SECONDS
        return time.monotonic() - max(last_message, self._partitions.last_change) > ONCE_IDLE_SECONDS

    def _on_assign(self, reader: Any, partitions: list[TopicPartition]) -> None:
        """Start each partition where the store says its last batch ended (KafkaError if
        that is beyond the partition's end)."""
        recorded = {
            assigned.partition: self._app.recorder.max_tracking_id(_position_name(self.topic, assigned.partition))  # type: ignore[attr-defined]
            for assigned in partitions
        }
        self._check_recorded_within_ends({partition: at for partition, at in recorded.items() if at})
        for assigned in partitions:
            if recorded[assigned.partition] is not None:
                assigned.offset = recorded[assigned.partition]
        self._partitions.assigned(assigned.partition for assigned in partitions)
        reader.assign(partitions)

    def _check_recorded_within_ends(self, recorded: dict[int, int]) -> None:
        """A store that took a partition further than it now reaches was fed from another
        topic of that name (re-created, or on another Kafka): starting from the store's
        position would skip the new topic's messages silently, and starting from the
        beginning would take them as positions already stored. Neither is right: stop."""
        if not recorded:
            return
        ends = partition_ends(self._config, self.topic, sorted(recorded))
        beyond = [(partition, at, ends[partition]) for partition, at in recorded.items() if at > ends[partition]]
        if beyond:
            partition, at, end = beyond[0]
            raise KafkaError(
                f"the store took {self.topic} partition {partition} up to offset {at}, but the partition ends at "
                f"{end} ({len(beyond)} of {len(recorded)} partitions so): was the topic re-created, or is this "
                "another Kafka? Nothing was taken; use a new store, or new topics (ORDERLOG_TOPIC_PREFIX)"
            )

    def _on_revoke(self, _reader: Any, partitions: list[TopicPartition]) -> None:
        self._partitions.revoked(revoked.partition for revoked in partitions)

    def _take(self, messages: list[Any]) -> None:
        """A poll's messages, from every partition, in one transaction with each partition's
        new position; then the offsets are committed to Kafka (a crash in between re-delivers
        what the store already holds, and the positions say so)."""
        remaining = messages
        while remaining:
            try:
                self._take_batch(remaining)
                break
            except PositionAlreadyRecorded as already:  # stored before: a crash or a rebalance
                done = {_partition_of(position.application_name) for position in already.recorded}
                self.report.redelivered += len(done)
                remaining = [message for message in remaining if message.partition() not in done]
        self._commit(messages)

    def _take_batch(self, messages: list[Any]) -> None:
        lines: list[tuple[int, bytes]] = []
        unreadable: list[LineResult] = []
        for index, message in enumerate(messages):
            try:
                lines.append((index, envelope_text(message.value(), self._ids)))
            except UnreadableMessage as error:
                unreadable.append(LineResult(index, INVALID, reason=str(error)))
        dead: list[LineResult] = []

        def send_dead_letters(results: list[LineResult]) -> None:
            dead[:] = [result for result in [*unreadable, *results] if _dead(result)]
            self._dead.send([self._letter(messages[result.line], result) for result in dead])

        results = self._app.take_batch(lines, self._positions(messages), before_save=send_dead_letters)
        self.report.tally.add([*unreadable, *results])
        self.report.dead_letters += len(dead)

    def _positions(self, messages: list[Any]) -> list[Tracking]:
        """Where each partition's share of the batch ends: the next offset to read."""
        ends = {message.partition(): message.offset() + 1 for message in messages}
        return [Tracking(_position_name(self.topic, partition), end) for partition, end in ends.items()]

    def _commit(self, messages: list[Any]) -> None:
        ends = {message.partition(): message.offset() + 1 for message in messages}
        if ends:
            offsets = [TopicPartition(self.topic, partition, end) for partition, end in ends.items()]
            self._consumer.commit(offsets=offsets, asynchronous=True)

    def _letter(self, message: Any, result: LineResult) -> DeadLetter:
        return DeadLetter(
            (self.topic, message.partition(), message.offset()),
            result.outcome,
            result.reason,
            message.key(),
            message.value(),
            list(message.headers() or []),
        )


def _dead(result: LineResult) -> bool:
    """A line not taken in that left no record: it lives on as a dead letter."""
    return result.outcome in REJECTED and not result.recorded


def _position_name(topic: str, partition: int) -> str:
    """The tracking name of an input partition: what the store records its position under."""
    return f"{topic}:{partition}"


def _partition_of(position_name: str) -> int:
    return int(position_name.rsplit(":", 1)[1])
