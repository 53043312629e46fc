"""What the Kafka integration tests share: a configuration with its own topics on the test
broker, producing inbound traffic, and reading a topic back to its end."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import KafkaError as LibrdkafkaError

from orderlog.config import Config
from orderlog.domain.record import Record
from orderlog.kafka.clients import partition_count
from orderlog.kafka.codec import POSITION_HEADER, header, record_from_message
from orderlog.kafka.registry import SchemaIds
from orderlog.kafka.topics import create_topics
from tests import kafka_broker as kb


def kafka_config(broker: str, store_url: str, directory: Path, partitions: int = 3) -> Config:
    """A configuration whose three topics are new (a unique prefix) and created, with
    consumer settings fit for the test broker."""
    settings = kb.consumer_settings(broker, "unused")
    options = {name: str(settings[name]) for name in settings if name.endswith(".ms")}
    config = Config(
        store_url=store_url,
        master_key_file=directory / "master.key",
        kafka=broker,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_consumer_options=options,
    )
    create_topics(config, partitions)
    return config


def produce(config: Config, values: Iterable[bytes | None], key: bytes | None = None) -> int:
    """Sends values to the inbound topic, keyed by their order id when they have one."""
    sender = Producer({"bootstrap.servers": config.kafka, "enable.idempotence": True})
    count = 0
    for value in values:
        sender.produce(config.topic("inbound"), value, key or _key_of(value))
        sender.poll(0)
        count += 1
    assert sender.flush(30) == 0
    return count


def _key_of(value: bytes | None) -> bytes | None:
    from orderlog.domain.envelope import stream_key_of

    found = stream_key_of(value) if value else None
    return found.encode() if found else None


def read_topic(config: Config, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every message of a topic, partition by partition, to its end."""
    reader = Consumer(
        kb.consumer_settings(config.kafka or "", f"reader-{uuid.uuid4().hex}", **{"enable.partition.eof": True})
    )
    try:
        partitions = partition_count(reader, topic)
        reader.assign([TopicPartition(topic, partition, 0) for partition in range(partitions)])
        messages: list[Any] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            message = reader.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == LibrdkafkaError._PARTITION_EOF, message.error()
                at_end.add(message.partition())
                continue
            messages.append(message)
        return messages
    finally:
        reader.close()


def events_on_topic(config: Config, ids: SchemaIds) -> list[tuple[int, int, Record]]:
    """(partition, store position, record) of every message on the events topic."""
    return [
        (
            message.partition(),
            int(header(message.headers(), POSITION_HEADER) or -1),
            record_from_message(message.value(), ids),
        )
        for message in read_topic(config, config.topic("events"))
    ]


def environment(config: Config) -> dict[str, str]:
    """The environment of an `orderlog` process that uses `config` (and nothing of the caller's ORDERLOG_*)."""
    options = ";".join(f"{name}={value}" for name, value in config.kafka_consumer_options.items())
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORDERLOG_")},
        "ORDERLOG_STORE": config.store_url,
        "ORDERLOG_MASTER_KEY_FILE": str(config.master_key_file),
        "ORDERLOG_KAFKA": config.kafka or "",
        "ORDERLOG_TOPIC_PREFIX": config.topic_prefix,
        "ORDERLOG_KAFKA_CONSUMER_OPTIONS": options,
        **({"ORDERLOG_REQUIRE_SIGNATURES": "1"} if config.require_signatures else {}),
    }
