"""The read models' figures (`--only views`), each beside its ceiling measured in the same run.

One log of N simulated events (default 1,000,000) is published into a SQLite store and
relayed to `orderlog.events` on the test broker (Tansu, in memory, on loopback). On it:
- the ceilings: raw consume + fastavro decode of the topic (kafka_backbone's measurement),
  and the store's own read + decode (LogReader.records over the whole log);
- a replay of every view (projections.PROJECTORS) from the topic and from the log, each in
  a process of its own, as `orderlog replay` runs it, into a fresh view database;
- peak RSS of the replay process on a log of N/4 and of N events;
- `orderlog replay --until` the end of the simulated traffic's second day;
- the peer: Quix Streams counting cancellations per reason and per SKU in its state store,
  from the same topic, in a virtual environment of its own (.bench/quix-venv), its final
  counts checked against orderlog's cancellation view.

Replay rates are timed from the first batch read to the switch-over, like the ceiling (timed
from the first batch consumed) and the peer (from the first message processed); the time
before (start-up, group join) is printed beside them.

`python -m bench.read_models replay ...` is the replay process (see `replay_process`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import Figure, Report
from bench.kafka_backbone import PARTITIONS, broker, consume_and_decode, kafka_config, timed_relay
from bench.write_side import fresh, timed_publish, write_traffic
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.kafka.registry import LocalSchemaIds, every_version, local_id
from projections import PROJECTORS, chosen
from projections.projector import CACHE_ENTITIES
from projections.service import group_of, open_views, replay, source_for
from projections.sources import Batch, Start
from tests.kafka_helpers import environment

EVENTS = 1_000_000
EVENTS_VARIABLE = "ORDERLOG_BENCH_VIEWS_EVENTS"
CHUNK_ORDERS = 25_000
EVENTS_PER_ORDER = 4.5
"""Stored events per simulated order (measured on the simulator): sizes the last chunk."""
SEED = 3000
FOLDED = re.compile(r"^(\w+): ([\d,]+ record\(s\) folded, watermark \S+?),", re.MULTILINE)
UNTIL = "2026-03-02T23:59:59.999Z"
"""The end of the second day of simulated traffic (it starts 2026-03-01): `replay --until`."""
QUIX_VERSION = "3.28.1"
QUIX_VENV = Path(".bench/quix-venv")
MB = 1024 * 1024


@dataclass
class Replayed:
    """What one replay process measured of itself, and its peak RSS (from the kernel)."""

    read: int
    folded: dict[str, int]
    seconds: float
    """From the first batch read to the switch-over."""
    startup: float
    """From the process's start to the first batch (imports, opening, group join)."""
    peak_rss_mb: float
    watermark: str

    @property
    def rate(self) -> float:
        return self.read / self.seconds


def events_wanted() -> int:
    return int(os.environ.get(EVENTS_VARIABLE, EVENTS))


