"""Kafka clients with orderlog's settings, and the partitioner every producer shares.

Producers are idempotent (`enable.idempotence`): within one producer's life, a message
is written once and in order per partition, retries included. Consumers commit offsets
themselves, after the work is stored: the store's own positions are what make an effect
happen once (a redelivery is recognised there), the committed offsets only say where to
start reading.

No client asks the broker to create a missing topic (`allow.auto.create.topics` is off):
a topic created on first use gets the broker's defaults (on Kafka, a week's retention, not
the events topic's forever), so a missing topic is an error naming `orderlog topics create`.

Messages go to the partition Kafka's Java clients would choose for their key (murmur2 of
the key bytes, made positive, modulo the partition count), so that every record of one
order lands on one partition, and other clients and stream processors that partition by
the same key (joins, Kafka Streams) agree.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka.admin import AdminClient

from orderlog.config import Config
from orderlog.kafka import KafkaError

CLIENT_LOG = logging.getLogger("orderlog.kafka.librdkafka")
"""librdkafka's own log lines (a refused connection is logged 20 times a second): kept out of
a user's terminal, shown with ORDERLOG_DEBUG=1. What a user must know reaches them as
orderlog's own one-line errors and warnings instead."""
CLIENT_LOG.addHandler(logging.NullHandler())
REACH_SECONDS = 10.0
SESSION_MS = 10_000
"""How long a silent group member keeps its partitions: a dead ingest's partitions move to the
others within 10 s (librdkafka's default, 45 s, leaves them idle that long)."""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    h = (seed ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a key: Kafka's default for keyed messages (murmur2, made positive).
    Remembered: an order's records come close together, and murmur2 in Python costs 4 µs."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def kafka_servers(config: Config) -> str:
    if not config.kafka:
        raise KafkaError("no Kafka configured: pass --kafka HOST:PORT or set ORDERLOG_KAFKA")
    return config.kafka


def producer(config: Config, **settings: Any) -> Producer:
    return Producer(
        {
            "bootstrap.servers": kafka_servers(config),
            "logger": CLIENT_LOG,
            "enable.idempotence": True,
            "acks": "all",
            "allow.auto.create.topics": False,
            "partitioner": "murmur2_random",  # partition_for's choice (the Java clients'), for keyed messages
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 200_000,
            **settings,
        }
    )


Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
"""(key, value, headers)"""


class Sender:
    """Sends messages to one topic and returns only once the broker has every one of them:
    an idempotent producer, a full local queue waited out, failed deliveries raised."""

    def __init__(self, config: Config, topic: str):
        self.topic = topic
        self._producer = producer(config)
        partition_count(self._producer, topic)  # a missing topic is said at once, not after 60 s
        self._failures: list[str] = []

    def send(self, messages: Iterable[Message], *, what: str = "messages", unless: str = "") -> int:
        """How many were sent; KafkaError naming `what` (and what then follows: `unless`) if
        any was not delivered within 60 s."""
        count = 0
        for key, value, headers in messages:
            while True:
                try:
                    self._producer.produce(self.topic, value, key, headers=headers, on_delivery=self._delivered)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self._producer.poll(0.1)
            count += 1
        undelivered = self._producer.flush(60) if count else 0
        if undelivered or self._failures:
            failure = f"({self._failures[0]})" if self._failures else "within 60 s"
            self._failures = []
            raise KafkaError(f"{what} not delivered to {self.topic} {failure}{unless}")
        return count

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))


def consumer(config: Config, group: str, **settings: Any) -> Consumer:
    """A consumer in `group`, named under the topic prefix like the topics, so that two
    deployments sharing a cluster (or a test broker) never share a consumer group."""
    chosen = {**config.kafka_consumer_options, **settings}
    return Consumer(
        {
            "bootstrap.servers": kafka_servers(config),
            "logger": CLIENT_LOG,
            "group.id": config.topic(group),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "session.timeout.ms": SESSION_MS,
            **_heartbeat_within(chosen),
            **chosen,
        }
    )


def _heartbeat_within(chosen: dict[str, Any]) -> dict[str, Any]:
    """A session timeout set below librdkafka's default heartbeat interval (3 s) would expire
    between heartbeats, and the group would rebalance over and over: heartbeat at a third of it."""
    if "heartbeat.interval.ms" in chosen:
        return {}
    return {"heartbeat.interval.ms": max(1, int(chosen.get("session.timeout.ms", SESSION_MS)) // 3)}


def admin(config: Config) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_servers(config), "logger": CLIENT_LOG})


def ensure_reachable(config: Config) -> None:
    """KafkaError, in words, unless a broker at the configured address answers within 10 s:
    a command should not start work (or wait forever) against a Kafka that is not there."""
    try:
        admin(config).list_topics(timeout=REACH_SECONDS)
    except KafkaException as error:
        raise KafkaError(
            f"Kafka at {config.kafka} does not answer ({describe(error)}); is it running? (--kafka / ORDERLOG_KAFKA)"
        ) from None


def describe(error: KafkaException) -> str:
    """The words of a librdkafka error, without its code dump."""
    inner = error.args[0] if error.args else None
    return inner.str() if hasattr(inner, "str") else str(error)


def partition_count(client: Any, topic: str, timeout: float = 10.0) -> int:
    """How many partitions `topic` has (KafkaError if it does not exist)."""
    try:
        metadata = client.list_topics(topic, timeout=timeout)
    except KafkaException as error:
        raise KafkaError(f"cannot read the metadata of {topic}: {describe(error)}") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise KafkaError(f"topic {topic} does not exist: run `orderlog topics create`")
    return len(found.partitions)


def partition_ends(config: Config, topic: str, partitions: list[int], timeout: float = 60.0) -> dict[int, int]:
    """Where each partition ends (the offset its next message will get), read rather than asked:
    some Kafka-protocol brokers report the end early (the last batch's first offset + 1). Reads
    from just before the reported end to the end-of-partition event, whose offset is the end."""
    reader = consumer(config, f"ends-{uuid.uuid4().hex}")
    try:
        starts = []
        for partition in partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            starts.append(TopicPartition(topic, partition, max(low, high - 1)))
        reader.assign(starts)
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(ends) < len(partitions):
            if time.monotonic() > deadline:
                raise KafkaError(f"cannot read {topic} to its end within {timeout:.0f} s")
            message = reader.poll(0.5)
            error = message.error() if message is not None else None
            if error is None:
                continue
            if error.code() != LibrdkafkaError._PARTITION_EOF:
                raise KafkaError(f"cannot read {topic} partition {message.partition()}: {error}")
            ends[message.partition()] = message.offset()
        return ends
    finally:
        reader.close()
