"""Dead letters: inbound messages that could not be taken in, kept on `orderlog.dlq`.

A dead letter is the original message (key, value bytes, headers) with headers added that
say why and where it came from: `orderlog.reason`, `orderlog.outcome` (invalid, conflict,
failed), `orderlog.source.topic`, `.partition` and `.offset`. It is sent before the batch
it came in is stored, so a crash can never store a batch and lose its dead letters; a
crash between the two can send one twice, so readers count a dead letter once per source
position.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import TopicPartition

from orderlog.config import Config
from orderlog.domain.envelope import best_effort_ids
from orderlog.domain.text import is_whole_number
from orderlog.kafka import KafkaError
from orderlog.kafka.clients import Message, Sender, consumer, partition_count

REASON = "orderlog.reason"
OUTCOME = "orderlog.outcome"
SOURCE_TOPIC = "orderlog.source.topic"
SOURCE_PARTITION = "orderlog.source.partition"
SOURCE_OFFSET = "orderlog.source.offset"
REPLAYED_FROM = "orderlog.replayed-from"
ADDED = (REASON, OUTCOME, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)


@dataclass(frozen=True)
class DeadLetter:
    source: tuple[str, int, int]
    """(topic, partition, offset) of the message that could not be taken in."""
    outcome: str
    reason: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    """The original message's headers (without the ones this module adds)."""

    def as_dict(self) -> dict[str, Any]:
        """For `dlq list --json`: everything, the value as text when it is UTF-8."""
        ids = best_effort_ids(self.value) if self.value else {"event_id": None, "key": None}
        return {
            "source": f"{self.source[0]}:{self.source[1]}:{self.source[2]}",
            "outcome": self.outcome,
            "reason": self.reason,
            "event_id": ids["event_id"],
            "key": self.key.decode("utf-8", "replace") if self.key else None,
            "value": _text(self.value),
        }


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + value.hex()


class DeadLetterSender:
    """Sends dead letters, with headers saying why and where from, and waits until the broker has them."""

    def __init__(self, config: Config):
        self._sender = Sender(config, config.topic("dlq"))

    def send(self, letters: list[DeadLetter]) -> None:
        self._sender.send(
            [(letter.key, letter.value, _headers(letter)) for letter in letters],
            what="dead letters",
            unless="; nothing of the batch is stored",
        )


def _headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    topic, partition, offset = letter.source
    return [
        *letter.headers,
        (REASON, letter.reason.encode()),
        (OUTCOME, letter.outcome.encode()),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]


def read_dead_letters(config: Config, timeout: float = 60.0) -> list[DeadLetter]:
    """Every dead letter on the topic, once per source position (the last one sent wins)."""
    topic = config.topic("dlq")
    reader = consumer(config, f"dlq-reader-{uuid.uuid4().hex}")
    try:
        partitions = partition_count(reader, topic)
        letters: dict[tuple[str, int, int], DeadLetter] = {}
        for message in _every_message(reader, topic, partitions, timeout):
            letter = _letter(message)
            letters[letter.source] = letter
        return sorted(letters.values(), key=lambda letter: letter.source)
    finally:
        reader.close()


def _every_message(reader: Any, topic: str, partitions: int, timeout: float) -> Iterator[Any]:
    reader.assign([TopicPartition(topic, partition, 0) for partition in range(partitions)])
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(at_end) < partitions:
        if time.monotonic() > deadline:
            raise KafkaError(f"cannot read {topic} to its end within {timeout:.0f} s")
        message = reader.poll(1.0)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() != LibrdkafkaError._PARTITION_EOF:
                raise KafkaError(f"cannot read {topic}: {error}")
            at_end.add(message.partition())
            continue
        yield message


def _letter(message: Any) -> DeadLetter:
    added: dict[str, str] = {}
    kept = []
    for name, value in message.headers() or []:
        if name in ADDED:
            added[name] = value.decode("utf-8", "replace") if value is not None else ""
        else:
            kept.append((name, value))
    source = (
        added.get(SOURCE_TOPIC, "?"),
        _number_or_unknown(added.get(SOURCE_PARTITION)),
        _number_or_unknown(added.get(SOURCE_OFFSET)),
    )
    return DeadLetter(source, added.get(OUTCOME, "?"), added.get(REASON, ""), message.key(), message.value(), kept)


def _number_or_unknown(text: str | None) -> int:
    """A partition or offset header; -1 when missing or not a number (anyone may write to the topic)."""
    return int(text) if text is not None and is_whole_number(text) else -1


def matches(letter: DeadLetter, conditions: list[str]) -> bool:
    """`--where` conditions, all of which must hold: `field=value` (equal) or `field~text`
    (contains), over the fields `dlq list --json` shows."""
    shown = letter.as_dict()
    for condition in conditions:
        for operator, test in (("~", lambda have, want: want in have), ("=", lambda have, want: have == want)):
            name, found, wanted = condition.partition(operator)
            if found:
                if name not in shown:
                    raise KafkaError(f"--where {condition!r}: no field {name!r}; fields are {', '.join(shown)}")
                if not test(str(shown[name] or ""), wanted):
                    return False
                break
        else:
            raise KafkaError(f"--where {condition!r}: write FIELD=VALUE or FIELD~TEXT")
    return True


def replay(
    config: Config, letters: list[DeadLetter], values: Callable[[DeadLetter], bytes | None] | None = None
) -> int:
    """Sends dead letters back to the inbound topic (their values, or corrected ones), with a
    header naming the dead letter they come from; returns how many."""

    def message(letter: DeadLetter) -> Message:
        origin = ":".join(str(part) for part in letter.source).encode()
        value = values(letter) if values else letter.value
        return letter.key, value, [*letter.headers, (REPLAYED_FROM, origin)]

    return Sender(config, config.topic("inbound")).send(
        map(message, letters), what="dead letters", unless="; replay again (it is idempotent)"
    )