def run(report: Report, work: Path, runs: int, events: int = EVENTS) -> None:
    load_before = os.getloadavg()
    quarter, store, stored, quarter_stored = simulated_logs(work / "views", events)
    views_dir = work / "views"
    with broker() as servers:
        config = on_kafka(store, servers, work / "views-kafka")
        relayed = timed_relay(config)
        ids = LocalSchemaIds()
        ceilings, reads, from_kafka, from_log, cancellations = [], [], [], [], []
        for run_number in range(runs):  # alternate, so that the machine's noise falls on all sides
            ceilings.append(consume_and_decode(config, config.topic("events"), stored, ids))
            from_kafka.append(replay_process(config, views_dir / f"kafka-{run_number}.db", kafka=True))
            alone = views_dir / f"cancellations-{run_number}.db"
            cancellations.append(replay_process(config, alone, kafka=True, names=("cancellations",)))
            alone.unlink()
            reads.append(store_read_rate(store))
            from_log.append(replay_process(store, views_dir / f"log-{run_number}.db", kafka=False))
            print(
                f"    run {run_number + 1} of {runs}: consume + decode {ceilings[-1]:,.0f}/s, replay from the topic "
                f"{from_kafka[-1].rate:,.0f}/s (cancellations alone {cancellations[-1].rate:,.0f}/s), log read "
                f"{reads[-1]:,.0f}/s, replay from the log {from_log[-1].rate:,.0f}/s",
                flush=True,
            )
            if run_number < runs - 1:
                (views_dir / f"kafka-{run_number}.db").unlink()
            (views_dir / f"log-{run_number}.db").unlink()
        small = replay_process(quarter, views_dir / "quarter.db", kafka=False)
        until = [until_replay(store, views_dir / f"until-{n}.db") for n in range(runs)]
        truth = cancellation_counts(views_dir / f"kafka-{runs - 1}.db", stored)
        peer = quix_rates(servers, config.topic("events"), truth, work / "quix", runs)
    views = ", ".join(PROJECTORS)
    load = f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores, shared)"
    log = f"{stored:,} simulated events (SQLite store, {PARTITIONS} partitions on Tansu on loopback)"
    ceiling = statistics.median(ceilings)
    read = statistics.median(reads)
    kafka_rate = statistics.median(r.rate for r in from_kafka)
    log_rate = statistics.median(r.rate for r in from_log)
    report.add(
        Figure(
            "raw consume + fastavro decode of orderlog.events (the ceiling of a Kafka replay)",
            ceiling,
            "messages/s",
            f"{log}, relayed by `orderlog relay` at {relayed:,.0f} events/s; one process, consume(10,000) batches; "
            f"{load}",
            runs=ceilings,
        )
    )
    report.add(
        Figure(
            "orderlog replay of every view from orderlog.events",
            kafka_rate,
            "events/s",
            f"{log}; every view ({views}) in one process, as `orderlog replay` runs them, blue/green into a fresh "
            f"SQLite view database, timed from the first batch to the switch-over (start-up and group join before "
            f"it: {statistics.median(r.startup for r in from_kafka):.1f} s); peak RSS "
            f"{statistics.median(r.peak_rss_mb for r in from_kafka):,.0f} MB",
            goal=">= 0.5 x the ceiling",
            beside="raw consume + decode",
            ratio=kafka_rate / ceiling,
            runs=[r.rate for r in from_kafka],
        )
    )
    report.add(
        Figure(
            "the store's log read + decode (LogReader.records: the ceiling of a replay from the store)",
            read,
            "events/s",
            f"{log}; every record of the log, one process",
            runs=reads,
        )
    )
    report.add(
        Figure(
            "orderlog replay of every view from the store's log",
            log_rate,
            "events/s",
            f"{log}; as above, from the log through the log reader (start-up before the first batch: "
            f"{statistics.median(r.startup for r in from_log):.1f} s)",
            goal=">= 0.5 x the store's read + decode",
            beside="the store's read + decode",
            ratio=log_rate / read,
            runs=[r.rate for r in from_log],
        )
    )
    big_rss = statistics.median(r.peak_rss_mb for r in from_log)
    report.add(
        Figure(
            f"peak RSS of a replay of every view, a log of {stored:,} events",
            big_rss,
            "MB",
            f"the replay process from the store's log (VmHWM, from wait4); the same on the first {quarter_stored:,} "
            f"events of the same log: {small.peak_rss_mb:,.0f} MB; from orderlog.events: "
            f"{statistics.median(r.peak_rss_mb for r in from_kafka):,.0f} MB; the projectors keep up to "
            f"{CACHE_ENTITIES:,} entities per table in memory between commits, and the log holds "
            f"{truth['orders']:,} orders",
            goal="not growing with the length of the log",
            beside=f"the log of {quarter_stored:,} events",
            ratio=big_rss / small.peak_rss_mb,
            runs=[r.peak_rss_mb for r in from_log],
        )
    )
    until_seconds = [seconds for seconds, _read, _out in until]
    _seconds, until_read, until_out = until[-1]
    report.add(
        Figure(
            f"orderlog replay --until {UNTIL} (the end of the second day)",
            statistics.median(until_seconds),
            "s",
            f"`orderlog replay --until ... --into FILE --source log` as a user runs it (wall time, start-up included) "
            f"on the log of {stored:,} events: {until_read / statistics.median(until_seconds):,.0f} records read/s; "
            f"folded up to then: {until_out}",
            runs=until_seconds,
        )
    )
    add_peer(report, peer, kafka_rate, statistics.median(r.rate for r in cancellations), truth)


