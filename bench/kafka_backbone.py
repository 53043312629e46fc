"""The Kafka backbone's figures, each beside its ceiling measured in the same run: raw produce
and raw consume + Avro decode of the same records; ingest beside `publish` from a file;
the relay; ingest with signatures beside bare Ed25519; end-to-end latency at 2,000 events/s.

The broker is the test broker (Tansu, in memory, on loopback), or ORDERLOG_TEST_KAFKA's."""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.common import Figure, Report, percentile
from bench.trust import SIGNED_ORDERS, bare_verification_rate, write_lines
from bench.write_side import fresh, timed_publish, write_traffic
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.envelope import stream_key_of
from orderlog.kafka.codec import record_message, unframe
from orderlog.kafka.ingest import Ingest
from orderlog.kafka.registry import LocalSchemaIds
from orderlog.kafka.relay import Relay
from orderlog.kafka.topics import create_topics
from orderlog.simulate import SOURCES
from orderlog.sources.registry import SourceRequest, register_source
from orderlog.sources.signing import read_public_key
from orderlog.sources.simulated import sign_simulated
from tests import kafka_broker as kb
from tests.kafka_helpers import environment

ORDERS = 20_000
PARTITIONS = 6
LATENCY_RATE = 2_000
LATENCY_SECONDS = 20
WARM_UP = 50


@contextmanager
def broker() -> Iterator[str]:
    with kb.running_broker() as running:
        yield running.bootstrap_servers


def kafka_config(servers: str, directory: Path) -> Config:
    store = fresh(directory)
    settings = kb.consumer_settings(servers, "bench")
    options = {name: str(settings[name]) for name in settings if name.endswith(".ms")}
    config = Config(
        store_url=store.store_url,
        master_key_file=store.master_key_file,
        kafka=servers,
        topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
        kafka_consumer_options=options,
    )
    create_topics(config, PARTITIONS)
    return config


def never() -> bool:
    return False


def quiet(_report: object) -> None:
    pass


def produce_lines(config: Config, path: Path) -> int:
    sender = Producer({"bootstrap.servers": config.kafka, "enable.idempotence": True, "linger.ms": 5})
    count = 0
    with path.open("rb") as file:
        for line in file:
            value = line.rstrip(b"\n")
            sender.produce(config.topic("inbound"), value, key_of(value))
            count += 1
            if count % 10_000 == 0:
                sender.poll(0)
    sender.flush(60)
    return count


def run(report: Report, work: Path, runs: int) -> None:
    traffic = work / "kafka-traffic.jsonl"
    lines = write_traffic(traffic, ORDERS, seed=77)
    with broker() as servers:
        ceilings(report, servers, work, runs)
        ingest_and_relay(report, servers, work, traffic, lines=lines, runs=runs)
        signed_ingest(report, servers, work, runs)
        latency(report, servers, work)


def ceilings(report: Report, servers: str, work: Path, runs: int) -> None:
    """Raw produce, and raw consume + fastavro decode, of orderlog's own records."""
    config = kafka_config(servers, work / "ceiling")
    source = kafka_config(servers, work / "ceiling-source")
    write_traffic(work / "ceiling.jsonl", 10_000, seed=5)
    app = open_orderlog(source, create=True)
    with (work / "ceiling.jsonl").open("rb") as file:
        for _ in app.take(enumerate(file, start=1)):
            pass
    ids = LocalSchemaIds()
    messages = [record_message(record, position, ids) for position, record in app.log_reader.records()]
    app.close()
    messages = (messages * (200_000 // len(messages) + 1))[:200_000]
    produced, consumed = [], []
    for _ in range(runs):
        topic = config.topic(f"raw-{uuid.uuid4().hex[:6]}")
        create_raw_topic(config, topic)
        sender = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5})
        started = time.perf_counter()
        for key, value, headers in messages:
            while True:
                try:
                    sender.produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    sender.poll(0.05)
        sender.flush(120)
        produced.append(len(messages) / (time.perf_counter() - started))
        consumed.append(consume_and_decode(config, topic, len(messages), ids))
    report.add(
        Figure(
            "raw produce (the ceiling for any Python producer here)",
            statistics.median(produced),
            "messages/s",
            f"confluent-kafka, idempotent, {len(messages):,} orderlog records (Avro, wire format, headers), "
            f"{PARTITIONS} partitions, Tansu on loopback",
            runs=produced,
        )
    )
    report.add(
        Figure(
            "raw consume + fastavro decode (the ceiling for any Python consumer here)",
            statistics.median(consumed),
            "messages/s",
            f"one process, {len(messages):,} of the same messages, consume(10,000) batches",
            runs=consumed,
        )
    )


