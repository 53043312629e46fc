"""The Kafka backbone on a real broker: the relay puts every stored record on the events
topic once and in store order per stream; the ingest takes inbound messages in exactly as
`publish` takes lines, dead letters included; both are exactly-once through re-delivery."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource
from eventsourcing.persistence import Tracking

from orderlog.audit_verify import record_hash
from orderlog.avro import envelope_schema_for
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.contract import EVENT_TYPES
from orderlog.intake.pipeline import PositionAlreadyRecorded
from orderlog.kafka import KafkaError
from orderlog.kafka.clients import admin, partition_for
from orderlog.kafka.codec import POSITION_HEADER, frame
from orderlog.kafka.dead_letters import read_dead_letters
from orderlog.kafka.ingest import Ingest
from orderlog.kafka.registry import LocalSchemaIds, RegistrySchemaIds
from orderlog.kafka.relay import Relay, relay_producer
from orderlog.simulate import simulate
from tests import builders as b
from tests.kafka_helpers import events_on_topic, kafka_config, produce, read_topic

pytestmark = pytest.mark.kafka
NEVER = lambda: False  # noqa: E731
QUIET = lambda _report: None  # noqa: E731


def relay_once(config: Config, ids: object | None = None) -> str:
    app = open_orderlog(config)
    try:
        return str(Relay(app, config, ids or LocalSchemaIds()).run(follow=False, should_stop=NEVER, progress=QUIET))
    finally:
        app.close()


def ingest_once(config: Config) -> str:
    app = open_orderlog(config, create=True)
    try:
        return str(
            Ingest(app, config, LocalSchemaIds(), batch=500).run(follow=False, should_stop=NEVER, progress=QUIET)
        )
    finally:
        app.close()


def stored(config: Config) -> list[tuple[int, object]]:
    app = open_orderlog(config)
    try:
        return list(app.log_reader.records())
    finally:
        app.close()


def publish_lines(config: Config, lines: list[str]) -> None:
    app = open_orderlog(config, create=True)
    try:
        for _ in app.take(enumerate(lines, start=1)):
            pass
    finally:
        app.close()


def test_the_relay_puts_every_stored_record_on_the_topic_once_and_resumes_from_the_topic(
    kafka_broker: str, store_url: str, tmp_path: Path
) -> None:
    config = kafka_config(kafka_broker, store_url, tmp_path)
    publish_lines(config, list(simulate(120, 3)))
    first = relay_once(config)
    log = stored(config)
    assert first.startswith(f"relayed {len(log)}, already on the topic 0, lag 0")
    publish_lines(config, list(simulate(40, 4)))
    again = relay_once(config)  # a new relay: it finds where the last one stopped on the topic itself
    log = stored(config)
    on_topic = events_on_topic(config, LocalSchemaIds())
    assert sorted(position for _, position, _ in on_topic) == [position for position, _ in log]  # each once
    assert again.startswith(f"relayed {len(log) - int(first.split()[1].rstrip(','))},")
    by_position = dict(log)
    per_stream: dict[tuple[str, str], list[int]] = defaultdict(list)
    for partition, position, record in on_topic:
        assert record == by_position[position]  # the record read back is the stored record
        assert record_hash(record.as_dict()) == record.hash
        assert partition == partition_for(record.key.encode(), 3)
        per_stream[(record.stream, record.key)].append(record.version)
    assert all(versions == sorted(versions) for versions in per_stream.values())  # store order per stream


def test_the_partitioner_agrees_with_kafkas_own_for_keyed_messages(kafka_broker: str, tmp_path: Path) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 's.db'}", tmp_path, partitions=6)
    sender = Producer({"bootstrap.servers": kafka_broker, "partitioner": "murmur2_random"})
    keys = [f"SO-{n}".encode() for n in range(60)]
    for key in keys:
        sender.produce(config.topic("inbound"), b"{}", key)
    sender.flush(30)
    placed = {message.key(): message.partition() for message in read_topic(config, config.topic("inbound"))}
    assert placed == {key: partition_for(key, 6) for key in keys}


def test_topics_are_created_with_the_settings_orderlog_relies_on(kafka_broker: str, tmp_path: Path) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    client = admin(config)  # kept while the answer comes: a collected client cancels its calls
    described = client.describe_configs([ConfigResource("topic", config.topic("events"))])
    settings = {name: entry.value for name, entry in next(iter(described.values())).result(timeout=10).items()}
    assert settings["retention.ms"] == "-1" and settings["cleanup.policy"] == "delete"


def test_end_to_end_inbound_to_the_store_to_the_events_topic(kafka_broker: str, tmp_path: Path) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    lines = list(simulate(150, 8))
    produce(config, [line.encode() for line in lines])
    report = ingest_once(config)
    clean = Config(store_url=f"sqlite:///{tmp_path / 'clean.db'}", master_key_file=tmp_path / "master.key")
    publish_lines(clean, lines)
    taken = [(r.type, r.key, r.event_id, r.data.get("amount")) for _, r in stored(config)]
    published = [(r.type, r.key, r.event_id, r.data.get("amount")) for _, r in stored(clean)]
    assert sorted(taken) == sorted(published)  # the same records as `publish` of the same lines
    assert "dead letters" in report
    relay_once(config)
    on_topic = events_on_topic(config, LocalSchemaIds())
    assert sorted(position for _, position, _ in on_topic) == [position for position, _ in stored(config)]


def test_avro_envelopes_on_the_inbound_topic_are_taken_in_like_json(kafka_broker: str, tmp_path: Path) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    ids = LocalSchemaIds()
    envelopes = [
        b.submitted("SO-A", total=1000),
        b.paid("SO-A", amount=1000),
        b.dispatched("SO-A"),
        b.cancelled("SO-A"),
    ]

    def avro(envelope: dict[str, object]) -> bytes:
        schema = envelope_schema_for(EVENT_TYPES[str(envelope["type"])])
        buffer = io.BytesIO()
        fastavro.schemaless_writer(
            buffer,
            fastavro.parse_schema(schema),
            {"actor": None, "correlation_id": None, "signature": None, **envelope},
        )
        return frame(ids.id_of(f"{envelope['type']}Envelope"), buffer.getvalue())

    produce(config, [avro(envelope) for envelope in envelopes], key=b"SO-A")
    ingest_once(config)
    records = [record for _, record in stored(config)]
    assert [record.type for record in records] == [
        "OrderSubmitted",
        "PaymentCaptured",
        "ShipmentDispatched",
        "RequestRefused",  # a cancellation of a shipped order: refused, as from JSON
    ]


def test_unreadable_and_invalid_messages_become_dead_letters_naming_why_and_where(
    kafka_broker: str, tmp_path: Path
) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    good = [b.line(b.submitted("SO-1", event_id="s1", total=1000)), b.line(b.paid("SO-1", event_id="p1", amount=1000))]
    bad = [b"\x00\x00\x00\x00\x07garbage", b"{not json", None, b.line(b.paid("SO-1", amount="5")).encode()]
    reused = b.line(b.paid("SO-1", event_id="p1", amount=99)).encode()  # an event id re-used for other content
    produce(config, [good[0].encode(), bad[0], bad[1], bad[2], good[1].encode(), bad[3], reused], key=b"SO-1")
    report = ingest_once(config)
    assert "accepted 2," in report
    letters = read_dead_letters(config)
    assert [letter.outcome for letter in letters] == ["invalid", "invalid", "invalid", "invalid", "conflict"]
    assert [letter.source[2] for letter in letters] == [1, 2, 3, 5, 6]  # the inbound offsets
    assert letters[0].value == bad[0] and letters[2].value is None  # the original bytes, as they came
    assert "not one of orderlog's schemas" in letters[0].reason
    assert letters[1].reason.startswith("not valid JSON")
    assert "tombstone" in letters[2].reason
    assert letters[3].reason.startswith("data.amount: Input should be a valid integer")
    assert "event id p1 is already recorded" in letters[4].reason
    assert len(stored(config)) == 2


def test_a_redelivered_position_is_recognised_and_stores_nothing(tmp_path: Path) -> None:
    config = Config(store_url=f"sqlite:///{tmp_path / 'store.db'}", master_key_file=tmp_path / "master.key")
    app = open_orderlog(config, create=True)
    batch = [(0, b.line(b.submitted("SO-1", event_id="s1")).encode())]
    app.take_batch(batch, [Tracking("orderlog.inbound:0", 1)])
    later = [(1, b.line(b.paid("SO-1", event_id="p9")).encode())]
    with pytest.raises(PositionAlreadyRecorded):
        app.take_batch(later, [Tracking("orderlog.inbound:0", 1)])  # the same position again
    assert [record.type for _, record in app.log_reader.records()] == ["OrderSubmitted"]
    assert app.position_recorded(Tracking("orderlog.inbound:0", 1))
    app.take_batch(later, [Tracking("orderlog.inbound:0", 2)])
    assert len(list(app.log_reader.records())) == 2
    app.close()


def test_several_partitions_positions_are_stored_with_one_batch_and_a_recorded_one_is_named(config: Config) -> None:
    """The ingest stores a poll from several partitions in one transaction, each partition's
    position with it; on both stores, one position recorded already fails the whole batch and
    is named, so that the others can be taken without it."""
    app = open_orderlog(config, create=True)
    first = [
        (0, b.line(b.submitted("SO-1", event_id="s1")).encode()),
        (1, b.line(b.submitted("SO-2", event_id="s2")).encode()),
    ]
    app.take_batch(first, [Tracking("in:0", 5), Tracking("in:1", 3)])
    assert app.position_recorded(Tracking("in:0", 5)) and app.position_recorded(Tracking("in:1", 3))
    again = [(0, b.line(b.paid("SO-1", event_id="p1")).encode()), (1, b.line(b.paid("SO-2", event_id="p2")).encode())]
    with pytest.raises(PositionAlreadyRecorded) as raised:
        app.take_batch(again, [Tracking("in:0", 9), Tracking("in:1", 3)])
    assert [(p.application_name, p.notification_id) for p in raised.value.recorded] == [("in:1", 3)]
    assert "in:1 position 3 recorded already" in str(raised.value)
    assert [record.event_id for _, record in app.log_reader.records()] == ["s1", "s2"]  # nothing of the batch
    app.take_batch(again[:1], [Tracking("in:0", 9)])
    assert [record.event_id for _, record in app.log_reader.records()] == ["s1", "s2", "p1"]
    assert app.position_recorded(Tracking("in:0", 9)) and not app.position_recorded(Tracking("in:1", 4))
    app.close()


def test_the_registry_client_path_with_a_mock_registry(kafka_broker: str, tmp_path: Path) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient.new_client({"url": f"mock://{tmp_path.name}"})
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    publish_lines(config, [b.line(b.submitted("SO-1")), b.line(b.paid("SO-1"))])
    ids = RegistrySchemaIds(client, config.topic("events"))
    relay_once(config, ids)
    deserializer = AvroDeserializer(client)  # the standard Confluent deserializer, sharing the client
    decoded = [
        deserializer(message.value(), SerializationContext(config.topic("events"), MessageField.VALUE))
        for message in read_topic(config, config.topic("events"))
    ]
    assert sorted(datum["type"] for datum in decoded) == ["OrderSubmitted", "PaymentCaptured"]
    assert all(record_hash(_as_record(datum)) == datum["hash"] for datum in decoded)


def _as_record(datum: dict[str, object]) -> dict[str, object]:
    from orderlog.avro import record_from_datum

    return record_from_datum(datum).as_dict()


def test_dead_letters_can_be_listed_and_sent_back_once_corrected(kafka_broker: str, tmp_path: Path) -> None:
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    wrong = b.paid("SO-1", event_id="p1", amount="1000")
    produce(
        config,
        [b.line(b.submitted("SO-1", event_id="s1", total=1000)).encode(), json.dumps(wrong).encode()],
        key=b"SO-1",
    )
    ingest_once(config)
    (letter,) = read_dead_letters(config)
    from orderlog.kafka.dead_letters import replay

    replay(config, [letter], lambda _letter: json.dumps({**wrong, "data": {**wrong["data"], "amount": 1000}}).encode())
    ingest_once(config)
    assert [record.type for _, record in stored(config)] == ["OrderSubmitted", "PaymentCaptured"]


@pytest.mark.parametrize("position", [None, b"x", "²".encode(), b"9" * 5000, b"\xff", b"-3"])
def test_the_relay_refuses_an_events_topic_whose_positions_are_not_its_own(
    kafka_broker: str, tmp_path: Path, position: bytes | None
) -> None:
    """Another producer's messages on the events topic (or another topic of that name) say
    nothing of where the relay stopped: it stops with one line, never a crash on their headers."""
    config = kafka_config(kafka_broker, f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    publish_lines(config, list(simulate(5, 3)))
    sender = Producer({"bootstrap.servers": kafka_broker})
    headers = [] if position is None else [(POSITION_HEADER, position)]
    sender.produce(config.topic("events"), b"not orderlog's", b"SO-1", partition=0, headers=headers)
    sender.flush(30)
    with pytest.raises(KafkaError, match="partition 0 offset 0 has no store position header"):
        relay_once(config)


def test_with_reports_for_failures_only_a_failed_delivery_still_reaches_the_relay(tmp_path: Path) -> None:
    """The relay's producer reports failed deliveries only, and what is in flight is its
    length: both must hold when nothing can be delivered (librdkafka itself, no fake)."""
    failures: list[object] = []
    nowhere = Config(store_url=f"sqlite:///{tmp_path / 's.db'}", kafka="127.0.0.1:1")  # nothing listens there
    sender = relay_producer(nowhere, lambda error, _message: failures.append(error), **{"message.timeout.ms": 300})
    for number in range(3):
        sender.produce("orderlog.events", str(number).encode())
    assert len(sender) == 3
    assert sender.flush(10) == 0
    assert len(failures) == 3 and all(error is not None for error in failures)