# ---------------------------------------------------------------- the log


def simulated_logs(directory: Path, events: int) -> tuple[Config, Config, int, int]:
    """A store of about `events` simulated events, published in chunks as `orderlog publish
    --workers 2` does, and a copy of it taken when it held a quarter of them:
    (the quarter's config, the store's config, events stored, events in the quarter)."""
    config = fresh(directory / "store")
    chunk = directory / "chunk.jsonl"
    stored, seed, quarter, quarter_stored = 0, SEED, None, 0
    started = time.perf_counter()
    while stored < events:
        goal = events // 4 if quarter is None else events
        write_traffic(chunk, min(CHUNK_ORDERS, math.ceil((goal - stored) / EVENTS_PER_ORDER) + 10), seed)
        _lines, _elapsed, stored = timed_publish(config, chunk, 2)
        seed += 1
        if quarter is None and stored >= events // 4:
            quarter, quarter_stored = copy_store(config, directory / "quarter"), stored
        print(
            f"    building a log of {events:,} events: {stored:,} ({time.perf_counter() - started:.0f} s)", flush=True
        )
    chunk.unlink()
    assert quarter is not None
    return quarter, config, stored, quarter_stored


def copy_store(config: Config, directory: Path) -> Config:
    """A consistent copy of a SQLite store (SQLite's backup), with its key."""
    copy = fresh(directory)
    source = config.location.path
    assert source is not None and config.master_key_file is not None and copy.master_key_file is not None
    with sqlite3.connect(source) as original, sqlite3.connect(directory / "store.db") as target:
        original.backup(target)
    copy.master_key_file.write_bytes(config.master_key_file.read_bytes())
    return copy


def on_kafka(store: Config, servers: str, directory: Path) -> Config:
    """The store, with topics of its own on the broker (kafka_backbone's settings for it)."""
    topics = kafka_config(servers, directory)
    return replace(topics, store_url=store.store_url, master_key_file=store.master_key_file)


def store_read_rate(config: Config) -> float:
    app = open_orderlog(config)
    started = time.perf_counter()
    count = sum(1 for _ in app.log_reader.records())
    elapsed = time.perf_counter() - started
    app.close()
    return count / elapsed


# ---------------------------------------------------------------- replays, each in a process


def replay_process(config: Config, views: Path, *, kafka: bool, names: tuple[str, ...] = ()) -> Replayed:
    """`python -m bench.read_models replay` in a process of its own; its peak RSS from wait4."""
    command = [sys.executable, "-m", "bench.read_models", "replay", "--source", "kafka" if kafka else "log", *names]
    env = {**environment(config), "ORDERLOG_VIEWS": f"sqlite:///{views}"}
    output, rusage = waited(command, env)
    found = json.loads(output.splitlines()[-1])
    return Replayed(peak_rss_mb=rusage.ru_maxrss / 1024, **found)


def waited(command: list[str], env: dict[str, str], timeout: float = 3600) -> tuple[str, Any]:
    """A process's standard output and resource usage (its own, not its siblings')."""
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    child.stdout.close()
    _pid, status, rusage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} exited with {child.returncode}: {output[-2000:]}")
    return output, rusage


