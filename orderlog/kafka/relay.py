"""`orderlog relay`: the outbox. Every stored record onto `orderlog.events`, exactly once.

Guarantees:
- every record of the store's log is on the topic once, on the partition of its stream
  key, and the records of one stream are there in store order;
- after a crash or `kill -9` at any moment, running the relay again adds exactly what is
  missing: it finds where it stopped from what is on the topic itself (the `position`
  header of each partition's last message), not from a note it kept, so nothing it
  believed sent but was not, and nothing sent but not noted, is lost or doubled.

Why that holds: the producer is idempotent, so within its life each partition receives a
gap-free, duplicate-free prefix of what was sent to it, in order; and records are sent in
store order. A partition's last position P therefore says that every record of that
partition up to P is there and none after it. Aborted transactions are not relied on
(some Kafka-protocol brokers show aborted messages to readers); positions are.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import TopicPartition

from orderlog.config import Config
from orderlog.domain.text import is_whole_number
from orderlog.kafka import KafkaError
from orderlog.kafka.clients import consumer, partition_count, partition_for, producer
from orderlog.kafka.codec import POSITION_HEADER, header, record_message
from orderlog.kafka.registry import SchemaIds

if TYPE_CHECKING:
    from orderlog.application import OrderLog

PAGE = 5_000
IDLE_SECONDS = 0.01
"""How long a drained relay waits before looking at the log again."""
REPORT_SECONDS = 5.0
POLL_EVERY = 500


@dataclass
class RelayReport:
    relayed: int = 0
    skipped: int = 0
    """Records found on the topic already (sent before a crash)."""
    lag: int = 0
    """Records stored but not yet on the topic."""
    resumed_from: dict[int, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"relayed {self.relayed}, already on the topic {self.skipped}, lag {self.lag}"


class Relay:
    def __init__(self, app: OrderLog, config: Config, ids: SchemaIds, *, max_rate: int | None = None):
        """`max_rate`: records per second at most (catching up on a long log without flooding
        a shared cluster); None: as fast as the broker takes them."""
        self._app = app
        self._max_rate = max_rate
        self._started = time.monotonic()
        self._ids = ids
        self.topic = config.topic("events")
        self._producer = relay_producer(config, self._delivered)
        self._partitions = partition_count(self._producer, self.topic)
        self._failures: list[str] = []
        self.report = RelayReport(resumed_from=last_positions(config, self.topic, self._partitions))
        self._last = dict(self.report.resumed_from)

    def run(
        self, *, follow: bool, should_stop: Callable[[], bool], progress: Callable[[RelayReport], None]
    ) -> RelayReport:
        """Sends what the topic lacks; with `follow`, then waits for new records until told to stop."""
        after = min(self._last.values(), default=0)
        reported = time.monotonic()
        while not should_stop():
            sent_any = False
            for position, record in self._app.log_reader.records(after=after, limit=PAGE):
                after = position
                sent_any = True
                self._send(position, record)
                if should_stop():  # a page can take long (--max-rate): stop within it
                    break
            self._check()
            if time.monotonic() - reported > REPORT_SECONDS:
                reported = time.monotonic()
                progress(self._with_lag(after))
            if not sent_any:
                if not follow:
                    break
                self._producer.poll(IDLE_SECONDS)
        self._flush()
        return self._with_lag(after)

    def _send(self, position: int, record: Any) -> None:
        key = record.key.encode()
        partition = partition_for(key, self._partitions)
        if position <= self._last.get(partition, 0):
            self.report.skipped += 1
            return
        _key, value, headers = record_message(record, position, self._ids)
        while True:
            try:
                self._producer.produce(self.topic, value, key, partition=partition, headers=headers)
                break
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.1)
        self._last[partition] = position
        self.report.relayed += 1
        if self.report.relayed % POLL_EVERY == 0:
            self._producer.poll(0)  # delivery reports
        if self._max_rate is not None:
            ahead = self.report.relayed / self._max_rate - (time.monotonic() - self._started)
            if ahead > 0:
                self._producer.poll(ahead)  # waits, serving delivery reports meanwhile

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def _check(self) -> None:
        if self._failures:
            raise KafkaError(
                f"relay stopped: {len(self._failures)} message(s) were not delivered ({self._failures[0]}); "
                "run it again: it resumes from what is on the topic"
            )

    def _flush(self) -> None:
        remaining = self._producer.flush(60)
        self._check()
        if remaining:
            raise KafkaError(f"relay stopped: {remaining} message(s) still undelivered after 60 s; run it again")

    def _with_lag(self, after: int) -> RelayReport:
        self.report.lag = self._app.log_reader.count_after(after) + len(self._producer)
        return self.report


def relay_producer(config: Config, on_failure: Callable[[Any, Any], None], **settings: Any) -> Any:
    """An idempotent producer that reports failed deliveries only, to `on_failure(error,
    message)`: a Python callback for every delivered message cost about a tenth of the
    relay's time. What is still in flight is the producer's length."""
    return producer(config, **{"delivery.report.only.error": True, "on_delivery": on_failure, **settings})


def last_positions(config: Config, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's last store position, read from its last messages' headers (0 for an
    empty partition). Reads every partition to its end at once, from just before its
    reported end (further back only where that shows nothing), rather than trusting the
    reported end: some brokers report it a little early."""
    reader = consumer(config, f"relay-resume-{uuid.uuid4().hex}")
    try:
        found: dict[int, int] = {}
        ends = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
        for back in (1, 1_000, None):
            wanted = [p for p in range(partitions) if p not in found]
            starts = {p: ends[p][0] if back is None else max(ends[p][0], ends[p][1] - back) for p in wanted}
            last = _read_to_ends(reader, topic, starts)
            found |= {p: position for p, position in last.items() if position is not None}
            if back is None:
                found |= {p: 0 for p in wanted if p not in found}
            if len(found) == partitions:
                break
        return found
    finally:
        reader.close()


def _read_to_ends(reader: Any, topic: str, starts: dict[int, int]) -> dict[int, int | None]:
    """The largest position header of each partition from its start offset to its end."""
    reader.assign([TopicPartition(topic, partition, start) for partition, start in starts.items()])
    last: dict[int, int | None] = dict.fromkeys(starts)
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    while len(at_end) < len(starts):
        if time.monotonic() > deadline:
            raise KafkaError(f"cannot read {topic} to its end within 60 s")
        message = reader.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() != LibrdkafkaError._PARTITION_EOF:
                raise KafkaError(f"cannot read {topic} partition {message.partition()}: {error}")
            at_end.add(message.partition())
            continue
        position = header(message.headers(), POSITION_HEADER)
        if position is None or not is_whole_number(position):
            raise KafkaError(
                f"{topic} partition {message.partition()} offset {message.offset()} has no store position header: "
                "is it orderlog's events topic?"
            )
        last[message.partition()] = max(int(position), last[message.partition()] or 0)
    reader.unassign()
    return last
