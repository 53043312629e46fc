"""orderlog's topics, each with the settings it relies on, stated once.

- `orderlog.inbound`: upstream events (JSON as in the contract, or Avro in the Confluent
  wire format), kept a week: once taken in, the store holds them;
- `orderlog.events`: every stored record, Avro, kept forever (`retention.ms=-1`, deleted
  never, compacted never: every record of an order matters, not only its last), so that a
  projector can always be rebuilt from the topic;
- `orderlog.dlq`: dead letters (the original bytes and headers naming the error and where
  the message came from), kept forever: someone must look at each.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import NewTopic

from orderlog.config import Config
from orderlog.kafka import KafkaError
from orderlog.kafka.clients import admin

WEEK_MS = 7 * 24 * 3600 * 1000
DEFAULT_PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    name: str
    settings: dict[str, str]


TOPICS = {
    "inbound": {"cleanup.policy": "delete", "retention.ms": str(WEEK_MS)},
    "events": {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
    "dlq": {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
}
"""Each topic (without the prefix) and the settings orderlog relies on."""


def topic_specs(config: Config) -> list[TopicSpec]:
    return [TopicSpec(config.topic(name), settings) for name, settings in TOPICS.items()]


def create_topics(config: Config, partitions: int = DEFAULT_PARTITIONS, replication: int = 1) -> list[str]:
    """Creates the topics that are missing, each with its settings; returns what it did,
    one line per topic. An existing topic is left as it is (and said so)."""
    client = admin(config)
    wanted = [
        NewTopic(spec.name, num_partitions=partitions, replication_factor=replication, config=spec.settings)
        for spec in topic_specs(config)
    ]
    done = []
    for name, future in client.create_topics(wanted, request_timeout=15).items():
        try:
            future.result(timeout=30)
            done.append(f"created {name} ({partitions} partitions)")
        except Exception as error:  # the admin client reports every failure as a KafkaException
            if "TOPIC_ALREADY_EXISTS" in str(error) or "already exists" in str(error):
                done.append(f"{name} exists already; left as it is")
            else:
                raise KafkaError(f"cannot create topic {name}: {error}") from None
    return done