def until_replay(config: Config, views: Path) -> tuple[float, int, str]:
    """`orderlog replay --until UNTIL` from the log, as a user runs it: (wall seconds, records
    in the log, the folded counts it printed)."""
    env = environment(config)
    app = open_orderlog(config)
    read = app.log_reader.count_after(0)
    app.close()
    command = [sys.executable, "-m", "orderlog", "replay", "--until", UNTIL, "--into", f"sqlite:///{views}"]
    started = time.perf_counter()
    output, _rusage = waited([*command, "--source", "log"], env)
    elapsed = time.perf_counter() - started
    views.unlink()
    return elapsed, read, folded_summary(output)


def folded_summary(output: str) -> str:
    """`holds: 16,305 record(s) folded, watermark T, lag 0` per view, said once when all agree."""
    found = dict(FOLDED.findall(output))
    if len(set(found.values())) == 1:
        return f"{next(iter(found.values()))} ({', '.join(found)} alike)"
    return "; ".join(f"{name}: {rest}" for name, rest in found.items())


class Clocked:
    """A source that notes when its first batch was read and how many records it gave."""

    def __init__(self, source: Any):
        self._source = source
        self.name = source.name
        self.shows_own_records = source.shows_own_records
        self.first: float | None = None
        self.read = 0

    def batches(self, start: Start, *, follow: bool, should_stop: Callable[[], bool]) -> Iterator[Batch]:
        for batch in self._source.batches(start, follow=follow, should_stop=should_stop):
            if self.first is None:
                self.first = time.perf_counter()
            self.read += len(batch.records)
            yield batch

    def lag(self, start: Start) -> int:
        return int(self._source.lag(start))


def replay_main(arguments: list[str]) -> None:
    """The replay process: every view (or NAMES) rebuilt from the configured store or its
    topic into ORDERLOG_VIEWS, through the use cases `orderlog replay` calls; prints one
    JSON line of what it measured."""
    began = time.perf_counter()
    parser = argparse.ArgumentParser(prog="python -m bench.read_models replay")
    parser.add_argument("--source", choices=["log", "kafka"], required=True)
    parser.add_argument("names", nargs="*")
    options = parser.parse_args(arguments)
    config = Config.from_env()
    app = open_orderlog(config)
    kinds = chosen(options.names)
    group = group_of(kinds, f"replay.bench-{uuid.uuid4().hex[:8]}")
    source = Clocked(source_for(config, app, kinds, kafka=options.source == "kafka", group=group))
    views = open_views(config.views_location)
    done = replay(views, kinds, source, until=None)
    ended = time.perf_counter()
    views.close()
    app.close()
    assert done.switched and source.first is not None
    measured = {
        "read": source.read,
        "folded": {found.name: found.folded for found in done.projectors},
        "seconds": ended - source.first,
        "startup": source.first - began,
        "watermark": max(found.watermark for found in done.projectors),
    }
    print(json.dumps(measured), flush=True)


# ---------------------------------------------------------------- the peer: Quix Streams


def cancellation_counts(views: Path, events: int) -> dict[str, Any]:
    """What the peer must arrive at, from orderlog's cancellation view: cancelled orders per
    reason, and per SKU (orders holding it when they were cancelled); and the events to read."""
    with sqlite3.connect(f"file:{views}?mode=ro", uri=True) as connection:
        reasons = connection.execute(
            "SELECT reason, COUNT(*) FROM cancellation_orders WHERE cancelled_at IS NOT NULL GROUP BY reason"
        ).fetchall()
        skus = connection.execute(
            "SELECT s.sku, COUNT(DISTINCT s.order_id) FROM cancellation_skus s JOIN cancellation_orders o "
            "ON o.order_id = s.order_id WHERE o.cancelled_at IS NOT NULL GROUP BY s.sku"
        ).fetchall()
        (orders,) = connection.execute("SELECT COUNT(*) FROM cancellation_orders").fetchone()
    return {"events": events, "orders": orders, "reason": dict(reasons), "sku": dict(skus)}


