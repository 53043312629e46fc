"""The write side's figures: publish throughput beside the library's own batched save (SQLite
and PostgreSQL, measured in the same run), and `order show --as-of` latency on a big store."""

from __future__ import annotations

import contextlib
import random
import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.common import Figure, Report, percentile
from orderlog.application import OrderNotFound
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.moment import Moment
from orderlog.intake.parallel import publish_file_in_parallel
from orderlog.intake.reading import input_lines
from orderlog.presentation import order_view
from orderlog.simulate import simulate
from orderlog.store.location import StoreLocation, parse_store_url

PUBLISH_ORDERS = 20_000
BIG_STORE_EVENTS = 1_000_000
QUERIES = 2_000


class Counter(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name


POSTGRES_BASE = "postgresql://postgres@127.0.0.1:5432/test"


def library_ceiling(directory: Path, postgres: bool = False) -> float:
    """The eventsourcing library's own batched save: one event per aggregate, 500 aggregates
    per save (as in EVENTSOURCING.md), events/s; on SQLite, or on PostgreSQL."""
    fresh(directory)
    if postgres:
        schema = f"bench_library_{uuid.uuid4().hex[:8]}"
        location = parse_store_url(f"{POSTGRES_BASE}?schema={schema}")
        with location.connect(autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        env = {**location.library_env(), "PERSISTENCE_MODULE": "eventsourcing.postgres"}
    else:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(directory / "library.db")}
    app: Application[Any] = Application(env=env)
    aggregates = [Counter(name=f"c{n}") for n in range(40_000)]
    started = time.perf_counter()
    for start in range(0, len(aggregates), 500):
        app.save(*aggregates[start : start + 500])
    rate = len(aggregates) / (time.perf_counter() - started)
    app.close()
    if postgres:
        drop(location)
    return rate


def drop(location: StoreLocation) -> None:
    with location.connect(autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{location.schema}" CASCADE')


def fresh(directory: Path, postgres: bool = False) -> Config:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    store = (
        f"{POSTGRES_BASE}?schema=bench_{uuid.uuid4().hex[:8]}" if postgres else f"sqlite:///{directory / 'store.db'}"
    )
    return Config(store_url=store, master_key_file=directory / "master.key")


def publish_rate(directory: Path, traffic: Path, workers: int, postgres: bool = False) -> tuple[float, float]:
    """Simulated traffic from a file into a fresh store: (stored events/s, lines/s)."""
    config = fresh(directory, postgres)
    lines, elapsed, stored = timed_publish(config, traffic, workers)
    if postgres:
        drop(config.location)
    return stored / elapsed, lines / elapsed


def timed_publish(config: Config, traffic: Path, workers: int) -> tuple[int, float, int]:
    """Publishes a file as `orderlog publish FILE --workers N` does: (lines, seconds, events stored)."""
    app = open_orderlog(config, create=True)
    publisher = app.intake()
    started = time.perf_counter()
    if workers == 1:
        with traffic.open("rb") as file:
            lines = sum(len(batch) for batch in publisher.take((n, text) for n, text, _ in input_lines(file)))
    else:
        lines = sum(sum(report.counts.values()) for report in publish_file_in_parallel(config, traffic, workers))
    elapsed = time.perf_counter() - started
    stored = sum(app.database.count_by_topic().values())
    app.close()
    return lines, elapsed, stored


def write_traffic(path: Path, orders: int, seed: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = list(simulate(orders, seed=seed))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def run(report: Report, work: Path, runs: int) -> tuple[Config, list[str]]:
    traffic = work / "traffic.jsonl"
    line_count = write_traffic(traffic, PUBLISH_ORDERS, seed=42)
    conditions = (
        f"{PUBLISH_ORDERS:,} simulated orders = {line_count:,} lines from a file: validate, hash chain, "
        "AES-GCM for addresses, 5,000 lines per transaction"
    )
    for postgres in (False, True):
        if postgres and not postgres_answers():
            print("    PostgreSQL does not answer at 127.0.0.1:5432: its figures are left out", flush=True)
            continue
        store = "PostgreSQL" if postgres else "SQLite"
        ceilings: list[float] = []
        rates: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for _ in range(runs):  # alternate, so that the machine's noise falls on both sides
            ceilings.append(library_ceiling(work / "ceiling", postgres))
            for workers, measured in rates.items():
                measured.append(publish_rate(work / f"publish-{workers}", traffic, workers, postgres))
        ceiling = statistics.median(ceilings)
        report.add(
            Figure(
                f"eventsourcing library's batched save on {store} (the ceiling)",
                ceiling,
                "events/s",
                f"{store}, 40,000 aggregates of one event, 500 per save",
                runs=ceilings,
            )
        )
        for workers, goal in ((1, ">= 0.8 x the library"), (2, ">= 1.3 x the library")):
            events = sorted(rate[0] for rate in rates[workers])
            middle = events[len(events) // 2]
            report.add(
                Figure(
                    f"orderlog publish on {store}, {workers} process{'es' if workers > 1 else ''}",
                    middle,
                    "stored events/s",
                    f"{conditions}; {store}{' synchronous=FULL' if not postgres else ''}; "
                    f"{statistics.median(rate[1] for rate in rates[workers]):,.0f} lines/s",
                    goal=goal,
                    beside=f"the library's batched save on {store}",
                    ratio=middle / ceiling,
                    runs=events,
                )
            )
    return as_of_latency(report, work)


def postgres_answers() -> bool:
    try:
        with parse_store_url(POSTGRES_BASE).connect(connect_timeout=3):
            return True
    except Exception:
        return False


def big_store(work: Path, events: int = BIG_STORE_EVENTS) -> tuple[Config, list[str]]:
    """About `events` events: simulated chunks published from files with two processes."""
    directory = work / "big"
    config = fresh(directory)
    app = open_orderlog(config, create=True)
    order_ids: list[str] = []
    seed, stored = 1000, 0
    started = time.perf_counter()
    chunk = directory / "chunk.jsonl"
    while stored < events:
        write_traffic(chunk, 25_000, seed)
        for _report in publish_file_in_parallel(config, chunk, 2):
            pass
        order_ids += [f"SO-{seed}-{n:06d}" for n in range(1, 25_001)]
        stored = sum(app.database.count_by_topic().values())
        seed += 1
        print(
            f"    building a store of {events:,} events: {stored:,} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    app.close()
    return config, order_ids


def as_of_latency(report: Report, work: Path) -> tuple[Config, list[str]]:
    config, order_ids = big_store(work)
    app = open_orderlog(config)
    vault = app.vault
    stored = sum(app.database.count_by_topic().values())
    rng = random.Random(7)
    timings = []
    for order_id in rng.sample(order_ids, QUERIES):
        moment = f"2026-03-0{rng.randint(1, 9)}T{rng.randint(0, 23):02d}:00:00.000Z"
        started = time.perf_counter()
        with contextlib.suppress(OrderNotFound):  # not yet submitted then
            order_view(app.read_order(order_id, Moment(as_of=moment)), vault)
        timings.append((time.perf_counter() - started) * 1000)
    report.add(
        Figure(
            "order show --as-of, p99",
            percentile(timings, 0.99),
            "ms",
            f"{QUERIES:,} random orders at random moments, store of {stored:,} events (SQLite), "
            f"in-process: read, replay up to the moment, decrypt the address, render; "
            f"p50 {percentile(timings, 0.5):.2f} ms",
            goal="<= 1 ms",
        )
    )
    app.close()
    return config, order_ids