def create_raw_topic(config: Config, topic: str) -> None:
    from confluent_kafka.admin import NewTopic

    from orderlog.kafka.clients import admin

    client = admin(config)
    for future in client.create_topics([NewTopic(topic, PARTITIONS, 1, config={"retention.ms": "-1"})]).values():
        future.result(30)
    time.sleep(0.5)


def consume_and_decode(config: Config, topic: str, expected: int, ids: LocalSchemaIds) -> float:
    reader = Consumer(
        {"bootstrap.servers": config.kafka, "group.id": f"raw-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    reader.assign([TopicPartition(topic, partition, 0) for partition in range(PARTITIONS)])
    seen = 0
    started = None
    while seen < expected:
        batch = reader.consume(10_000, 1.0)
        if started is None and batch:
            started = time.perf_counter()
        for message in batch:
            if message.error() is None:
                schema_id, body = unframe(message.value())
                known = ids.by_id(schema_id)
                fastavro.schemaless_reader(io.BytesIO(body), known.parsed, known.parsed)
                seen += 1
    reader.close()
    return expected / (time.perf_counter() - (started or time.perf_counter()))


def ingest_and_relay(report: Report, servers: str, work: Path, traffic: Path, *, lines: int, runs: int) -> None:
    publish_rates: dict[int, list[float]] = {1: [], 2: []}
    ingest_rates: dict[int, list[float]] = {1: [], 2: []}
    after_join: list[float] = []
    relay_rates: list[float] = []
    relay_after_resume: list[float] = []
    for _ in range(runs):  # alternate, so that the machine's noise falls on both sides
        for workers in (1, 2):
            _lines, elapsed, stored = timed_publish(fresh(work / "publish"), traffic, workers)
            publish_rates[workers].append(stored / elapsed)
            config = kafka_config(servers, work / "ingest")
            produce_lines(config, traffic)
            ingest_rates[workers].append(timed_ingest(config, workers, after_join if workers == 1 else None))
        relay_rates.append(timed_relay(config, relay_after_resume))
    for workers in (1, 2):
        publish = statistics.median(publish_rates[workers])
        ingest = statistics.median(ingest_rates[workers])
        report.add(
            Figure(
                f"orderlog ingest, {workers} process{'es' if workers > 1 else ''} (one consumer group)",
                ingest,
                "stored events/s",
                f"{ORDERS:,} simulated orders = {lines:,} JSON messages keyed by order on {PARTITIONS} partitions, "
                f"SQLite store; timed from start (group join included) to the last batch stored; publish from a file "
                f"in the same run: {publish:,.0f} events/s",
                goal=">= 0.9 x publish from a file",
                beside=f"orderlog publish from a file, {workers} process{'es' if workers > 1 else ''}",
                ratio=ingest / publish,
                runs=ingest_rates[workers],
            )
        )
    publish = statistics.median(publish_rates[1])
    report.add(
        Figure(
            "orderlog ingest, 1 process, from its first assignment",
            statistics.median(after_join),
            "stored events/s",
            "the same runs, timed from the moment the group gave it its partitions (the broker holds a first join "
            "about 1 s on the test broker, up to group.initial.rebalance.delay.ms, 3 s by default, on Kafka)",
            beside="orderlog publish from a file, 1 process",
            ratio=statistics.median(after_join) / publish,
            runs=after_join,
        )
    )
    report.add(
        Figure(
            "orderlog relay",
            statistics.median(relay_rates),
            "events/s",
            f"the store above ({lines:,} lines' worth of records) onto orderlog.events, {PARTITIONS} partitions, "
            "from an empty topic: read the log, encode Avro, produce idempotently, flush",
            goal=">= 50,000 events/s",
            runs=relay_rates,
        )
    )
    report.add(
        Figure(
            "orderlog relay, once it has found where to resume",
            statistics.median(relay_after_resume),
            "events/s",
            "the same runs, timed from the moment it knew each partition's last position (it reads each "
            "partition's end on the topic first, a fixed cost of a few tenths of a second at start)",
            goal=">= 50,000 events/s",
            ratio=statistics.median(relay_after_resume) / statistics.median(relay_rates),
            beside="the relay timed from start",
            runs=relay_after_resume,
        )
    )


def timed_ingest(config: Config, processes: int, after_join: list[float] | None = None) -> float:
    """Stored events per second from start (the group join included); with one process, also
    appends to `after_join` the rate from the first assignment on."""
    started = time.monotonic()
    if processes == 1:
        app = open_orderlog(config, create=True)
        ingest = Ingest(app, config, LocalSchemaIds())
        ingest.run(follow=False, should_stop=never, progress=quiet)
        joined, ended = ingest.joined_at, time.monotonic()
        if after_join is not None and joined is not None:
            after_join.append(app.log_reader.count_after(0) / (ended - joined))
        app.close()
    else:
        open_orderlog(config, create=True).close()
        children = [
            subprocess.Popen([sys.executable, "-m", "orderlog", "ingest", "--once"], env=environment(config))
            for _ in range(processes)
        ]
        for child in children:
            child.wait(600)
    elapsed = time.monotonic() - started
    app = open_orderlog(config)
    stored = app.log_reader.count_after(0)
    app.close()
    return stored / elapsed


def timed_relay(config: Config, after_resume: list[float] | None = None) -> float:
    """Relayed events per second from start (finding where to resume included); also appends
    to `after_resume` the rate once it has found where to resume (reading each partition's end)."""
    app = open_orderlog(config)
    started = time.perf_counter()
    relay = Relay(app, config, LocalSchemaIds())
    resumed = time.perf_counter()
    done = relay.run(follow=False, should_stop=never, progress=quiet)
    ended = time.perf_counter()
    app.close()
    if after_resume is not None:
        after_resume.append(done.relayed / (ended - resumed))
    return done.relayed / (ended - started)


def signed_ingest(report: Report, servers: str, work: Path, runs: int) -> None:
    """Ingest with every message signed and signatures required, beside bare Ed25519."""
    keys = work / "kafka-source-keys"
    signed = list(sign_simulated(write_lines(SIGNED_ORDERS), keys, announce=quiet))
    traffic = work / "kafka-signed.jsonl"
    traffic.write_text("\n".join(signed) + "\n", encoding="utf-8")
    bare = bare_verification_rate(signed)
    for processes in (1, 2):
        rates = []
        for _ in range(runs):
            config = kafka_config(servers, work / f"kafka-signed-{processes}")
            app = open_orderlog(config, create=True)
            for name, types in SOURCES.items():
                register_source(app, SourceRequest(name, types, read_public_key(keys / f"{name}.pub.pem")), "bench")
            app.close()
            required = replace(config, require_signatures=True)
            produce_lines(required, traffic)
            rates.append(timed_ingest(required, processes) * len(signed) / max(1, stored_events(required)))
        rate = statistics.median(rates)
        report.add(
            Figure(
                f"orderlog ingest with signatures required, {processes} process{'es' if processes > 1 else ''}",
                rate,
                "messages/s",
                f"{len(signed):,} signed simulated messages (Ed25519 each); bare Ed25519 verification in this run: "
                f"{bare:,.0f}/s in one process",
                beside="bare Ed25519 verification, one process",
                ratio=rate / bare,
                runs=rates,
            )
        )


def stored_events(config: Config) -> int:
    app = open_orderlog(config)
    try:
        return app.log_reader.count_after(0)
    finally:
        app.close()


def latency(report: Report, servers: str, work: Path) -> None:
    """Offered load of 2,000 events/s on inbound; time until each event is on orderlog.events."""
    config = kafka_config(servers, work / "latency")
    traffic = work / "latency.jsonl"
    write_traffic(traffic, LATENCY_RATE * LATENCY_SECONDS // 4, seed=31)
    lines = [line.rstrip(b"\n") for line in traffic.open("rb")][: WARM_UP + LATENCY_RATE * LATENCY_SECONDS]
    open_orderlog(config, create=True).close()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "orderlog", command, "--follow"],
            env=environment(config),
            stdout=subprocess.DEVNULL,
            stderr=(work / f"latency-{command}.log").open("wb"),
        )
        for command in ("ingest", "relay")
    ]
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    arrived: dict[str, float] = {}
    reader = Consumer(kb.consumer_settings(servers, f"latency-{uuid.uuid4().hex}"))
    reader.assign([TopicPartition(config.topic("events"), p, 0) for p in range(PARTITIONS)])
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            first = reader.poll(0.05)  # at once when one arrives (consume would wait for a full batch)
            for message in [first, *reader.consume(1000, 0)] if first is not None else []:
                if message.error() is None:
                    for name, value in message.headers() or []:
                        if name == "event_id":
                            arrived.setdefault(value.decode(), time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    sender = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 1})
    warm_up, timed = lines[:WARM_UP], lines[WARM_UP:]
    for line in warm_up:  # untimed: until these are through, the processes are still starting
        sender.produce(config.topic("inbound"), line, key_of(line))
    sender.flush(30)
    deadline = time.monotonic() + 120
    while not {event_id_of(line) for line in warm_up} <= arrived.keys():
        if time.monotonic() > deadline:
            raise RuntimeError("latency: ingest and relay did not start within 120 s")
        time.sleep(0.1)
    started = time.monotonic()
    for index, line in enumerate(timed):
        target = started + index / LATENCY_RATE
        while time.monotonic() < target:
            time.sleep(0.0005)
        event_id = event_id_of(line)
        sent.setdefault(event_id, time.monotonic())
        sent_wall.setdefault(event_id, time.time())
        sender.produce(config.topic("inbound"), line, key_of(line))
        sender.poll(0)
    sender.flush(30)
    time.sleep(3)
    stop.set()
    watcher.join()
    reader.close()
    for process in processes:
        process.terminate()
        process.wait(30)
    delays = [(arrived[event] - sent[event]) * 1000 for event in sent if event in arrived]
    stored = stored_delays(config, sent_wall)
    report.add(
        Figure(
            "end-to-end latency, inbound to orderlog.events, p99",
            percentile(delays, 0.99),
            "ms",
            f"{LATENCY_RATE:,} events/s offered for {LATENCY_SECONDS} s ({len(delays):,} events timed), "
            "`orderlog ingest --follow` and `orderlog relay --follow` as processes, SQLite store; "
            f"p50 {percentile(delays, 0.5):.0f} ms; of which inbound to stored (record time): "
            f"p50 {percentile(stored, 0.5):.0f} ms, p99 {percentile(stored, 0.99):.0f} ms",
            goal="p99 < 250 ms",
        )
    )
    shutil.rmtree(work / "latency", ignore_errors=True)


def key_of(line: bytes) -> bytes | None:
    key = stream_key_of(line)
    return key.encode() if key else None


def event_id_of(line: bytes) -> str:
    return line.split(b'"event_id": "', 1)[-1].split(b'"', 1)[0].decode()


def stored_delays(config: Config, sent: dict[str, float]) -> list[float]:
    """Milliseconds from produce on inbound to the record time the store gave each event."""
    app = open_orderlog(config)
    try:
        return [
            (datetime.fromisoformat(record.recorded_at).timestamp() - sent[record.event_id]) * 1000
            for _, record in app.log_reader.records()
            if record.event_id in sent
        ]
    finally:
        app.close()