QUIX_PEER = r'''
"""Quix Streams on orderlog.events: cancellations per reason and per SKU in its state store.

usage: python quix_peer.py BOOTSTRAP TOPIC SCHEMAS.json TRUTH.json STATE_DIR

Values are orderlog's records (Confluent wire format: magic byte, schema id, Avro body),
decoded with fastavro as orderlog's own consumers do. State is scoped to the message key
(the order id), so: per order, its SKUs are kept at OrderSubmitted, and at OrderCancelled
the reason and those SKUs go on; counting per reason and per SKU then needs group_by, i.e.
a repartition topic each (Quix produces to it and consumes it back). Stops when every
event of the topic has been seen and both counts reached TRUTH's totals; prints one JSON
line, with whether the final counts equal TRUTH's (orderlog's cancellation view).
"""
import io
import json
import struct
import sys
import time
import uuid

import confluent_kafka
import fastavro
import quixstreams
from quixstreams import Application
from quixstreams.models.serializers import Deserializer

bootstrap, topic_name, schemas_file, truth_file, state_dir = sys.argv[1:6]
with open(schemas_file) as file:
    SCHEMAS = {int(schema_id): fastavro.parse_schema(schema) for schema_id, schema in json.load(file).items()}
with open(truth_file) as file:
    truth = json.load(file)
targets = {"seen": truth["events"], "reason": sum(truth["reason"].values()), "sku": sum(truth["sku"].values())}
progress = {"seen": 0, "reason": 0, "sku": 0}
clock = {"first": None, "end": None}
counts = {"reason": {}, "sku": {}}


class OrderlogRecord(Deserializer):
    def __call__(self, value, ctx):
        (schema_id,) = struct.unpack_from(">I", value, 1)
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), SCHEMAS[schema_id], None)


app = Application(
    broker_address=bootstrap,
    consumer_group=f"quix-{uuid.uuid4().hex[:8]}",
    auto_offset_reset="earliest",
    state_dir=state_dir,
    loglevel="WARNING",
    consumer_extra_config={"session.timeout.ms": 10000},
)


def finished():
    if all(progress[name] >= targets[name] for name in targets):
        if clock["end"] is None:
            clock["end"] = time.perf_counter()
        app.stop()


def seen(value):
    if clock["first"] is None:
        clock["first"] = time.perf_counter()
    progress["seen"] += 1
    finished()


def cancellation(value, state):
    if value["type"] == "OrderSubmitted":
        state.set("skus", sorted({line["sku"] for line in value["data"]["lines"]}))
        return None
    return {"reason": value["data"]["reason_code"], "skus": state.get("skus", [])}


def counter(name):
    def count(value, state):
        n = state.get("n", 0) + 1
        state.set("n", n)
        counts[name][value[name]] = n
        progress[name] += 1
        finished()

    return count


sdf = app.dataframe(app.topic(topic_name, value_deserializer=OrderlogRecord(), key_deserializer="str"))
sdf = sdf.update(seen)
orders = sdf.filter(lambda value: value["type"] in ("OrderSubmitted", "OrderCancelled"))
cancelled = orders.apply(cancellation, stateful=True).filter(lambda value: value is not None)
by_reason = cancelled.apply(lambda value: {"reason": value["reason"]}).group_by("reason")
by_reason.update(counter("reason"), stateful=True)
by_sku = cancelled.apply(lambda value: [{"sku": sku} for sku in value["skus"]], expand=True).group_by("sku")
by_sku.update(counter("sku"), stateful=True)

started = time.perf_counter()
app.run()
elapsed = clock["end"] - clock["first"]
print(json.dumps({
    "events": progress["seen"], "reason_events": progress["reason"], "sku_events": progress["sku"],
    "seconds": elapsed, "rate": progress["seen"] / elapsed, "startup": clock["first"] - started,
    "matches": counts == {"reason": truth["reason"], "sku": truth["sku"]},
    "quixstreams": quixstreams.__version__, "confluent_kafka": confluent_kafka.__version__,
}), flush=True)
'''


def quix_python() -> tuple[Path | None, str]:
    """The Quix Streams environment's interpreter (made on first use), or None and why not."""
    python = QUIX_VENV / "bin" / "python"
    if python.exists() and quiet([python, "-c", "import quixstreams, fastavro"]).returncode == 0:
        return python, ""
    print(f"    making {QUIX_VENV} with Quix Streams {QUIX_VERSION} (it pins its own confluent-kafka)", flush=True)
    made = quiet([sys.executable, "-m", "venv", "--clear", QUIX_VENV])
    if made.returncode == 0:
        made = quiet([python, "-m", "pip", "install", "--quiet", f"quixstreams=={QUIX_VERSION}", "fastavro"])
    if made.returncode != 0:
        return None, " ".join((made.stderr or made.stdout).strip().splitlines()[-3:])
    return python, ""


def quiet(command: list[Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def quix_rates(servers: str, topic: str, truth: dict[str, Any], work: Path, runs: int) -> list[dict[str, Any]] | str:
    """The peer's runs, or why it could not run."""
    python, why = quix_python()
    if python is None:
        return f"Quix Streams could not be installed: {why}"
    work.mkdir(parents=True, exist_ok=True)
    program, schemas, expected = work / "quix_peer.py", work / "schemas.json", work / "truth.json"
    program.write_text(QUIX_PEER.lstrip(), encoding="utf-8")
    schemas.write_text(json.dumps({local_id(known.schema): known.schema for known in every_version()}))
    expected.write_text(json.dumps(truth))
    measured = []
    for run_number in range(runs):
        command = [python, program, servers, topic, schemas, expected, work / f"state-{run_number}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode != 0:
            return f"Quix Streams failed (exit {done.returncode}): {' '.join(done.stderr.strip().splitlines()[-3:])}"
        measured.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return measured


def add_peer(
    report: Report, peer: list[dict[str, Any]] | str, kafka_rate: float, alone: float, truth: dict[str, Any]
) -> None:
    if isinstance(peer, str):
        print(f"    the peer is left out: {peer}", flush=True)
        return
    rates = [found["rate"] for found in peer]
    rate = statistics.median(rates)
    cancellations, pairs = sum(truth["reason"].values()), sum(truth["sku"].values())
    report.add(
        Figure(
            f"Quix Streams {peer[0]['quixstreams']}: cancellations per reason and per SKU in its state store",
            rate,
            "events/s",
            f"the same {truth['events']:,} events from orderlog.events (decoded with fastavro); per order its SKUs "
            f"kept in state, {cancellations:,} cancellations repartitioned by reason and {pairs:,} "
            f"(order, SKU) pairs by SKU, changelog topics on; timed from the first message; final counts equal "
            f"orderlog's cancellation view: {all(found['matches'] for found in peer)}; confluent-kafka "
            f"{peer[0]['confluent_kafka']} in .bench/quix-venv",
            runs=rates,
        )
    )
    report.add(
        Figure(
            "orderlog replay of every view from orderlog.events, beside Quix Streams",
            kafka_rate,
            "events/s",
            f"the replay above (every view: {', '.join(PROJECTORS)}; every figure of them, not two counts)",
            goal=">= 5 x Quix Streams",
            beside="Quix Streams, cancellations per reason and SKU",
            ratio=kafka_rate / rate,
        )
    )
    report.add(
        Figure(
            "orderlog replay of the cancellation view alone from orderlog.events, beside Quix Streams",
            alone,
            "events/s",
            "the same events, the cancellations projector alone (its every figure: by reason, category, channel, SKU, "
            "day, stage, timings, refunds, value, customers), in a process of its own, timed as above",
            goal=">= 5 x Quix Streams",
            beside="Quix Streams, cancellations per reason and SKU",
            ratio=alone / rate,
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] != ["replay"]:
        raise SystemExit("usage: python -m bench.read_models replay --source log|kafka [NAMES]")
    replay_main(sys.argv[2:])
